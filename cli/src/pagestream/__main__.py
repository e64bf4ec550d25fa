import sys

from pagestream.cli import main

sys.exit(main())
