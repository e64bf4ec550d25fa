"""Personal data → keyed pseudonyms, so nothing the warehouse stores can be turned back into an
e-mail address or an IP address.

- `hash_email`: HMAC-SHA256 under a secret key. A plain SHA-256 of an e-mail address is not
  anonymous: the space of addresses is small enough to hash a leaked list and join. With a key
  kept outside the database, the hash still identifies a customer across events and days (what
  analytics needs), but is useless to whoever steals the tables without the key.
- `daily_salt` + `visitor_id`: Plausible's cookieless visitor count. The id is a keyed hash of
  site + IP + user agent under a salt that changes every day; so the same browser is one
  visitor within a day, the raw IP never needs storing, and yesterday's id cannot be linked to
  today's. Unlike Plausible the salt is not random but derived from the secret key and the date
  (HMAC(key, "YYYY-MM-DD")): a restarted or replayed job must give the same ids to the same
  events (exactly-once totals), and rotating the secret key still severs all old ids.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from functools import lru_cache
from typing import Any

from pagestream_spark.enrich._text import present_text

MAX_EMAIL_CHARS = 254  # RFC 5321 path limit
# Deliberately loose (RFC 5322 allows almost anything in the local part): one "@", no spaces,
# a dot in the domain. Its job is to keep "false", "n/a" and "" from all hashing to one id.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.][^@\s]*")


def normalize_email(email: object) -> str | None:
    """The address trimmed and lower-cased, None when absent or not an address."""
    text = present_text(email)
    if text is None or len(text) > MAX_EMAIL_CHARS:
        return None
    text = text.lower()
    return text if _EMAIL.fullmatch(text) else None


def hash_email(email: object, key: bytes) -> str | None:
    """Hex HMAC-SHA256 (64 characters) of the normalised address under `key`; None for an
    absent or invalid address. The raw address is never returned or stored."""
    normalized = normalize_email(email)
    if normalized is None:
        return None
    return hmac.new(key, normalized.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def daily_salt(key: bytes, day: dt.date) -> bytes:
    """32-byte salt of one day: HMAC-SHA256(key, ISO date). Deterministic, so restarts and
    replays give the same visitor ids; a datetime counts as its date."""
    if isinstance(day, dt.datetime):
        day = day.date()
    return hmac.new(key, day.isoformat().encode("ascii"), hashlib.sha256).digest()


def encode_field(value: object) -> bytes:
    """One visitor-id input as hashed: UTF-8 (None/non-strings count as ""), length-prefixed
    so ("ab", "c") and ("a", "bc") never hash alike."""
    text = value if isinstance(value, str) else ""
    data = text.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(4, "big") + data


def visitor_id(salt: bytes, site: object, ip: object, user_agent: object) -> int:
    """Signed 64-bit visitor id: BLAKE2b-64 keyed with the day's `salt` over site, IP and user
    agent (None/non-strings count as ""). Same inputs and day → same id; another day → an
    unrelated id."""
    return visitor_id_of_encoded(
        salt, encode_field(site) + encode_field(ip) + encode_field(user_agent)
    )


def visitor_id_of_encoded(salt: bytes, encoded_fields: bytes) -> int:
    """`visitor_id` from pre-encoded fields (`encode_field(site) + encode_field(ip) +
    encode_field(user_agent)`), so a batch encodes each distinct value once."""
    hasher = _keyed_blake2b(salt).copy()  # copying skips re-absorbing the key block
    hasher.update(encoded_fields)
    return int.from_bytes(hasher.digest(), "big", signed=True)


@lru_cache(maxsize=64)  # one per day in flight
def _keyed_blake2b(salt: bytes) -> Any:
    return hashlib.blake2b(digest_size=8, key=salt[:64])
