from __future__ import annotations

import ipaddress
import os
import sys

import numpy as np
import pytest

from pagestream_spark.enrich import geo
from pagestream_spark.enrich.geo import Location, anonymize_ip, anonymize_ips, locate_ip, locate_ips

UNKNOWN = Location("ZZ", "Unknown", None, None)


@pytest.fixture(scope="module")
def reference():
    """geoip2fast's own lookup on the same data file (its tables are module globals, which is
    why geo.py copies them at load)."""
    geo.locate_ips([])  # load our tables first, as the job does
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast(geoip2fast_data_file=geo.GEOIP_DATA_FILE)


def _expected_code(reference, ip: str) -> str:
    """geoip2fast's answer, translated to our documented conventions: reserved ("--"),
    invalid ("") and continent-only ("EU", "ASIA") networks are "ZZ"."""
    code = reference.lookup(ip).country_code
    return "ZZ" if code in ("--", "", "EU", "ASIA") else code


def test_vectorised_ipv4_agrees_with_geoip2fast_on_random_addresses(reference) -> None:
    rng = np.random.default_rng(20240604)
    ips = [str(ipaddress.IPv4Address(int(v))) for v in rng.integers(0, 2**32, size=3000)]
    located = locate_ips(ips)
    expected = [_expected_code(reference, ip) for ip in ips]
    assert list(located.country_code) == expected
    assert sum(code != "ZZ" for code in expected) > 2000  # mostly real countries, not a no-op


def test_vectorised_ipv4_agrees_at_network_boundaries(reference) -> None:
    tables = geo._tables()
    rng = np.random.default_rng(7)
    picks = rng.choice(len(tables.v4_first), size=1000, replace=False)
    edges = np.concatenate(
        [
            tables.v4_first[picks],
            tables.v4_last[picks],
            np.minimum(tables.v4_last[picks] + 1, 2**32 - 1),
        ]
    )
    ips = [str(ipaddress.IPv4Address(int(v))) for v in edges]
    assert list(locate_ips(ips).country_code) == [_expected_code(reference, ip) for ip in ips]


def test_ipv6_agrees_with_geoip2fast(reference) -> None:
    tables = geo._tables()
    rng = np.random.default_rng(11)
    picks = rng.choice(len(tables.v6_first), size=500, replace=False)
    ips = [str(ipaddress.IPv6Address(tables.v6_first[p].ljust(16, b"\0"))) for p in picks]
    ips += [str(ipaddress.IPv6Address(tables.v6_last[p].ljust(16, b"\0"))) for p in picks]
    ips += [
        str(ipaddress.IPv6Address(int.from_bytes(rng.bytes(16)) >> 3 | 1 << 125)) for _ in picks
    ]
    located = locate_ips(ips)
    assert list(located.country_code) == [_expected_code(reference, ip) for ip in ips]
    assert set(located.country_code) != {"ZZ"}


def test_known_addresses() -> None:
    assert locate_ip("8.8.8.8") == Location("US", "United States", None, None)
    assert locate_ip("37.170.17.183") == Location("FR", "France", None, None)
    assert locate_ip(" 37.170.17.183 ") == Location("FR", "France", None, None)
    assert locate_ip("2a01:cb00::1") == Location("FR", "France", None, None)
    assert locate_ip("::ffff:8.8.8.8") == Location("US", "United States", None, None)


def test_andorra_is_a_country_not_a_private_network() -> None:
    # geoip2fast's IPv4-only file reports Andorra as private (index 15 < 16); we never do.
    assert locate_ip("5.62.60.5") == Location("AD", "Andorra", None, None)


