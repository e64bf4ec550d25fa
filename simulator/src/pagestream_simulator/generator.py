"""A pure, seeded generator of tracker events: a discrete-event simulation of visitor sessions.

Sessions arrive as a Poisson process whose intensity follows the stores' local daily rhythm;
each session emits page events separated by think times, and a heap interleaves all open
sessions so events come out in event-time order. The same seed and config give the same
events, byte for byte once encoded (nothing here reads the clock or global random state).
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, TypeVar

from pagestream_common.contract import PAGE_VIEW
from pagestream_simulator.pools import (
    BRAND,
    CAMPAIGN,
    CAMPAIGNS,
    CATEGORY_PAGES,
    CRAWLERS,
    DEVICE_MIX,
    DIRECT,
    ENTRY_MIX,
    HOURLY_PROFILE,
    HUMAN_AGENTS,
    LANDING_PAGES,
    PRODUCT_TYPES,
    SEARCH,
    SEARCH_REFERRERS,
    SOCIAL_REFERRERS,
    STATIC_PAGES,
    STORES,
    AddressPool,
    Catalogue,
    Product,
    Store,
    cumulative,
    weighted_index,
)

T = TypeVar("T")

# A visitor inactive this long starts a new session (the usual web-analytics convention, and
# what the streaming job uses). Think times inside a session stay well below it.
SESSION_GAP_SECONDS = 30 * 60
MAX_THINK_SECONDS = 20 * 60
# Chance per event that a session ends there: mean session length 1/p events.
HUMAN_END_PROBABILITY = 0.2
BOT_END_PROBABILITY = 0.04
RETURNING_VISITOR_SHARE = 0.3
LOGGED_IN_SHARE = 0.12
RETURNING_POOL_SIZE = 20_000

# Human think times are log-normal (median ~25 s, a long tail), capped below the session gap.
# Drawn through a quantile table: one random() instead of a Box-Muller transform per event.
THINK_TABLE_SIZE = 4096
HUMAN_THINK_QUANTILES = tuple(
    min(math.exp(3.2 + 1.0 * NormalDist().inv_cdf((i + 0.5) / THINK_TABLE_SIZE)), MAX_THINK_SECONDS)
    for i in range(THINK_TABLE_SIZE)
)

HUMAN_MEAN_THINK = sum(HUMAN_THINK_QUANTILES) / THINK_TABLE_SIZE
# Crawlers fetch a page every BOT_THINK_MIN + BOT_THINK_SPAN * uniform seconds.
BOT_THINK_MIN = 0.5
BOT_THINK_SPAN = 5.5
# A session caught between two of its events is more likely to be in a long think than in a
# short one (the inspection paradox): the think in progress is drawn in proportion to its
# length, hence these cumulative weights over the human quantile table.
HUMAN_THINK_IN_PROGRESS = cumulative(HUMAN_THINK_QUANTILES)

PRODUCT_COLLECTIONS = frozenset(
    {
        PAGE_VIEW,
        "select_product_option",
        "select_product_option_quality",
        "add_to_cart_action",
        "product_detail_recommendation_visible",
        "product_detail_recommendation_noticed",
        "product_detail_recommendation_clicked",
        "back_to_product_action",
    }
)


@dataclass(frozen=True)
class GeneratorConfig:
    seed: int = 0
    start_time: float = 1_700_000_000.0
    # Average events per simulated second over a day; sets how much simulated time a run
    # covers, and (with session length) how many visitors are on the site at once.
    sim_rate: float = 100.0
    daily_rhythm: bool = True
    # Share of events (not sessions) that come from crawlers.
    bot_share: float = 0.05
    # Each device's clock is off by a uniform offset in ±clock_skew_seconds.
    clock_skew_seconds: float = 0.0
    catalogue_size: int = 5_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.bot_share <= 1.0:
            raise ValueError(f"bot_share must be within [0, 1], got {self.bot_share}")
        if self.sim_rate <= 0:
            raise ValueError(f"sim_rate must be positive, got {self.sim_rate}")
        if self.clock_skew_seconds < 0:
            raise ValueError("clock_skew_seconds must be >= 0")
        if self.catalogue_size < 10:
            raise ValueError("catalogue_size must be at least 10")
        if self.start_time < 946_684_800:
            raise ValueError("start_time must be after 2000-01-01")


class Device:
    __slots__ = (
        "active",
        "device_id",
        "email",
        "is_bot",
        "key",
        "last_seen",
        "resolution",
        "skew",
        "store_index",
        "user_agent",
        "user_id",
    )

    def __init__(
        self,
        device_id: str,
        user_agent: str,
        resolution: str,
        user_id: str,
        email: str,
        is_bot: bool,
        skew: int,
        store_index: int,
    ) -> None:
        self.device_id = device_id
        self.key = device_id.encode()
        self.user_agent = user_agent
        self.resolution = resolution
        self.user_id = user_id
        self.email = email
        self.is_bot = is_bot
        self.skew = skew
        self.store_index = store_index
        self.last_seen = 0.0
        self.active = True


class Session:
    __slots__ = (
        "device",
        "entry",
        "ip",
        "landing_query",
        "last",
        "offset",
        "product",
        "referrer",
        "store",
        "store_index",
        "url",
        "utm",
    )

    def __init__(self, device: Device, store_index: int, store: Store, ip: str) -> None:
        self.device = device
        self.store_index = store_index
        self.store = store
        self.offset = store.utc_offset_hours * 3600
        self.ip = ip
        self.last = ""  # previous collection; "" before the first event
        self.product: Product | None = None
        self.url = ""
        self.referrer = ""
        self.entry: str = DIRECT
        self.utm: tuple[str, str] | None = None
        self.landing_query = ""


# An event as the generator hands it on: (kafka key, collection, from a crawler, store UTC
# offset in seconds, the event object). A tuple because this is built 150k times a second.
GeneratedEvent = tuple[bytes, str, bool, int, dict[str, Any]]


class LocalTimeFormatter:
    """``YYYY-MM-DD HH:MM:SS`` for an epoch second. Events arrive in time order, so the same
    few seconds (one per store time zone) repeat: cache them, and the date part."""

    __slots__ = ("cache", "day", "day_text")

    def __init__(self) -> None:
        self.day = -1
        self.day_text = ""
        self.cache: dict[int, str] = {}

    def __call__(self, seconds: int) -> str:
        text = self.cache.get(seconds)
        if text is None:
            if len(self.cache) > 4096:
                self.cache.clear()
            text = self.cache[seconds] = self._format(seconds)
        return text

    def _format(self, seconds: int) -> str:
        day, rest = divmod(seconds, 86_400)
        if day != self.day:
            self.day = day
            self.day_text = time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        return f"{self.day_text} {hours:02d}:{minutes:02d}:{secs:02d}"


class EventGenerator:
    """Iterate to get :data:`GeneratedEvent` tuples in event-time order, forever."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.catalogue = Catalogue(random.Random(f"{config.seed}/catalogue"), config.catalogue_size)
        self.format_local = LocalTimeFormatter()
        self._local_cache = self.format_local.cache  # read directly on the hot path
        # ObjectId prefix (the creation second in hex), shared by the events of one second.
        self._id_second = -1
        self._id_prefix = ""
        self._product_paths: dict[tuple[int, str], str] = {}

        self.store_addresses = [AddressPool(s.cidrs) for s in STORES]
        weights = [s.weight for s in STORES]
        profile = HOURLY_PROFILE if config.daily_rhythm else (1.0,) * 24
        mean_profile = sum(profile) / 24
        total_weight = sum(weights)
        # For each UTC hour: which store a new session goes to (weight x local-hour traffic),
        # and the overall intensity relative to the daily mean.
        self.store_tables: list[list[float]] = []
        self.intensity: list[float] = []
        for utc_hour in range(24):
            local = [
                w * profile[(utc_hour + s.utc_offset_hours) % 24] / mean_profile
                for w, s in zip(weights, STORES, strict=True)
            ]
            self.store_tables.append(cumulative(local))
            self.intensity.append(sum(local) / total_weight)

        self.device_classes = [name for name, _ in DEVICE_MIX]
        self.device_table = cumulative([share for _, share in DEVICE_MIX])
        self.entry_kinds = [name for name, _ in ENTRY_MIX]
        self.entry_table = cumulative([share for _, share in ENTRY_MIX])
        self.crawler_table = cumulative([c.weight for c in CRAWLERS])
        self.crawler_addresses = [AddressPool((c.cidr,)) for c in CRAWLERS]

        human_len = 1.0 / HUMAN_END_PROBABILITY
        bot_len = 1.0 / BOT_END_PROBABILITY
        share = config.bot_share
        # Bot sessions are longer; pick the per-session bot probability that makes the
        # expected share of *events* equal bot_share.
        denominator = share * human_len + (1 - share) * bot_len
        self.bot_session_probability = share * human_len / denominator if denominator else 0.0
        self.mean_session_events = (
            self.bot_session_probability * bot_len + (1 - self.bot_session_probability) * human_len
        )

        self.now = float(config.start_time)
        # The simulated start: config.start_time, unless warm_start() moved it.
        self.start_time = self.now
        # Sessions warm_start() opened mid-way (their earlier events are never emitted).
        self.open_sessions_at_start = 0
        self.heap: list[tuple[float, int, Session]] = []
        self.sequence = 0
        self.next_arrival = self.now
        self.returning: list[Device] = []
        self.sessions_started = 0
        self.bot_sessions_started = 0
        self.devices_created = 0

    # -- arrivals ---------------------------------------------------------------------------

    def _session_rate(self, at: float) -> float:
        hour = int(at // 3600) % 24
        return self.config.sim_rate * self.intensity[hour] / self.mean_session_events

    def _pick(self, items: Sequence[T]) -> T:
        # Cheaper than Random.choice (no rejection sampling); the bias is below 2**-40.
        return items[int(self.rng.random() * len(items))]

    def _uuid4(self) -> str:
        h = self.rng.getrandbits(128).to_bytes(16, "big").hex()
        # Version 4, RFC 4122 variant, as a browser's crypto.randomUUID() would give.
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _skew(self) -> int:
        limit = self.config.clock_skew_seconds
        return round(self.rng.uniform(-limit, limit)) if limit else 0

    def _new_human(self, store_index: int) -> Device:
        rng = self.rng
        kind = self.device_classes[weighted_index(rng, self.device_table)]
        agent = self._pick(HUMAN_AGENTS[kind])
        user_id = email = ""
        if rng.random() < LOGGED_IN_SHARE:
            number = rng.randrange(100_000, 9_999_999)
            user_id = str(number)
            email = f"customer{number}@example.{self._pick(('com', 'org', 'net'))}"
        self.devices_created += 1
        return Device(
            self._uuid4(),
            agent.user_agent,
            self._pick(agent.resolutions),
            user_id,
            email,
            False,
            self._skew(),
            store_index,
        )

    def _start_session(self, at: float) -> Session:
        self.sessions_started += 1
        if self.rng.random() < self.bot_session_probability:
            self.bot_sessions_started += 1
            return self._new_crawl(at)
        return self._new_visit(at)

    def _new_crawl(self, at: float) -> Session:
        rng = self.rng
        hour = int(at // 3600) % 24
        crawler_index = weighted_index(rng, self.crawler_table)
        crawler = CRAWLERS[crawler_index]
        store_index = weighted_index(rng, self.store_tables[hour])
        self.devices_created += 1
        # Crawlers keep no cookies: every crawl is a new device id.
        device = Device(self._uuid4(), crawler.user_agent, "", "", "", True, 0, store_index)
        return Session(
            device,
            store_index,
            STORES[store_index],
            self.crawler_addresses[crawler_index].draw(rng),
        )

    def _new_visit(self, at: float) -> Session:
        rng = self.rng
        hour = int(at // 3600) % 24
        device = None
        if self.returning and rng.random() < RETURNING_VISITOR_SHARE:
            candidate = self._pick(self.returning)
            # Only a visitor idle for longer than the session gap comes back as a new session.
            if not candidate.active and at - candidate.last_seen > SESSION_GAP_SECONDS + 60:
                device = candidate
                device.active = True
        if device is None:
            store_index = weighted_index(rng, self.store_tables[hour])
            device = self._new_human(store_index)
            if len(self.returning) < RETURNING_POOL_SIZE:
                self.returning.append(device)
            else:
                self.returning[rng.randrange(RETURNING_POOL_SIZE)] = device
        store_index = device.store_index
        session = Session(
            device, store_index, STORES[store_index], self.store_addresses[store_index].draw(rng)
        )
        entry = self.entry_kinds[weighted_index(rng, self.entry_table)]
        session.entry = entry
        tld = session.store.tld
        if entry == SEARCH:
            session.referrer = self._pick(SEARCH_REFERRERS).format(tld=tld)
        elif entry == CAMPAIGN:
            campaign = self._pick(CAMPAIGNS)
            session.referrer = campaign.referrer.format(tld=tld)
            session.utm = (campaign.source, campaign.medium)
            query = f"utm_source={campaign.source}&utm_medium={campaign.medium}"
            query += f"&utm_campaign={campaign.name}"
            if campaign.click_id:
                query += f"&{campaign.click_id}={rng.getrandbits(96):024x}"
            session.landing_query = query
        elif entry != DIRECT:
            session.referrer = self._pick(SOCIAL_REFERRERS)
        return session

    # -- pages ------------------------------------------------------------------------------

    def _product_url(self, session: Session, product: Product) -> str:
        cache_key = (session.store_index, product.product_id)
        path = self._product_paths.get(cache_key)
        if path is None:  # first view of this product in this store
            store = session.store
            words = PRODUCT_TYPES[product.kind]
            word = words.get(store.language, words["en"])
            path = f"{store.host}/{BRAND}-{word}-{product.name}-{product.sku}.html"
            self._product_paths[cache_key] = path
        return path

    def _next_collection(self, last: str, bot: bool) -> str:
        r = self.rng.random()
        if bot:
            return PAGE_VIEW if r < 0.8 else "view_listing_page"
        if last == "":
            if r < 0.62:
                return PAGE_VIEW
            return "view_listing_page" if r < 0.88 else "view_landing_page"
        if last == PAGE_VIEW or last == "back_to_product_action":
            if r < 0.30:
                return PAGE_VIEW
            if r < 0.48:
                return "select_product_option"
            if r < 0.58:
                return "product_detail_recommendation_visible"
            if r < 0.71:
                return "view_listing_page"
            if r < 0.77:
                return "add_to_cart_action"
            if r < 0.82:
                return "search_box_action"
            return "view_static_page" if r < 0.85 else "view_listing_page"
        if last == "product_detail_recommendation_visible":
            if r < 0.45:
                return "product_detail_recommendation_noticed"
            return PAGE_VIEW if r < 0.8 else "select_product_option"
        if last == "product_detail_recommendation_noticed":
            return "product_detail_recommendation_clicked" if r < 0.55 else PAGE_VIEW
        if last in ("product_detail_recommendation_clicked", "listing_page_recommendation_clicked"):
            return PAGE_VIEW
        if last in ("select_product_option", "select_product_option_quality"):
            if r < 0.25:
                return "select_product_option"
            if r < 0.35:
                return "select_product_option_quality"
            return "add_to_cart_action" if r < 0.55 else PAGE_VIEW
        if last == "view_listing_page":
            if r < 0.68:
                return PAGE_VIEW
            if r < 0.78:
                return "listing_page_recommendation_visible"
            return "view_listing_page" if r < 0.95 else "search_box_action"
        if last == "listing_page_recommendation_visible":
            return "listing_page_recommendation_clicked" if r < 0.3 else PAGE_VIEW
        if last == "add_to_cart_action":
            return "view_shopping_cart" if r < 0.7 else "back_to_product_action"
        if last == "view_shopping_cart":
            if r < 0.45:
                return "checkout"
            return PAGE_VIEW if r < 0.8 else "view_listing_page"
        if last == "checkout":
            return "checkout_success" if r < 0.55 else "view_shopping_cart"
        # landing, static, search, checkout_success: look around the catalogue
        return "view_listing_page" if r < 0.5 else PAGE_VIEW

    def _emit(self, session: Session, at: float) -> GeneratedEvent:
        rng = self.rng
        device = session.device
        store = session.store
        bot = device.is_bot
        collection = self._next_collection(session.last, bot)
        first = session.last == ""
        referrer = session.referrer if first else session.url
        utm_source: str | bool = False
        utm_medium: str | bool = False
        recommended = False
        product = session.product
        option: list[dict[str, str]] | None = None
        include_option = False

        if collection == PAGE_VIEW:
            last = session.last
            if last in (
                "product_detail_recommendation_clicked",
                "listing_page_recommendation_clicked",
            ):
                recommended = True
                product = self.catalogue.neighbour(rng, product or self.catalogue.pick(rng))
            else:
                product = self.catalogue.pick(rng)
            url = self._product_url(session, product)
            r = rng.random()
            if not bot and r < 0.7:
                option = product.preselected
                include_option = True
                url += product.preselected_query
            elif not bot and r < 0.9:
                option = []
                include_option = True
        elif collection in ("select_product_option", "select_product_option_quality"):
            product = product or self.catalogue.pick(rng)
            selections = product.selections
            query, option = selections[int(rng.random() * len(selections))]
            include_option = True
            url = self._product_url(session, product) + query
        elif collection in PRODUCT_COLLECTIONS:
            product = product or self.catalogue.pick(rng)
            url = self._product_url(session, product)
        elif collection in ("view_listing_page", "listing_page_recommendation_visible"):
            url = f"{store.host}/{self._pick(CATEGORY_PAGES)}/"
        elif collection == "view_landing_page":
            url = f"{store.host}/{self._pick(LANDING_PAGES)}"
        elif collection == "view_static_page":
            url = f"{store.host}/{self._pick(STATIC_PAGES)}.html"
        elif collection == "search_box_action":
            url = f"{store.host}/catalogsearch/result/?q={self._pick(CATEGORY_PAGES)}"
        elif collection == "view_shopping_cart":
            url = f"{store.host}/checkout/cart/"
        elif collection == "checkout":
            url = f"{store.host}/checkout/"
        elif collection == "checkout_success":
            url = f"{store.host}/checkout/onepage/success/"
        else:  # listing_page_recommendation_clicked
            product = self.catalogue.pick(rng)
            url = f"{store.host}/{self._pick(CATEGORY_PAGES)}/"

        if first and session.utm is not None:
            # The landing URL carries the campaign; the tracker copies it into utm_*.
            utm_source, utm_medium = session.utm
            url = f"{url}{'&' if '?' in url else '?'}{session.landing_query}"

        r_show = rng.random()
        true_time = int(at)
        event_time = true_time + device.skew
        if true_time != self._id_second:
            self._id_second = true_time
            self._id_prefix = f"{true_time & 0xFFFFFFFF:08x}"
        id_prefix = self._id_prefix
        offset = session.offset
        local_time = self._local_cache.get(event_time + offset)
        if local_time is None:
            local_time = self.format_local(event_time + offset)
        event: dict[str, Any] = {
            # ObjectId layout: creation second (server clock) then random bytes.
            "id": id_prefix + rng.getrandbits(64).to_bytes(8, "big").hex(),
            "time_stamp": event_time,
            "ip": session.ip,
            "user_agent": device.user_agent,
            "resolution": device.resolution,
            "user_id_db": device.user_id,
            "device_id": device.device_id,
            "api_version": "1.0",
            "store_id": store.store_id,
            "local_time": local_time,
            "show_recommendation": "true" if r_show < 0.4 else "false",
            "current_url": url,
            "referrer_url": referrer,
            "email_address": device.email,
            "recommendation": recommended,
            "utm_source": utm_source,
            "utm_medium": utm_medium,
            "collection": collection,
        }
        if collection in PRODUCT_COLLECTIONS and product is not None:
            event["product_id"] = product.product_id
        if include_option:
            event["option"] = option
        session.last = collection
        session.product = product
        session.url = url
        return (device.key, collection, bot, offset, event)

    # -- the simulation loop ----------------------------------------------------------------

    def __iter__(self) -> EventGenerator:
        return self

    def __next__(self) -> GeneratedEvent:
        heap = self.heap
        if heap and heap[0][0] <= self.next_arrival:
            at, _, session = heapq.heappop(heap)
        else:
            at = self.next_arrival
            session = self._start_session(at)
            self.next_arrival = at + self.rng.expovariate(self._session_rate(at))
        self.now = at
        generated = self._emit(session, at)
        bot = session.device.is_bot
        end = BOT_END_PROBABILITY if bot else HUMAN_END_PROBABILITY
        if session.last == "checkout_success" or self.rng.random() < end:
            session.device.active = False
            session.device.last_seen = at
        else:
            self.sequence += 1
            r = self.rng.random()
            think = (
                BOT_THINK_MIN + BOT_THINK_SPAN * r
                if bot
                else HUMAN_THINK_QUANTILES[int(r * THINK_TABLE_SIZE)]
            )
            heapq.heappush(heap, (at + think, self.sequence, session))
        return generated

    # -- starting in steady state ------------------------------------------------------------

    def warm_start(self, clock: Callable[[], float]) -> int:
        """Open the sessions a site has when traffic has been running for a long time, then
        start the simulated clock at ``clock()``; returns how many sessions it opened.

        Started cold, the generator has no visitor on the site: at first only sessions' first
        events come out (~20% of the steady rate), and the rate climbs slowly with the think
        times' long tail (measured at sim_rate 5,000: 60% after 2 simulated minutes, 90%
        after 7, 95% after 10). Simulating those minutes and throwing the events away would
        mean generating over two million events at 5,000/s. Instead this draws the open
        sessions' steady-state distribution directly. Sessions arrive as a Poisson process at
        rate a, so the expected number open after their k-th event (k >= 1) is
        a * P(k events without ending) * mean think; the think in progress is length-biased,
        and the time left of it uniform. Only the survivors are built: ~30 sessions per
        event/s. Call it before the first event; the daily rhythm's intensity is taken at
        the configured start.
        """
        if self.sessions_started or self.heap:
            raise RuntimeError("warm_start() must come before the first event")
        rng = self.rng
        random_ = rng.random
        arrivals = self._session_rate(self.now)
        opened: list[tuple[float, Session]] = []
        for bot in (False, True):
            end = BOT_END_PROBABILITY if bot else HUMAN_END_PROBABILITY
            share = self.bot_session_probability if bot else 1.0 - self.bot_session_probability
            mean_think = BOT_THINK_MIN + BOT_THINK_SPAN / 2 if bot else HUMAN_MEAN_THINK
            # sum over k >= 1 of (1 - end)**k; rounded at random so the mean stays exact.
            expected = arrivals * share * mean_think * (1.0 - end) / end
            log_continue = math.log(1.0 - end)
            for _ in range(int(expected + random_())):
                # Events emitted so far: P(k) is proportional to (1 - end)**k.
                emitted = 1 + int(math.log(1.0 - random_()) / log_continue)
                last = ""
                # Crawlers' pages do not depend on the previous one: one draw will do.
                for _ in range(1 if bot else emitted):
                    last = self._next_collection(last, bot)
                    if last == "checkout_success":
                        break
                if last == "checkout_success":
                    continue  # the session ended there: it is not open
                if bot:
                    # Density proportional to t on [MIN, MIN + SPAN], by inversion.
                    low, high = BOT_THINK_MIN**2, (BOT_THINK_MIN + BOT_THINK_SPAN) ** 2
                    think = math.sqrt(low + random_() * (high - low))
                    session = self._new_crawl(self.now)
                else:
                    think = HUMAN_THINK_QUANTILES[weighted_index(rng, HUMAN_THINK_IN_PROGRESS)]
                    session = self._new_visit(self.now)
                self._resume(session, last)
                opened.append((think * (1.0 - random_()), session))  # time left: (0, think]
        start = float(clock())
        self.start_time = self.now = self.next_arrival = start
        self.heap = [(start + left, i, session) for i, (left, session) in enumerate(opened)]
        heapq.heapify(self.heap)
        self.sequence = len(opened)
        self.open_sessions_at_start = len(opened)
        return len(opened)

    def _resume(self, session: Session, last: str) -> None:
        """Put a session opened mid-way on a ``last`` page: the state its next event follows
        on from (previous collection, product, and URL, the next referrer)."""
        session.last = last
        store = session.store
        if last in PRODUCT_COLLECTIONS:
            session.product = self.catalogue.pick(self.rng)
            session.url = self._product_url(session, session.product)
        elif last == "view_shopping_cart":
            session.url = f"{store.host}/checkout/cart/"
        elif last == "checkout":
            session.url = f"{store.host}/checkout/"
        elif last == "view_static_page":
            session.url = f"{store.host}/{self._pick(STATIC_PAGES)}.html"
        else:  # listings and their recommendations, landing pages, searches: a category
            session.url = f"{store.host}/{self._pick(CATEGORY_PAGES)}/"

    def take(self, count: int) -> list[GeneratedEvent]:
        return [next(self) for _ in range(count)]
