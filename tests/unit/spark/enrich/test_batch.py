from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pagestream_spark.enrich import (
    DROPPED_COLUMNS,
    ENRICHED_COLUMNS,
    ENRICHED_FIELDS,
    anonymize_ip,
    campaign_of,
    classify_referrer,
    classify_user_agent,
    daily_salt,
    enrich_batch,
    hash_email,
    locate_ip,
    output_columns,
    parse_page_url,
    pass_through_columns,
    product_page,
    visitor_id,
)
from pagestream_spark.enrich import batch as batch_module
from pagestream_spark.enrich.referrer import strip_www

KEY = b"unit-test-pii-key"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/13.0.5 Mobile/15E148 Safari/604.1"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

# Pools mixing realistic values with everything the contract lets through, and garbage.
IPS = [
    "37.170.17.183",
    "8.8.8.8",
    " 8.8.8.8",
    "2a01:cb00::1",
    "10.0.0.1",
    "1.2.3",
    "",
    None,
    False,
    "x" * 500,
    "1.1.1.1\ud800",
]
USER_AGENTS = [IPHONE, CHROME, GOOGLEBOT, "curl/8.4.0", "", None, "garbage ☃ \x00", "\udcff ua"]
REFERRERS = [
    "https://www.glamira.fr/men-s-necklaces/",
    "https://www.glamira.de/",
    False,
    "",
    None,
    "https://www.google.co.uk/",
    "https://t.co/x",
    "http://[::1",
    "notaurl",
    "android-app://com.facebook.katana/",
    "https://www.gl\ud800amira.fr/",
]
CURRENT_URLS = [
    "https://www.glamira.fr/glamira-anillo-saphira-skug100335.html?alloy=white-375",
    "https://www.glamira.fr/ring.html?utm_source=Newsletter&utm_medium=Email&utm_campaign=Spring",
    "https://glamira.de/a%20b?utm_term=X&utm_content=Y",
    "https://www.google.com/shopping",
    "/relative/path",
    "",
    None,
    "http://[bad",
    "https://www.glamira.fr/\ud800%00?utm_source=\ud800",
]
EMAILS = [
    "",
    False,
    None,
    "Jane.Doe@Example.com ",
    "jane.doe@example.com",
    "not-an-email",
    "\ud800@b.co",
]
UTM_SOURCES = [False, "", None, "Google", " facebook ", "false"]
UTM_MEDIUMS = [False, "", None, "CPC", "social"]
DATES = [dt.date(2020, 6, 4), dt.date(2020, 6, 5), None]


def random_events(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)

    def pick(pool: list[object]) -> list[object]:
        return [pool[i] for i in rng.integers(len(pool), size=rows)]

    return pd.DataFrame(
        {
            "id": [f"event-{i}" for i in range(rows)],
            "ip": pick(IPS),
            "user_agent": pick(USER_AGENTS),
            "referrer_url": pick(REFERRERS),
            "current_url": pick(CURRENT_URLS),
            "email_address": pick(EMAILS),
            "utm_source": pick(UTM_SOURCES),
            "utm_medium": pick(UTM_MEDIUMS),
            "event_date": pick(DATES),
            "time_stamp": rng.integers(1_591_000_000, 1_592_000_000, size=rows),
        },
        dtype=object,
    ).astype({"time_stamp": np.int64})


def expected_row(event: pd.Series) -> dict[str, object]:
    """The enrichment of one event computed with the scalar functions, independently of
    enrich_batch's distinct-value machinery."""
    agent = classify_user_agent(event["user_agent"])
    location = locate_ip(event["ip"])
    referrer = classify_referrer(event["referrer_url"], event["current_url"])
    page = parse_page_url(event["current_url"])
    product = product_page(event["current_url"])
    campaign = campaign_of(page, event["utm_source"], event["utm_medium"])
    day = event["event_date"]
    ip = event["ip"]
    return {
        "browser": agent.browser,
        "browser_version": agent.browser_version,
        "os": agent.os,
        "os_version": agent.os_version,
        "device_class": agent.device_class,
        "is_bot": agent.is_bot,
        "country_code": location.country_code,
        "country_name": location.country_name,
        "region": location.region,
        "city": location.city,
        "ip_anonymized": anonymize_ip(ip),
        "referrer_domain": referrer.domain,
        "referrer_medium": referrer.medium,
        "page_host": page.host,
        "page_path": page.path,
        "product_url": None if product is None else product.url,
        "utm_source_n": campaign.source,
        "utm_medium_n": campaign.medium,
        "utm_campaign": campaign.name,
        "utm_term": page.utm_term,
        "utm_content": page.utm_content,
        "email_hash": hash_email(event["email_address"], KEY),
        "visitor_id": None
        if day is None
        else visitor_id(
            daily_salt(KEY, day),
            strip_www(page.host) if page.host else "",
            ip.strip() if isinstance(ip, str) else None,
            event["user_agent"],
        ),
    }


def cell(value: object) -> object:
    return None if value is pd.NA else value