def test_continent_only_networks_are_unknown_countries() -> None:
    tables = geo._tables()
    continent_networks = [
        int(first)
        for first, country in zip(tables.v4_first, tables.v4_country, strict=True)
        if country >= 0 and tables.codes[country] == "ZZ" and tables.names[country] == "Unknown"
    ]
    assert continent_networks  # reserved and continent-only ranges exist in the data
    codes = set(
        locate_ips([str(ipaddress.IPv4Address(v)) for v in continent_networks]).country_code
    )
    assert codes == {"ZZ"}
    assert all(len(code) == 2 for code in tables.codes)


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "::1",
        "fe80::1%eth0",
        "fd00::1",
        "2001:db8::1",
        "1.2.3",
        "127.1",
        "010.0.0.1",
        "256.1.1.1",
        "1.2.3.4.5",
        "",
        "not an ip",
        "\u0661\u0662\u0663.\u0661.\u0661.\u0661",  # Arabic-Indic digits
        "x" * 100_000,
        "8.8.8.8\ud800",  # a lone surrogate: Python text that UTF-8 (and Arrow) cannot encode
        "\ud800",
        None,
        False,
        12345,
    ],
)
def test_private_invalid_and_garbage_are_unknown(ip: object) -> None:
    assert locate_ip(ip) == UNKNOWN


def test_locate_ips_keeps_order_and_length() -> None:
    located = locate_ips(["8.8.8.8", None, "37.170.17.183", "garbage"])
    assert len(located) == 4
    assert list(located.country_code) == ["US", "ZZ", "FR", "ZZ"]
    assert list(located.country_name) == ["United States", "Unknown", "France", "Unknown"]
    assert list(located.region) == [None] * 4 and list(located.city) == [None] * 4
    assert len(locate_ips([])) == 0


def test_loading_leaves_the_environment_and_other_geoip2fast_instances_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A first import of geoip2fast, as in a fresh Spark worker (monkeypatch puts the modules
    # this session already imported back afterwards).
    for name in [m for m in sys.modules if m == "geoip2fast" or m.startswith("geoip2fast.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    geo._tables.cache_clear()
    assert geo.locate_ip("80.12.34.56").country_code == "FR"
    assert "PYTHONWARNINGS" not in os.environ  # geoip2fast's PYTHONWARNINGS=ignore was undone

    from geoip2fast import GeoIP2Fast  # the module object our load just used

    earlier = GeoIP2Fast()  # the IPv4-only default file, whose tables live in module globals
    assert earlier.lookup("5.62.60.5").country_code == "--"  # its Andorra quirk
    geo._tables.cache_clear()
    geo._tables()  # loads the IPv4+IPv6 file through the same module globals
    # The earlier instance still answers from its own file.
    assert earlier.lookup("80.12.34.56").country_code == "FR"
    assert earlier.lookup("5.62.60.5").country_code == "--"
    assert earlier.lookup("2a01:cb00::1").country_code == "--"  # no IPv6 in its file
    assert geo.locate_ip("5.62.60.5").country_code == "AD"


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("37.170.17.183", "37.170.17.0"),
        (" 8.8.4.4 ", "8.8.4.0"),
        ("10.1.2.3", "10.1.2.0"),
        ("2a01:cb00:1234:5678:9abc::1", "2a01:cb00:1234::"),
        ("2001:4860:4860::8888", "2001:4860:4860::"),
        ("::ffff:37.170.17.183", "37.170.17.0"),
        ("fe80::1%eth0", "fe80::"),
        ("1.2.3", None),
        ("010.0.0.1", None),
        ("999.1.1.1", None),
        ("\u0661\u0662\u0663.\u0661.\u0661.\u0661", None),  # Python's \d would match these
        ("1.2.3.4\n", "1.2.3.0"),
        ("", None),
        ("garbage", None),
        ("x" * 10_000, None),
        ("8.8.8.8\ud800", None),
        (None, None),
        (False, None),
    ],
)
def test_anonymize_ip(ip: object, expected: str | None) -> None:
    assert anonymize_ip(ip) == expected
    assert list(anonymize_ips([ip])) == [expected]


def test_vectorised_anonymisation_matches_scalar_on_a_mix() -> None:
    rng = np.random.default_rng(3)
    ips: list[object] = [str(ipaddress.IPv4Address(int(v))) for v in rng.integers(0, 2**32, 500)]
    ips += [str(ipaddress.IPv6Address(int(v) << 64)) for v in rng.integers(0, 2**62, 50)]
    ips += [None, False, "", "1.2.3", "::ffff:1.2.3.4"]
    assert list(anonymize_ips(ips)) == [anonymize_ip(ip) for ip in ips]
