from __future__ import annotations

from pagestream_spark.migrate import available_migrations


def test_migrations_are_numbered_without_gaps_and_named() -> None:
    migrations = available_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert [m.name for m in migrations[:2]] == ["star_schema", "reports"]
    assert all(len(m.checksum) == 64 for m in migrations)