def test_every_row_equals_the_scalar_functions() -> None:
    events = random_events(600, seed=1)
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    for position in range(len(events)):
        row = enriched.iloc[position]
        actual = {column: cell(row[column]) for column in ENRICHED_COLUMNS}
        assert actual == expected_row(events.iloc[position]), f"row {position}"


def test_contract_sample_event() -> None:
    event = pd.DataFrame(
        {
            "id": ["5ed8cb2bc1f5b2a6c8fd1a2c"],
            "ip": ["37.170.17.183"],
            "user_agent": [IPHONE],
            "referrer_url": ["https://www.glamira.fr/men-s-necklaces/"],
            "current_url": [
                "https://www.glamira.fr/glamira-anillo-saphira-skug100335.html"
                "?alloy=white-375&diamond=sapphire"
            ],
            "email_address": [""],
            "utm_source": [False],
            "utm_medium": [False],
            "event_date": [dt.date(2020, 6, 4)],
            "product_id": ["110474"],
        }
    )
    row = enrich_batch(event, pii_key=KEY, anonymize_ip=True, hash_email=True).iloc[0]
    assert row[list(ENRICHED_COLUMNS[:-1])].tolist() == [
        "Mobile Safari",
        "13.0",
        "iOS",
        "13.3",
        "mobile",
        False,
        "FR",
        "France",
        None,
        None,
        "37.170.17.0",
        "glamira.fr",
        "internal",
        "www.glamira.fr",
        "/glamira-anillo-saphira-skug100335.html",
        "https://www.glamira.fr/glamira-anillo-saphira-skug100335.html",
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    assert row["visitor_id"] == visitor_id(
        daily_salt(KEY, dt.date(2020, 6, 4)), "glamira.fr", "37.170.17.183", IPHONE
    )
    assert row["product_id"] == "110474" and row["id"] == "5ed8cb2bc1f5b2a6c8fd1a2c"


def test_output_columns_pass_through_everything_but_raw_pii() -> None:
    events = random_events(50, seed=2)
    events["option"] = [[{"option_id": "1"}]] * 50
    events.index = pd.RangeIndex(1000, 1050)
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    assert list(enriched.columns) == output_columns(events.columns)
    assert list(enriched.columns) == pass_through_columns(events.columns) + list(ENRICHED_COLUMNS)
    assert not set(DROPPED_COLUMNS) & set(enriched.columns)
    assert enriched.index.equals(events.index)
    for column in pass_through_columns(events.columns):
        pd.testing.assert_series_equal(enriched[column], events[column])


def test_raw_ip_and_email_do_not_leave_the_function() -> None:
    events = random_events(300, seed=3)
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    raw = {
        "37.170.17.183",
        "8.8.8.8",
        "2a01:cb00::1",
        "Jane.Doe@Example.com ",
        "jane.doe@example.com",
    }
    values = {v for column in enriched.columns for v in enriched[column] if isinstance(v, str)}
    assert not raw & values


def test_flags_off_store_no_ip_and_no_email_hash() -> None:
    events = random_events(100, seed=4)
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=False, hash_email=False)
    assert enriched["ip_anonymized"].isna().all()
    assert enriched["email_hash"].isna().all()
    assert (enriched["country_code"] != "ZZ").any()  # geolocation still happens


def test_cost_scales_with_distinct_values_not_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []

    def counting_classify(value: object):
        calls.append(value)
        return classify_user_agent(value)

    monkeypatch.setattr(batch_module, "classify_user_agent", counting_classify)
    events = random_events(5000, seed=5)
    enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    # Each distinct string once, plus once for "missing" (None and NaN share a slot).
    assert len(calls) == events["user_agent"].nunique() + 1
    assert len(calls) <= len(USER_AGENTS) + 1


def test_empty_batch_keeps_the_schema() -> None:
    events = random_events(10, seed=6).iloc[:0]
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    assert len(enriched) == 0
    assert list(enriched.columns) == output_columns(events.columns)
    assert enriched["is_bot"].dtype == bool and str(enriched["visitor_id"].dtype) == "Int64"


@pytest.mark.parametrize("string_dtype", ["string[python]", "string[pyarrow]"])
def test_pandas_string_columns_with_missing_values(string_dtype: str) -> None:
    events = pd.DataFrame(
        {
            "ip": ["8.8.8.8", None, "37.170.17.183"],
            "user_agent": [CHROME, None, GOOGLEBOT],
            "referrer_url": ["https://www.google.fr/", None, ""],
            "current_url": ["https://www.glamira.fr/?utm_source=a", None, "https://glamira.fr/"],
            "email_address": [None, "a@b.co", ""],
            "utm_source": [None, "", "x"],
            "utm_medium": [None, None, None],
        },
        dtype=string_dtype,
    )
    events["event_date"] = pd.to_datetime(["2020-06-04", None, "2020-06-05"])
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    assert enriched["country_code"].tolist() == ["US", "ZZ", "FR"]
    assert enriched["referrer_medium"].tolist() == ["search", "direct", "direct"]
    assert enriched["utm_source_n"].tolist() == ["a", None, "x"]
    assert enriched["is_bot"].tolist() == [False, True, True]
    assert enriched["visitor_id"].isna().tolist() == [False, True, False]


