"""Enrichment of page-view events: pure functions over values, and `enrich_batch`, which applies
them to a whole pandas batch (built from each Arrow batch of the job's ``mapInArrow`` pass) at
the cost of its distinct values. See batch.py for the output columns."""

from __future__ import annotations

from pagestream_spark.enrich.batch import (
    DROPPED_COLUMNS,
    ENRICHED_COLUMNS,
    ENRICHED_FIELDS,
    INPUT_COLUMNS,
    enrich_batch,
    output_columns,
    pass_through_columns,
    warm_up,
)
from pagestream_spark.enrich.geo import Location, anonymize_ip, locate_ip, locate_ips
from pagestream_spark.enrich.page_url import Campaign, PageUrl, campaign_of, parse_page_url
from pagestream_spark.enrich.pii import daily_salt, hash_email, visitor_id
from pagestream_spark.enrich.product_page import ProductPage, product_page
from pagestream_spark.enrich.referrer import Referrer, classify_referrer
from pagestream_spark.enrich.user_agent import UserAgentInfo, classify_user_agent

__all__ = [
    "DROPPED_COLUMNS",
    "ENRICHED_COLUMNS",
    "ENRICHED_FIELDS",
    "INPUT_COLUMNS",
    "Campaign",
    "Location",
    "PageUrl",
    "ProductPage",
    "Referrer",
    "UserAgentInfo",
    "anonymize_ip",
    "campaign_of",
    "classify_referrer",
    "classify_user_agent",
    "daily_salt",
    "enrich_batch",
    "hash_email",
    "locate_ip",
    "locate_ips",
    "output_columns",
    "parse_page_url",
    "pass_through_columns",
    "product_page",
    "visitor_id",
    "warm_up",
]
