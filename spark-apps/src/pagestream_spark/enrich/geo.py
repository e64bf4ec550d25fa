"""IP address → country, and IP anonymisation.

Data: the offline GeoLite2-Country tables that the geoip2fast wheel ships
(`geoip2fast-ipv6.dat.gz`: IPv4 and IPv6 networks, country level only). The installed package
holds no city or region data (its city files are a separate download), so `region` and `city`
are always None; the `Location` type keeps the fields so a city database can be added later
without changing the output schema.

Why not call `GeoIP2Fast.lookup` per address: it costs ~10 µs of Python per call, and a batch
has 10^4-10^5 distinct addresses. Here the IPv4 networks are flattened once into sorted numpy
arrays (first address, last address, country index) and a whole batch is located with one
`np.searchsorted`; IPv6 likewise, over 16-byte big-endian keys (numpy "S16" arrays compare
bytewise, which for fixed-width big-endian integers is numeric order).

Deliberate differences from `GeoIP2Fast.lookup` (all tested):
- `country_code` is always an ISO 3166-1 alpha-2 code or "ZZ" (fits a CHAR(2) column):
  networks MaxMind only places on a continent ("EU" Europe, "ASIA") are "ZZ"/"Unknown", as are
  reserved and private ranges (geoip2fast's "--").
- reserved entries are recognised by their numeric code, not by geoip2fast's `index < 16`
  test, which is off by one for its IPv4-only default file (every Andorran network comes back
  as private there); this keeps Andorra "AD" whichever data file is used.
- only canonical dotted quads are IPv4 ("1.2.3", "127.1" and "010.0.0.1", which
  `socket.inet_aton` accepts with octal/short-form rules, are invalid here); IPv6 loopback,
  link-local, unique-local and documentation addresses are "ZZ" (geoip2fast compares "::1"
  with its IPv4 table).
"""

from __future__ import annotations

import ipaddress
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

UNKNOWN_COUNTRY_CODE = "ZZ"  # ISO 3166 user-assigned code, the CLDR convention for "unknown"
UNKNOWN_COUNTRY_NAME = "Unknown"
GEOIP_DATA_FILE = "geoip2fast-ipv6.dat.gz"
# MaxMind continent-level codes (not countries); "AP" is the legacy Asia/Pacific one.
_CONTINENTS = frozenset({"EU", "AP", "ASIA"})

_MAX_IP_CHARS = 64  # longest IPv6 text with a zone id is well below this
# A canonical dotted quad: no leading zeros (which inet_aton would read as octal), no short forms.
# [0-9], not \d: Python's \d also matches other scripts' digits.
_OCTET = r"25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]"
_IPV4_DOTTED_QUAD = "^" + r"\.".join(f"(?P<o{i}>{_OCTET})" for i in range(4)) + "$"
_IPV4_LIMIT = 1 << 32
_IPV4_DOTTED_QUAD_RE = re.compile(_IPV4_DOTTED_QUAD)


class Location(NamedTuple):
    country_code: str
    country_name: str
    region: str | None
    city: str | None


UNKNOWN_LOCATION = Location(UNKNOWN_COUNTRY_CODE, UNKNOWN_COUNTRY_NAME, None, None)


@dataclass(frozen=True)
class LocatedIps:
    """Column-oriented result of `locate_ips`: one entry per input address."""

    country_code: np.ndarray  # object array of str
    country_name: np.ndarray  # object array of str
    region: np.ndarray  # object array of None (no region data shipped)
    city: np.ndarray  # object array of None (no city data shipped)

    def __len__(self) -> int:
        return len(self.country_code)

    def locations(self) -> list[Location]:
        return [
            Location(code, name, region, city)
            for code, name, region, city in zip(
                self.country_code, self.country_name, self.region, self.city, strict=True
            )
        ]


@dataclass(frozen=True)
class _CountryTables:
    codes: np.ndarray  # object array: country index → ISO code, "ZZ" for reserved entries
    names: np.ndarray  # object array: country index → English name, "Unknown" for reserved
    v4_first: np.ndarray  # int64, sorted first address of each IPv4 network
    v4_last: np.ndarray  # int64, last address of each IPv4 network
    v4_country: np.ndarray  # int32 country index of each IPv4 network
    # IPv6 addresses are 128 bits: stored as 16 big-endian bytes ("S16"), whose byte order is
    # their numeric order, so np.searchsorted works on them (and they take 16 bytes, not the
    # ~50 of a Python int).
    v6_first: np.ndarray  # S16, sorted first address of each IPv6 network
    v6_last: np.ndarray  # S16
    v6_country: np.ndarray  # int32


