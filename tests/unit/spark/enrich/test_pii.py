from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest

from pagestream_spark.enrich.pii import (
    daily_salt,
    encode_field,
    hash_email,
    normalize_email,
    visitor_id,
    visitor_id_of_encoded,
)

KEY = b"test-secret-key"
DAY = dt.date(2020, 6, 4)


def test_email_hash_is_hmac_sha256_of_the_normalised_address() -> None:
    expected = hmac.new(KEY, b"jane.doe@example.com", hashlib.sha256).hexdigest()
    assert hash_email("jane.doe@example.com", KEY) == expected
    assert hash_email("  Jane.Doe@EXAMPLE.com \n", KEY) == expected
    assert len(expected) == 64


def test_email_hash_depends_on_the_key() -> None:
    assert hash_email("a@b.co", KEY) != hash_email("a@b.co", b"another key")


@pytest.mark.parametrize(
    "invalid",
    [
        None,
        False,
        "",
        "  ",
        "false",
        "n/a",
        "no-at-sign",
        "a@b",
        "@b.com",
        "a@@b.com",
        "a b@c.de",
        "x" * 250 + "@b.com",
        42,
    ],
)
def test_absent_or_invalid_email_has_no_hash(invalid: object) -> None:
    assert hash_email(invalid, KEY) is None
    assert normalize_email(invalid) is None


def test_unicode_email_is_hashed() -> None:
    expected = hmac.new(KEY, "josé@exämple.de".encode(), hashlib.sha256).hexdigest()
    assert hash_email("JOSÉ@Exämple.DE", KEY) == expected


def test_daily_salt_is_deterministic_per_day_and_key() -> None:
    assert daily_salt(KEY, DAY) == hmac.new(KEY, b"2020-06-04", hashlib.sha256).digest()
    assert daily_salt(KEY, DAY) == daily_salt(KEY, dt.datetime(2020, 6, 4, 23, 59))
    assert daily_salt(KEY, DAY) != daily_salt(KEY, DAY + dt.timedelta(days=1))
    assert daily_salt(KEY, DAY) != daily_salt(b"rotated", DAY)
    assert len(daily_salt(KEY, DAY)) == 32


def test_visitor_id_is_stable_within_a_day_and_unlinkable_across_days() -> None:
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3 like Mac OS X)"
    today = visitor_id(daily_salt(KEY, DAY), "glamira.fr", "37.170.17.183", ua)
    assert visitor_id(daily_salt(KEY, DAY), "glamira.fr", "37.170.17.183", ua) == today
    tomorrow = daily_salt(KEY, DAY + dt.timedelta(days=1))
    assert visitor_id(tomorrow, "glamira.fr", "37.170.17.183", ua) != today
    assert visitor_id(daily_salt(KEY, DAY), "glamira.de", "37.170.17.183", ua) != today
    assert visitor_id(daily_salt(KEY, DAY), "glamira.fr", "37.170.17.184", ua) != today
    assert visitor_id(daily_salt(KEY, DAY), "glamira.fr", "37.170.17.183", ua + " ") != today


def test_visitor_id_is_a_signed_64_bit_int_from_blake2b() -> None:
    salt = daily_salt(KEY, DAY)
    ids = [visitor_id(salt, "s", f"10.0.0.{i}", "ua") for i in range(200)]
    assert all(isinstance(i, int) and -(2**63) <= i < 2**63 for i in ids)
    assert any(i < 0 for i in ids) and any(i > 0 for i in ids)
    assert len(set(ids)) == 200


def test_visitor_id_fields_cannot_run_into_each_other() -> None:
    salt = daily_salt(KEY, DAY)
    assert visitor_id(salt, "ab", "c", "d") != visitor_id(salt, "a", "bc", "d")


def test_visitor_id_tolerates_absent_and_odd_inputs() -> None:
    salt = daily_salt(KEY, DAY)
    assert visitor_id(salt, None, None, None) == visitor_id(salt, "", "", "")
    assert visitor_id(salt, "s", False, 3) == visitor_id(salt, "s", "", "")
    assert isinstance(visitor_id(salt, "s", "\ud800", "\x00☃" * 10_000), int)


def test_pre_encoded_fields_give_the_same_id() -> None:
    salt = daily_salt(KEY, DAY)
    encoded = encode_field("glamira.fr") + encode_field("1.2.3.4") + encode_field(None)
    assert visitor_id_of_encoded(salt, encoded) == visitor_id(salt, "glamira.fr", "1.2.3.4", "")
    digest = hashlib.blake2b(encoded, digest_size=8, key=salt).digest()
    assert visitor_id_of_encoded(salt, encoded) == int.from_bytes(digest, "big", signed=True)
