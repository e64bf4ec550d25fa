"""The event contract: what a valid tracker event is, shared by the simulator (which produces
events) and the streaming job (which validates them). The JSON Schema is the source of truth
for users; the constants here are what code needs."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

PAGE_VIEW = "view_product_detail"

# Event types the reference tracker emits. Others are accepted and stored as "other events".
KNOWN_COLLECTIONS = (
    PAGE_VIEW,
    "select_product_option",
    "select_product_option_quality",
    "view_listing_page",
    "view_landing_page",
    "view_static_page",
    "add_to_cart_action",
    "view_shopping_cart",
    "checkout",
    "checkout_success",
    "product_detail_recommendation_visible",
    "product_detail_recommendation_noticed",
    "product_detail_recommendation_clicked",
    "listing_page_recommendation_visible",
    "listing_page_recommendation_clicked",
    "search_box_action",
    "back_to_product_action",
)

REQUIRED_FIELDS = (
    "id",
    "time_stamp",
    "collection",
    "device_id",
    "ip",
    "user_agent",
    "current_url",
    "store_id",
)

# Optional string fields where the tracker writes false or "" for "absent".
FALSY_ABSENT_FIELDS = (
    "referrer_url",
    "user_id_db",
    "email_address",
    "utm_source",
    "utm_medium",
    "resolution",
)

# Event time bounds: before this (2000-01-01) or more than this far ahead of the processing
# clock, an event time is invalid.
MIN_EVENT_EPOCH = 946_684_800
MAX_FUTURE_SKEW_SECONDS = 86_400

# A record larger than this is dead-lettered as `oversize` without being parsed.
MAX_RECORD_BYTES = 64 * 1024


@cache
def event_json_schema() -> dict[str, Any]:
    # The file is a JSON Schema document: one JSON object.
    schema: dict[str, Any] = json.loads(
        files(__package__).joinpath("event.schema.json").read_text()
    )
    return schema
