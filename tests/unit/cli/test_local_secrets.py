"""`pagestream up` gives every local pipeline a PII key: random, made once in the state dir and
kept, owner-only; an empty file (which the job would refuse) is replaced."""

from __future__ import annotations

import stat
from pathlib import Path

from pagestream.local.platform import ensure_pii_key
from pagestream_common.jobconfig import Secrets


def test_a_key_is_made_once_and_kept(tmp_path: Path) -> None:
    path = ensure_pii_key(tmp_path / "pii-hash-key")
    key = path.read_text()
    assert len(key) == 64 and int(key, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_pii_key(path).read_text() == key
    # The job reads it as PAGESTREAM_PII_HASH_KEY_FILE and accepts it.
    assert Secrets.from_env({"PAGESTREAM_PII_HASH_KEY_FILE": str(path)}).pii_hash_key == key


def test_keys_are_random(tmp_path: Path) -> None:
    first = ensure_pii_key(tmp_path / "a").read_text()
    assert ensure_pii_key(tmp_path / "b").read_text() != first


def test_an_empty_key_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "pii-hash-key"
    path.write_text("\n")
    assert len(ensure_pii_key(path).read_text()) == 64
