from __future__ import annotations

import time

import pytest

from pagestream_spark.enrich import user_agent
from pagestream_spark.enrich.user_agent import UserAgentInfo, classify_user_agent

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/13.0.5 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 12_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/12.1 Mobile/15E148 Safari/604.1"
)
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; SM-G960F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/83.0.4103.106 Mobile Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 9; SM-T820) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/83.0.4103.106 Safari/537.36"
)
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 12; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/100.0.4896.127 Mobile Safari/537.36"
)
SMART_TV = (
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36"
)
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36"
)
LIGHTHOUSE = (
    "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse"
)


@pytest.mark.parametrize(
    ("user_agent_string", "expected"),
    [
        (IPHONE, UserAgentInfo("Mobile Safari", "13.0", "iOS", "13.3", "mobile", False)),
        (IPAD, UserAgentInfo("Mobile Safari", "12.1", "iOS", "12.2", "tablet", False)),
        (WINDOWS_CHROME, UserAgentInfo("Chrome", "120.0", "Windows", "10", "desktop", False)),
        (MAC_SAFARI, UserAgentInfo("Safari", "17.4", "Mac OS X", "10.15", "desktop", False)),
        (ANDROID_PHONE, UserAgentInfo("Chrome Mobile", "83.0", "Android", "10", "mobile", False)),
        (ANDROID_TABLET, UserAgentInfo("Chrome", "83.0", "Android", "9", "tablet", False)),
        (CUBOT_PHONE, UserAgentInfo("Chrome Mobile", "100.0", "Android", "12", "mobile", False)),
        (SMART_TV, UserAgentInfo("Samsung Internet", "4.0", "Tizen", "6.0", "other", False)),
    ],
)
def test_people_get_browser_os_and_device_class(
    user_agent_string: str, expected: UserAgentInfo
) -> None:
    assert classify_user_agent(user_agent_string) == expected


@pytest.mark.parametrize(
    "user_agent_string",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0)",
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
        HEADLESS,
        LIGHTHOUSE,
        "python-requests/2.31.0",
        "curl/8.4.0",
        "Wget/1.21.4",
        "Go-http-client/2.0",
        "WhatsApp/2.23.20.0",
        "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    ],
)
def test_bots_are_flagged_and_classed_as_bot(user_agent_string: str) -> None:
    info = classify_user_agent(user_agent_string)
    assert info.is_bot is True
    assert info.device_class == "bot"


@pytest.mark.parametrize("absent", [None, False, "", "   ", 42, 3.5, b"curl/8"])
def test_absent_or_non_string_user_agent_is_a_bot_not_an_error(absent: object) -> None:
    assert classify_user_agent(absent) == UserAgentInfo("Other", None, "Other", None, "bot", True)


def test_garbage_and_unicode_are_unknown_people() -> None:
    info = classify_user_agent("garbage \x00 ünïcødé ☃ \ud800")
    assert info == UserAgentInfo("Other", None, "Other", None, "other", False)


def test_huge_user_agent_is_truncated_and_fast() -> None:
    huge = WINDOWS_CHROME + "x" * 1_000_000
    started = time.perf_counter()
    info = classify_user_agent(huge)
    assert time.perf_counter() - started < 1.0
    assert info.browser == "Chrome" and info.device_class == "desktop"


def test_results_are_memoised_with_a_bound() -> None:
    classify_user_agent(IPHONE)
    hits_before = user_agent._classify.cache_info().hits
    classify_user_agent(IPHONE)
    cache_info = user_agent._classify.cache_info()
    assert cache_info.hits == hits_before + 1
    assert cache_info.maxsize == user_agent.CACHE_SIZE


def test_device_classes_are_the_documented_set() -> None:
    samples = [IPHONE, IPAD, WINDOWS_CHROME, ANDROID_TABLET, SMART_TV, HEADLESS, None]
    assert {classify_user_agent(ua).device_class for ua in samples} == set(
        user_agent.DEVICE_CLASSES
    )
