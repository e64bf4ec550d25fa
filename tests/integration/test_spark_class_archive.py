"""The Spark driver JVM maps the class-data archive that `pagestream install` built for this
checkout. A JVM that cannot use an archive says so in one warning line and carries on slower,
so only the JVM's own memory map shows whether it took it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pagestream.stack.paths import StackPaths
from pagestream.stack.spark import class_archive_path

pytestmark = pytest.mark.spark


def test_the_driver_jvm_maps_this_checkouts_class_archive(spark, stack_paths: StackPaths) -> None:  # type: ignore[no-untyped-def]
    archive = class_archive_path(stack_paths)
    assert archive.exists(), "no class-data archive: `uv run pagestream install` builds it"
    jvm_pid = spark._jvm.java.lang.ProcessHandle.current().pid()
    mapped = {
        line.split(maxsplit=5)[5]
        for line in Path(f"/proc/{jvm_pid}/maps").read_text().splitlines()
        if len(line.split(maxsplit=5)) == 6
    }
    assert str(archive) in mapped
