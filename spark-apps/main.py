"""spark-submit entry point (the SparkApplication's mainApplicationFile). All logic lives in
the installed ``pagestream_spark`` package; this file only hands it the arguments."""

import sys

from pagestream_spark.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