@cache
def _tables() -> _CountryTables:
    # geoip2fast sets PYTHONWARNINGS=ignore in the environment when imported, which would
    # silently change every subprocess this process starts (Spark's Python workers included).
    saved_warnings = os.environ.get("PYTHONWARNINGS")
    try:
        with warnings.catch_warnings():
            # geoip2fast.py has invalid escape sequences ('\\.' in plain strings): compiling it
            # without a cached .pyc warns (DeprecationWarning on 3.11, SyntaxWarning from 3.12),
            # and under -W error, as in our test suite, that warning becomes a SyntaxError.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            import geoip2fast.geoip2fast as geoip2fast_module
            from geoip2fast import GeoIP2Fast

        # geoip2fast loads its tables into module globals, shared by every GeoIP2Fast in the
        # process. So: load ours, copy what we need, then put the module back as it was. A
        # GeoIP2Fast someone created earlier (e.g. a test's ground truth on the default file)
        # keeps answering from its own data, and ours (~30 MiB as Python lists) is freed.
        module_state = dict(vars(geoip2fast_module))
        GeoIP2Fast(geoip2fast_data_file=GEOIP_DATA_FILE)
        country_entries = list(geoip2fast_module.mainListNamesCountry)
        first_chunks = list(geoip2fast_module.mainListFirstIP)
        netlen_chunks = list(geoip2fast_module.mainListNetlength)
        country_chunks = list(geoip2fast_module.mainListIDCountryCodes)
        for name in list(vars(geoip2fast_module)):
            if name not in module_state:
                delattr(geoip2fast_module, name)
            elif vars(geoip2fast_module)[name] is not module_state[name]:
                setattr(geoip2fast_module, name, module_state[name])
    finally:
        if saved_warnings is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = saved_warnings

    codes, names = [], []
    for entry in country_entries:
        code, _, name = entry.partition(":")
        # Reserved ranges (private, loopback, multicast...) are numbered "01".."15", "99";
        # continent-only networks are "EU" and "ASIA".
        if len(code) == 2 and code.isalpha() and code.isupper() and code not in _CONTINENTS:
            codes.append(code)
            names.append(name)
        else:
            codes.append(UNKNOWN_COUNTRY_CODE)
            names.append(UNKNOWN_COUNTRY_NAME)

    v4_first, v4_last, v4_country = [], [], []
    v6_first, v6_last, v6_country = [], [], []
    for firsts, netlens, countries in zip(first_chunks, netlen_chunks, country_chunks, strict=True):
        for first, netlen, country in zip(firsts, netlens, countries, strict=True):
            if first < _IPV4_LIMIT:
                v4_first.append(first)
                v4_last.append(first + (1 << (32 - netlen)) - 1)
                v4_country.append(country)
            else:
                v6_first.append(first.to_bytes(16, "big"))
                v6_last.append((first + (1 << (128 - netlen)) - 1).to_bytes(16, "big"))
                v6_country.append(country)
    return _CountryTables(
        codes=np.array(codes, dtype=object),
        names=np.array(names, dtype=object),
        v4_first=np.array(v4_first, dtype=np.int64),
        v4_last=np.array(v4_last, dtype=np.int64),
        v4_country=np.array(v4_country, dtype=np.int32),
        v6_first=np.array(v6_first, dtype="S16"),
        v6_last=np.array(v6_last, dtype="S16"),
        v6_country=np.array(v6_country, dtype=np.int32),
    )


def _arrow_strings(values: Sequence[object]) -> pa.StringArray:
    """`values` as an Arrow string array, non-strings as null. Strings UTF-8 cannot encode (lone
    surrogates, possible in Python text, never in Spark's) become null too: no valid address
    contains one."""
    texts = [value if isinstance(value, str) else None for value in values]
    try:
        return pa.array(texts, type=pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):
        return pa.array([_utf8_or_none(text) for text in texts], type=pa.string())


