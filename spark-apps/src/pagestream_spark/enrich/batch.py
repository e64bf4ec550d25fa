"""Enrichment of a whole batch (a pandas DataFrame of the enrichment's input columns; the job's
``mapInArrow`` pass in transform.py builds it from each Arrow batch).

Cost scales with the number of *distinct* values, not rows: each column is factorised once
(`pd.factorize`), every distinct user agent, IP, URL, referrer, e-mail and (date, site, IP, UA)
combination is enriched once, and the results are mapped back to rows with one numpy `take`.
A micro-batch of page views has far fewer distinct values than rows (a visitor's events share
IP, UA and referrer), which is where the speed comes from.

Raw personal data does not leave this function: `ip` and `email_address` are dropped from the
output; only the anonymised IP, the keyed e-mail hash and the daily visitor id remain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from pagestream_spark.enrich import geo, pii
from pagestream_spark.enrich.page_url import normalize_utm, parse_page_url
from pagestream_spark.enrich.product_page import product_page, url_base
from pagestream_spark.enrich.referrer import parse_referrer, site_label, strip_www
from pagestream_spark.enrich.user_agent import classify_user_agent

# Page URLs and referrers recur across batches (product pages, search engines, campaigns), and
# Spark reuses a Python worker from batch to batch: parsing each distinct one once per worker,
# not once per batch, roughly halves the enrichment's cost on the simulator's traffic. Bounded,
# so memory stays flat (a few hundred bytes an entry).
_URL_MEMO_SIZE = 1 << 17
_parse_page_url = lru_cache(maxsize=_URL_MEMO_SIZE)(parse_page_url)
_parse_referrer = lru_cache(maxsize=_URL_MEMO_SIZE)(parse_referrer)


@lru_cache(maxsize=_URL_MEMO_SIZE)
def _product_page_url_of_base(base: object) -> str | None:
    page = product_page(base)
    return None if page is None else page.url


def _product_page_url(url: object) -> str | None:
    """The canonical product page URL of a page URL, memoised on the URL without its query."""
    return _product_page_url_of_base(url_base(url))


# Columns enrich_batch reads. Any other input column is passed through unchanged.
INPUT_COLUMNS = (
    "ip",
    "user_agent",
    "referrer_url",
    "current_url",
    "email_address",
    "utm_source",
    "utm_medium",
    "event_date",
)
# Raw personal data: read, then dropped from the output.
DROPPED_COLUMNS = ("ip", "email_address")

# The columns enrich_batch adds, in output order, as (name, Spark SQL type, nullable).
ENRICHED_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("browser", "string", False),
    ("browser_version", "string", True),
    ("os", "string", False),
    ("os_version", "string", True),
    ("device_class", "string", False),
    ("is_bot", "boolean", False),
    ("country_code", "string", False),
    ("country_name", "string", False),
    ("region", "string", True),
    ("city", "string", True),
    ("ip_anonymized", "string", True),
    ("referrer_domain", "string", True),
    ("referrer_medium", "string", False),
    ("page_host", "string", True),
    ("page_path", "string", True),
    ("product_url", "string", True),
    ("utm_source_n", "string", True),
    ("utm_medium_n", "string", True),
    ("utm_campaign", "string", True),
    ("utm_term", "string", True),
    ("utm_content", "string", True),
    ("email_hash", "string", True),
    ("visitor_id", "bigint", True),
)
ENRICHED_COLUMNS = tuple(name for name, _, _ in ENRICHED_FIELDS)


def pass_through_columns(input_columns: Iterable[str]) -> list[str]:
    """The input columns that appear unchanged in the output, in input order (all of them but
    the raw PII ones)."""
    return [column for column in input_columns if column not in DROPPED_COLUMNS]


def output_columns(input_columns: Iterable[str]) -> list[str]:
    """Output column order of `enrich_batch`: pass-through columns, then `ENRICHED_COLUMNS`."""
    return pass_through_columns(input_columns) + list(ENRICHED_COLUMNS)


def _check_columns(columns: Sequence[Hashable]) -> None:
    missing = [column for column in INPUT_COLUMNS if column not in columns]
    if missing:
        raise ValueError(f"enrich_batch input lacks columns {missing}")
    clashing = [column for column in ENRICHED_COLUMNS if column in columns]
    if clashing:
        raise ValueError(f"enrich_batch input already has output columns {clashing}")


class _Factorized:
    """Distinct values of a column and, per row, the index of its value; index -1 (missing
    value) reads the last slot of every per-distinct array, which holds the missing value's
    result (the "+1" slot that `per_distinct` appends)."""

    def __init__(self, column: pd.Series) -> None:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        self.codes: np.ndarray = codes
        self.values: list[Any] = np.asarray(uniques, dtype=object).tolist()

    def per_distinct(self, function: Callable[[Any], Any]) -> list[Any]:
        """`function` of each distinct value, then of None (for missing values)."""
        return [function(value) for value in self.values] + [function(None)]

    def take(self, distinct_results: Sequence[Any] | np.ndarray, dtype: Any = object) -> np.ndarray:
        array = np.empty(len(distinct_results), dtype=dtype)
        array[:] = distinct_results
        # Fancy indexing by an integer array is an array (numpy's stubs say Any for ndarray[Any]).
        taken: np.ndarray = array[self.codes]
        return taken


def _as_date(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):  # pandas Timestamp included
        return None if pd.isna(value) else value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64) and not np.isnat(value):
        return pd.Timestamp(value).date()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def enrich_batch(
    pdf: pd.DataFrame, *, pii_key: bytes, anonymize_ip: bool, hash_email: bool
) -> pd.DataFrame:
    """Enrich one batch of events. Reads `INPUT_COLUMNS` (strings that may be None/False/NaN,
    and `event_date` as datetime.date, pandas Timestamp or ISO string), returns the input minus
    `DROPPED_COLUMNS` with `ENRICHED_COLUMNS` appended (see `output_columns`), index kept.

    - `anonymize_ip=False` means no IP at all is stored (`ip_anonymized` is None), and
      `hash_email=False` means no e-mail hash (`email_hash` is None): raw values never leave.
    - `visitor_id` is the daily-salted hash of (site = page host without www., IP, user agent)
      under `pii.daily_salt(pii_key, event_date)`; None when `event_date` is missing/invalid.

    Raises ValueError only for a wrong set of columns; never for bad values."""
    _check_columns(list(pdf.columns))
    row_count = len(pdf)

    user_agents = _Factorized(pdf["user_agent"])
    agent_infos = user_agents.per_distinct(classify_user_agent)
    enriched: dict[str, Any] = {
        "browser": user_agents.take([info.browser for info in agent_infos]),
        "browser_version": user_agents.take([info.browser_version for info in agent_infos]),
        "os": user_agents.take([info.os for info in agent_infos]),
        "os_version": user_agents.take([info.os_version for info in agent_infos]),
        "device_class": user_agents.take([info.device_class for info in agent_infos]),
        "is_bot": user_agents.take([info.is_bot for info in agent_infos], dtype=bool),
    }

    ips = _Factorized(pdf["ip"])
    distinct_ips = [*ips.values, None]
    located = geo.locate_ips(distinct_ips)
    enriched["country_code"] = ips.take(located.country_code)
    enriched["country_name"] = ips.take(located.country_name)
    enriched["region"] = ips.take(located.region)
    enriched["city"] = ips.take(located.city)
    if anonymize_ip:
        enriched["ip_anonymized"] = ips.take(geo.anonymize_ips(distinct_ips))
    else:
        enriched["ip_anonymized"] = np.full(row_count, None, dtype=object)

    # The page and its site: the site label decides "internal" referrers, the host without
    # www. is the site of the visitor id.
    pages = _Factorized(pdf["current_url"])
    page_urls = pages.per_distinct(_parse_page_url)
    page_site_labels = [site_label(page.host) for page in page_urls]
    referrers = _Factorized(pdf["referrer_url"])
    parsed_referrers = referrers.per_distinct(_parse_referrer)
    label_ids: dict[str | None, int] = {None: -1}
    page_label_ids = [label_ids.setdefault(label, len(label_ids)) for label in page_site_labels]
    referrer_label_ids = [
        label_ids.setdefault(site, len(label_ids)) for _, site in parsed_referrers
    ]
    row_referrer_label = referrers.take(referrer_label_ids, dtype=np.int64)
    is_internal = (row_referrer_label >= 0) & (
        row_referrer_label == pages.take(page_label_ids, dtype=np.int64)
    )
    enriched["referrer_domain"] = referrers.take([ref.domain for ref, _ in parsed_referrers])
    enriched["referrer_medium"] = np.where(
        is_internal, "internal", referrers.take([ref.medium for ref, _ in parsed_referrers])
    ).astype(object)

    enriched["page_host"] = pages.take([page.host for page in page_urls])
    enriched["page_path"] = pages.take([page.path for page in page_urls])
    # The product page the URL is, if any (enrich.product_page); the sink keeps one per product.
    enriched["product_url"] = pages.take(pages.per_distinct(_product_page_url))
    for field, event_column in (("utm_source", "utm_source"), ("utm_medium", "utm_medium")):
        event_values = _Factorized(pdf[event_column])
        from_event = event_values.take(event_values.per_distinct(normalize_utm))
        from_url = pages.take([getattr(page, field) for page in page_urls])
        enriched[f"{field}_n"] = np.where(pd.isna(from_event), from_url, from_event)
    for field in ("utm_campaign", "utm_term", "utm_content"):
        enriched[field] = pages.take([getattr(page, field) for page in page_urls])

    if hash_email:
        emails = _Factorized(pdf["email_address"])
        enriched["email_hash"] = emails.take(
            emails.per_distinct(lambda email: pii.hash_email(email, pii_key))
        )
    else:
        enriched["email_hash"] = np.full(row_count, None, dtype=object)

    page_sites = [strip_www(page.host) if page.host else "" for page in page_urls]
    enriched["visitor_id"] = _visitor_ids(
        pdf["event_date"], pii_key, page_sites, pages, ips, user_agents
    )

    output = pdf.drop(columns=list(DROPPED_COLUMNS))
    added = pd.DataFrame(
        {
            name: values
            if isinstance(values, pd.api.extensions.ExtensionArray) or values.dtype != object
            else pd.Series(values, index=pdf.index, dtype=object)
            for name, values in enriched.items()
        },
        index=pdf.index,
    )
    return pd.concat([output, added], axis=1)


# Distinct (date, site, IP, UA) combinations are numbered in one int64 when they fit.
_MAX_COMBINED_KEYS = 2.0**62


def _visitor_ids(
    event_dates: pd.Series,
    pii_key: bytes,
    page_sites: list[str],
    pages: _Factorized,
    ips: _Factorized,
    user_agents: _Factorized,
) -> pd.api.extensions.ExtensionArray:
    dates = _Factorized(event_dates)
    salts = dates.per_distinct(
        lambda value: None if (day := _as_date(value)) is None else pii.daily_salt(pii_key, day)
    )
    sites = _Factorized(pd.Series(page_sites, dtype=object))
    row_site = sites.codes[pages.codes]  # page code → site code (pages' -1 reads the last slot)

    # One integer per distinct (date, site, IP, UA): codes shifted so -1 (missing) becomes 0.
    components = [dates.codes + 1, row_site + 1, ips.codes + 1, user_agents.codes + 1]
    radices = [
        len(dates.values) + 1,
        len(sites.values) + 1,
        len(ips.values) + 1,
        len(user_agents.values) + 1,
    ]
    if np.prod(np.array(radices, dtype=np.float64)) < _MAX_COMBINED_KEYS:
        combined = np.zeros(len(event_dates), dtype=np.int64)
        for component, radix in zip(components, radices, strict=True):
            combined = combined * radix + component
        row_group, group_keys = pd.factorize(combined)
        group_components = []
        for radix in reversed(radices):
            group_components.append(group_keys % radix)
            group_keys = group_keys // radix
        group_components.reverse()
    else:  # cardinalities too large for one int64: group on the four columns
        stacked = np.stack(components, axis=1)
        unique_rows, row_group = np.unique(stacked, axis=0, return_inverse=True)
        group_components = [unique_rows[:, position] for position in range(4)]
        row_group = row_group.reshape(-1)

    # Index 0 of each component is "missing"; values lists are shifted to match. Each distinct
    # value is encoded once, each distinct combination hashed once.
    date_salts = [salts[-1], *salts[:-1]]
    site_fields = [pii.encode_field(None), *(pii.encode_field(site) for site in sites.values)]
    ip_fields = [
        pii.encode_field(None),
        *(pii.encode_field(ip.strip() if isinstance(ip, str) else None) for ip in ips.values),
    ]
    agent_fields = [pii.encode_field(None), *map(pii.encode_field, user_agents.values)]
    group_ids: list[int | None] = []
    for date_code, site_code, ip_code, agent_code in zip(
        *(component.tolist() for component in group_components), strict=True
    ):
        salt = date_salts[date_code]
        group_ids.append(
            None
            if salt is None
            else pii.visitor_id_of_encoded(
                salt, site_fields[site_code] + ip_fields[ip_code] + agent_fields[agent_code]
            )
        )
    distinct = pd.array(group_ids, dtype="Int64")
    return distinct.take(row_group)


def warm_up() -> None:
    """Load the GeoIP tables and the user-agent regexes now (~1 s) rather than in the first
    batch, e.g. to keep that cost out of a latency measurement."""
    geo.locate_ips(["192.0.2.1"])
    classify_user_agent("Mozilla/5.0 (warm-up)")