@pytest.mark.parametrize(
    "day",
    [
        dt.date(2020, 6, 4),
        dt.datetime(2020, 6, 4, 12),
        pd.Timestamp("2020-06-04 23:00"),
        np.datetime64("2020-06-04"),
        "2020-06-04",
    ],
)
def test_event_date_representations_give_the_same_visitor_id(day: object) -> None:
    events = random_events(1, seed=7).assign(event_date=pd.Series([day], dtype=object))
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    reference = random_events(1, seed=7).assign(event_date=[dt.date(2020, 6, 4)])
    expected = enrich_batch(reference, pii_key=KEY, anonymize_ip=True, hash_email=True)
    assert enriched["visitor_id"].iloc[0] == expected["visitor_id"].iloc[0]


@pytest.mark.parametrize("bad_day", [None, "yesterday", 17, pd.NaT])
def test_unusable_event_date_gives_no_visitor_id(bad_day: object) -> None:
    events = random_events(3, seed=8).assign(event_date=pd.Series([bad_day] * 3, dtype=object))
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    assert enriched["visitor_id"].isna().all()


def test_visitor_grouping_without_the_combined_integer_key(monkeypatch) -> None:
    events = random_events(400, seed=9)
    combined = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    monkeypatch.setattr(batch_module, "_MAX_COMBINED_KEYS", 0.0)
    stacked = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    pd.testing.assert_series_equal(combined["visitor_id"], stacked["visitor_id"])


def test_same_visitor_same_day_shares_an_id_across_pages() -> None:
    events = random_events(4, seed=10).assign(
        ip="37.170.17.183",
        user_agent=IPHONE,
        current_url=[
            "https://www.glamira.fr/a",
            "https://glamira.fr/b?x=1",
            "https://www.glamira.fr/c",
            "https://www.glamira.de/a",
        ],
        event_date=[dt.date(2020, 6, 4)] * 3 + [dt.date(2020, 6, 4)],
    )
    ids = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)["visitor_id"]
    assert ids.iloc[0] == ids.iloc[1] == ids.iloc[2]
    assert ids.iloc[3] != ids.iloc[0]  # another country site is another site


def test_wrong_columns_are_a_programming_error() -> None:
    events = random_events(2, seed=11)
    with pytest.raises(ValueError, match="lacks columns"):
        enrich_batch(
            events.drop(columns=["referrer_url"]), pii_key=KEY, anonymize_ip=True, hash_email=True
        )
    with pytest.raises(ValueError, match="already has output columns"):
        enrich_batch(events.assign(browser="x"), pii_key=KEY, anonymize_ip=True, hash_email=True)


# The enrichment columns as the job's Arrow pass types them (transform.prepare_batches).
_ARROW_TYPES = {"string": pa.string(), "boolean": pa.bool_(), "bigint": pa.int64()}
ENRICHED_ARROW_SCHEMA = pa.schema(
    [
        pa.field(name, _ARROW_TYPES[sql_type], nullable)
        for name, sql_type, nullable in ENRICHED_FIELDS
    ]
)


def test_enrichment_columns_convert_to_arrow_from_events_as_the_jvm_hands_them_over() -> None:
    # Events as Spark hands them over: strings or None (never False), valid UTF-8 (the JVM has
    # replaced lone surrogates). Enrichment columns must then convert, garbage included.
    events = random_events(200, seed=15)
    for column in (c for c in batch_module.INPUT_COLUMNS if c != "event_date"):
        events[column] = [
            v.encode("utf-8", "replace").decode() if isinstance(v, str) else None
            for v in events[column]
        ]
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    table = pa.Table.from_pandas(
        enriched[list(ENRICHED_COLUMNS)],
        schema=ENRICHED_ARROW_SCHEMA,
        preserve_index=False,
        safe=True,
    )
    assert table.num_rows == 200
    for name, _, nullable in ENRICHED_FIELDS:
        if not nullable:
            assert table.column(name).null_count == 0, name


def test_enrichment_columns_are_storable_even_from_unencodable_input() -> None:
    # Lone surrogates and NUL in the inputs (possible in Python text, not in Spark's).
    events = random_events(300, seed=16)
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    table = pa.Table.from_pandas(
        enriched[list(ENRICHED_COLUMNS)], schema=ENRICHED_ARROW_SCHEMA, preserve_index=False
    )
    for name in ENRICHED_COLUMNS:
        if pa.types.is_string(table.schema.field(name).type):
            assert not any("\x00" in value for value in table.column(name).drop_null().to_pylist())


def test_duplicate_index_labels_keep_rows_aligned() -> None:
    events = random_events(60, seed=17)
    events.index = [position // 3 for position in range(60)]
    enriched = enrich_batch(events, pii_key=KEY, anonymize_ip=True, hash_email=True)
    assert enriched.index.equals(events.index)
    for position in range(60):
        expected = expected_row(events.iloc[position])
        assert enriched.iloc[position]["id"] == events.iloc[position]["id"]
        assert enriched.iloc[position]["country_code"] == expected["country_code"]
        assert cell(enriched.iloc[position]["visitor_id"]) == expected["visitor_id"]