def _utf8_or_none(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return text


def ipv4_to_int(ips: Sequence[object]) -> np.ndarray:
    """Each canonical dotted-quad IPv4 address as an int64, anything else (IPv6, garbage, None)
    as -1. Vectorised with Arrow's RE2 and casts, no Python per address."""
    texts = _arrow_strings(ips)
    octets = pc.extract_regex(pc.utf8_trim_whitespace(texts), _IPV4_DOTTED_QUAD)
    value = np.zeros(len(texts), dtype=np.int64)
    for shift, field in zip((24, 16, 8, 0), ("o0", "o1", "o2", "o3"), strict=True):
        part = pc.cast(pc.struct_field(octets, field), pa.int64())
        value |= np.asarray(part.fill_null(0).to_numpy(zero_copy_only=False)) << shift
    matched = np.asarray(pc.is_valid(octets).to_numpy(zero_copy_only=False), dtype=bool)
    return np.where(matched, value, -1)


def _country_index_v4(addresses: np.ndarray) -> np.ndarray:
    """Country index for each IPv4 integer (-1 → not found)."""
    tables = _tables()
    position = np.searchsorted(tables.v4_first, addresses, side="right") - 1
    safe_position = np.clip(position, 0, None)
    found = (addresses >= 0) & (position >= 0) & (addresses <= tables.v4_last[safe_position])
    return np.where(found, tables.v4_country[safe_position], -1)


def _ipv6_key(ip: object) -> bytes | int | None:
    """A non-dotted-quad address prepared for lookup: 16 bytes for a global IPv6 address, the
    IPv4 integer for an IPv4-mapped one, None when it cannot be located."""
    if not isinstance(ip, str) or ":" not in ip or len(ip) > _MAX_IP_CHARS:
        return None
    try:
        address = ipaddress.IPv6Address(ip.strip())
    except ValueError:
        return None
    if address.ipv4_mapped is not None:
        return int(address.ipv4_mapped)
    if not address.is_global:
        # Loopback, link-local, unique-local, documentation... and the small integers that
        # geoip2fast would otherwise compare against its IPv4 table.
        return None
    return address.packed


def _country_index_v6(keys: list[bytes]) -> np.ndarray:
    """Country index for each 16-byte IPv6 address (-1 → not found)."""
    tables = _tables()
    addresses = np.array(keys, dtype="S16")
    position = np.searchsorted(tables.v6_first, addresses, side="right") - 1
    safe_position = np.clip(position, 0, None)
    found = (position >= 0) & (addresses <= tables.v6_last[safe_position])
    return np.where(found, tables.v6_country[safe_position], -1)


def locate_ips(ips: Sequence[object]) -> LocatedIps:
    """Country (ISO code and English name) of every address in `ips`, in order. Unknown,
    private, reserved and invalid addresses (and None, False, garbage) get "ZZ"/"Unknown".
    `region` and `city` are None: the shipped data is country level."""
    tables = _tables()
    ip_values = list(ips)
    country = _country_index_v4(ipv4_to_int(ip_values))
    # Not a dotted quad (or not found): IPv6, which may carry an IPv4 address, or garbage.
    v4_positions, v4_values, v6_positions, v6_keys = [], [], [], []
    for position in np.flatnonzero(country < 0):
        key = _ipv6_key(ip_values[position])
        if isinstance(key, bytes):
            v6_positions.append(position)
            v6_keys.append(key)
        elif key is not None:
            v4_positions.append(position)
            v4_values.append(key)
    if v4_positions:
        country[v4_positions] = _country_index_v4(np.array(v4_values, dtype=np.int64))
    if v6_positions:
        country[v6_positions] = _country_index_v6(v6_keys)
    # Index -1 (not found) reads the last entry; mask it to unknown explicitly.
    found = country >= 0
    country_code = np.where(found, tables.codes[country], UNKNOWN_COUNTRY_CODE).astype(object)
    country_name = np.where(found, tables.names[country], UNKNOWN_COUNTRY_NAME).astype(object)
    nothing = np.full(len(ip_values), None, dtype=object)
    return LocatedIps(country_code, country_name, nothing, nothing.copy())


def locate_ip(ip: object) -> Location:
    """`locate_ips` for one address."""
    return locate_ips([ip]).locations()[0]


def anonymize_ip(ip: object) -> str | None:
    """The address with its host part removed, as stored instead of the IP: IPv4 keeps its first
    three octets (x.y.z.0), IPv6 its first 48 bits (the routing prefix of a site), an
    IPv4-mapped IPv6 address is treated as the IPv4 address it carries. Invalid → None.

    Why: an IP address is personal data (GDPR, CJEU Breyer); a /24 or /48 prefix still tells
    the network and country but no longer singles out a household."""
    if not isinstance(ip, str) or len(ip) > _MAX_IP_CHARS:
        return None
    text = ip.strip()
    if ":" not in text:
        if not _IPV4_DOTTED_QUAD_RE.match(text):
            return None
        return text.rsplit(".", 1)[0] + ".0"
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return None
    if address.ipv4_mapped is not None:
        return anonymize_ip(str(address.ipv4_mapped))
    prefix = int(address) >> 80 << 80
    return str(ipaddress.IPv6Address(prefix))


def anonymize_ips(ips: Sequence[object]) -> np.ndarray:
    """`anonymize_ip` of every address, as an object array; IPv4 is done by Arrow in one pass."""
    ip_values = list(ips)
    texts = pc.utf8_trim_whitespace(_arrow_strings(ip_values))
    is_ipv4 = np.asarray(
        pc.match_substring_regex(texts, _IPV4_DOTTED_QUAD)
        .fill_null(False)
        .to_numpy(zero_copy_only=False),
        dtype=bool,
    )
    anonymized_v4 = pc.replace_substring_regex(texts, r"\.[0-9]+$", ".0")
    result = np.asarray(anonymized_v4.to_numpy(zero_copy_only=False), dtype=object)
    result[~is_ipv4] = None
    for position in np.flatnonzero(~is_ipv4):
        result[position] = anonymize_ip(ip_values[position])
    return result
