"""The RSS/Atom connector against the simulated feed server, over real HTTP (waits go to a FakeClock)."""

from __future__ import annotations

import json
import random
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests

from archiver.clock import FakeClock
from archiver.config import AccountConfig
from archiver.connectors.base import Page, SaveState, Scope, WalkComplete, WalkFailed, WalkPlan
from archiver.connectors.http import HttpClient
from archiver.connectors.rss import FeedConnector, decode_document, html_to_text
from archiver.errors import AuthError, ConfigError, RateLimited
from archiver.harvest import harvest_account
from archiver.plugins import ConnectorRegistry
from archiver.simulated.feeds import FeedServer, render_rss, seed_demo

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
FEED = Scope("feed")
BACKFILL = WalkPlan(backfill=True, since=None)


@pytest.fixture
def feeds():
    with FeedServer(now=lambda: NOW) as srv:
        yield srv


@pytest.fixture
def make(feeds):
    """make(name, **options) -> (connector, clock); max_wait defaults to 30 s."""

    def _make(name: str = "alerts", max_wait: float = 30, **options):
        account = AccountConfig(name="apd-alerts", connector="rss", options={"url": feeds.url_for(name), **options},
                                max_wait=timedelta(seconds=max_wait))
        clock = FakeClock(NOW)
        http = HttpClient(clock=clock, rng=random.Random(1), timeout=5, max_bytes=1 << 20)
        return FeedConnector(account, http, clock), clock

    return _make


def at(hours: float) -> datetime:
    return NOW - timedelta(days=2) + timedelta(hours=hours)


def item(n: int, **kw) -> dict:
    return {"guid": f"alert-{n}", "title": f"Alert {n}", "summary": f"<p>Body of alert {n}</p>",
            "link": f"https://local.nixle.com/alert/{n}/", "published": at(n), **kw}


def walk(conn: FeedConnector, state: dict | None = None) -> list:
    return list(conn.walk(WalkPlan(backfill=False, since=NOW - timedelta(days=30), state=state or {})))


def items(events) -> list:
    return [it for ev in events if isinstance(ev, Page) for it in ev.items]


def state_of(events) -> dict:
    [save] = [ev for ev in events if isinstance(ev, SaveState)]
    return dict(save.values)


def assert_failed(events) -> WalkFailed:
    """A failed walk: one WalkFailed, nothing else (no items, no completion, no new state)."""
    assert [type(ev) for ev in events] == [WalkFailed]
    return events[0]


# -- parsing -----------------------------------------------------------------------------------------------
def test_rss_items_are_keyed_by_guid_with_fallback_keys(feeds, make):
    feeds.set_feed("alerts", "rss", [
        item(3, author="Sgt. Ray", enclosures=["https://cdn.example/map.png"]),
        item(2, guid=None),  # no guid: link + publication time
        {"title": "No guid, no link", "summary": "<p>x</p>", "published": at(1)},
    ])
    conn, _ = make()
    evs = walk(conn)
    assert [type(ev) for ev in evs] == [Page, WalkComplete, SaveState]
    page = evs[0]
    assert page.scope == FEED and evs[1].scope == FEED and page.exchange.status == 200
    first, second, third = page.items
    assert first.native_id == "alert-3"
    assert second.native_id == f"https://local.nixle.com/alert/2/ {at(2).isoformat()}"
    assert third.native_id.startswith("sha256:") and len(third.native_id) == 71
    assert all(i.kind == "post" and i.parent_native_id is None for i in page.items)
    assert first.text == "Alert 3\n\nBody of alert 3"
    assert first.created_at == at(3) and first.created_at.tzinfo is not None and first.edited_at is None
    assert (first.author, first.permalink) == ("Sgt. Ray", "https://local.nixle.com/alert/3/")
    assert first.content == {"title": "Alert 3", "summary_html": "<p>Body of alert 3</p>", "content_html": None,
                             "enclosures": ["https://cdn.example/map.png"]}
    # raw: JSON-able, the entry's strings as written, the item's exact source text from the body
    json.dumps(first.raw)
    entry = first.raw["entry"]
    assert first.raw["format"] == "rss20" and entry["id"] == "alert-3"
    assert entry["published"] == format_datetime(at(3), usegmt=True) and "published_parsed" not in entry
    for it in page.items:
        assert it.raw["xml"].startswith("<item>") and it.raw["xml"].endswith("</item>")
        assert it.raw["xml"].encode() in page.exchange.body
    # the same document gives the same items, byte for byte
    assert [(i.native_id, i.fingerprint(), i.raw) for i in items(walk(conn))] == \
        [(i.native_id, i.fingerprint(), i.raw) for i in page.items]


def test_atom_entries_use_atom_id_and_keep_updated_in_raw(feeds, make):
    feeds.set_feed("news", "atom", [item(5, updated=at(7), author="PIO"), item(4), item(3, guid=None)])
    conn, _ = make("news")
    edited, plain, fallback = items(walk(conn))
    assert edited.native_id == "alert-5" and edited.raw["format"] == "atom10"
    assert (edited.created_at, edited.edited_at, edited.author) == (at(5), None, "PIO")
    assert edited.raw["entry"]["updated"]  # the feed's own edit time stays in the evidence
    assert plain.edited_at is None  # updated == published
    assert fallback.native_id == f"https://local.nixle.com/alert/3/ {at(3).isoformat()}"
    assert edited.raw["xml"].startswith("<entry>") and edited.raw["xml"].endswith("</entry>")
    assert edited.text == "Alert 5\n\nBody of alert 5"


def test_static_nixle_fixture(feeds, make):
    body = (FIXTURES / "nixle_alerts.xml").read_bytes()
    feeds.set_raw("alerts", body, "application/rss+xml; charset=utf-8")
    conn, _ = make()
    road, located, weather = items(walk(conn))
    assert road.native_id == road.permalink == "https://local.nixle.com/alert/9810412/"
    assert road.text == ("Advisory: Main St closed for water main repair\n\nMain St between 3rd & 5th is closed "
                         "until 6 PM.\n\nUse Kellogg as a detour.\nExpect delays \u2014 plan ahead.")
    assert road.author == "Andover Police Department"
    assert located.content["title"] == "Community: Missing person located & safe"
    assert located.created_at == datetime(2026, 11, 1, 3, 10, tzinfo=UTC)  # -0500 -> UTC
    assert located.content["enclosures"] == ["https://cdn.nixle.com/uploads/pub-media/9810398/photo.jpg"]
    assert weather.native_id == f"https://local.nixle.com/alert/9810377/ {datetime(2026, 10, 30, 19, tzinfo=UTC).isoformat()}"
    for it in (road, located, weather):
        assert it.raw["xml"].encode() in body and it.raw["xml"].startswith("<item>")


def test_static_atom_fixture(feeds, make):
    feeds.set_raw("news", (FIXTURES / "city_news.atom.xml").read_bytes(), "application/atom+xml")
    conn, _ = make("news")
    report, hiring = items(walk(conn))
    assert report.text == ("Annual report now online\n\nCalls for service were down 4%.\n\nThefts: 112\n"
                           "Crashes: 87")
    assert report.edited_at is None and "2026-10-29" in report.raw["entry"]["updated"]
    assert report.author == "Public Information Officer" and report.content["content_html"].startswith("<p>")
    # Atom text constructs are not HTML: kept literally in text, escaped in the *_html field
    assert hiring.text == "We're hiring\n\nApplications close on the 15th. Pay: $25 < x < $32 per hour."
    assert hiring.content["summary_html"] == "Applications close on the 15th. Pay: $25 &lt; x &lt; $32 per hour."
    assert hiring.created_at == datetime(2026, 10, 20, 8, tzinfo=UTC) and hiring.edited_at is None


def test_hostile_titles_and_summaries_are_data(feeds, make):
    title = '<script>alert("t")</script> & \u202eevil\u202c ]]> 🚓'
    summary = '<p>Call &lt;911&gt; &amp; <b>stay</b> safe</p><script>steal()</script>]]>'
    feeds.set_feed("alerts", "rss", [item(1, title=title, summary=summary)])
    feeds.set_feed("news", "atom", [item(1, title=title, summary=summary)])
    for name in ("alerts", "news"):
        conn, _ = make(name)
        [it] = items(walk(conn))
        assert it.content["title"] == title and it.raw["entry"]["title"] == title
        assert it.content["summary_html"] == summary and it.raw["entry"]["summary"] == summary
        assert it.text == f"{title}\n\nCall <911> & stay safe\n\n]]>"


def test_encodings_are_declared_never_guessed(feeds, make):
    doc = '<?xml version="1.0" encoding="windows-1252"?>\n<rss version="2.0"><channel><title>t</title>' \
          '<item><guid>g1</guid><title>Caf\xe9 \u2019s</title></item></channel></rss>'
    # The XML declaration wins over a wrong HTTP charset.
    feeds.set_raw("alerts", doc.encode("cp1252"), "text/xml; charset=utf-8")
    conn, _ = make()
    [it] = items(walk(conn))
    assert it.text == "Caf\xe9 \u2019s"
    # UTF-16 with a byte-order mark
    feeds.set_raw("alerts", doc.replace("windows-1252", "utf-16").encode("utf-16"), "application/xml")
    [it] = items(walk(conn))
    assert it.text == "Caf\xe9 \u2019s" and it.raw["xml"] == "<item><guid>g1</guid><title>Caf\xe9 \u2019s</title></item>"
    assert decode_document(b"<rss/>", None) == ("utf-8", "XML default", "<rss/>")
    assert decode_document(b"<rss/>", "text/xml; charset=ISO-8859-1")[:2] == ("ISO-8859-1", "HTTP charset")


@pytest.mark.parametrize("case", ["truncated", "invalid_utf8", "html", "latin1_undeclared", "not_a_feed", "empty",
                                  "unknown_encoding"])
def test_malformed_documents_fail_with_their_exchange_and_no_items(feeds, make, case):
    feeds.set_feed("alerts", "rss", [item(1), item(2)])
    raw = {
        "latin1_undeclared": b"<rss version='2.0'><channel><item><guid>1</guid><title>caf\xe9</title></item>"
                             b"</channel></rss>",
        "not_a_feed": b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'><body/></html>",
        "empty": b"",
        "unknown_encoding": b"<?xml version='1.0' encoding='x-klingon'?><rss/>",
    }
    if case in raw:
        feeds.set_raw("alerts", raw[case], "application/xml")
    else:
        feeds.inject(case, "alerts")
    conn, _ = make()
    fail = assert_failed(walk(conn))
    assert fail.scope == FEED and "malformed feed" in fail.error and feeds.url_for("alerts") in fail.error
    assert fail.exchange is not None and fail.exchange.status == 200
    if case == "invalid_utf8":
        assert "not valid utf-8" in fail.error.lower()
    # a later good fetch reads the feed again
    if case not in raw:
        assert len(items(walk(conn))) == 2


# -- conditional GET ---------------------------------------------------------------------------------------
def test_conditional_get_sends_validators_and_304_is_an_empty_ok_run(feeds, make):
    feeds.set_feed("alerts", "rss", [item(1), item(2)])
    conn, _ = make()
    first = walk(conn)
    state = state_of(first)
    assert set(state) == {"etag", "last_modified"} and state["etag"].startswith('"')
    sent = feeds.requests_seen[-1]["headers"]
    assert "If-None-Match" not in sent and "If-Modified-Since" not in sent and "rss+xml" in sent["Accept"]

    second = walk(conn, state)
    assert [type(ev) for ev in second] == [Page, WalkComplete, SaveState]
    assert second[0].exchange.status == 304 and second[0].items == () and second[0].scope == FEED
    assert state_of(second) == state
    sent = feeds.requests_seen[-1]["headers"]
    assert sent["If-None-Match"] == state["etag"] and sent["If-Modified-Since"] == state["last_modified"]

    feeds.add_item("alerts", **item(3))
    third = walk(conn, state)
    assert third[0].exchange.status == 200 and [i.native_id for i in items(third)] == ["alert-3", "alert-1", "alert-2"]
    assert state_of(third)["etag"] != state["etag"]
    assert state_of(third)["last_modified"] != state["last_modified"]


def test_last_modified_alone_and_no_validators(feeds, make):
    feeds.set_feed("alerts", "rss", [item(1)], etag=False)
    conn, _ = make()
    state = state_of(walk(conn))
    assert list(state) == ["last_modified"]
    evs = walk(conn, state)
    assert evs[0].exchange.status == 304 and state_of(evs) == state
    assert "If-None-Match" not in feeds.requests_seen[-1]["headers"]

    feeds.set_feed("alerts", "rss", [item(1)], etag=False, last_modified=False)
    evs = walk(conn, state)
    assert evs[0].exchange.status == 200 and len(items(evs)) == 1
    assert state_of(evs) == {}  # nothing to send next time: the state is cleared


def test_a_304_to_an_unconditional_request_is_a_failure(feeds, make):
    feeds.set_raw("alerts", b"", "application/xml", status=304)
    conn, _ = make()
    fail = assert_failed(walk(conn))
    assert "304" in fail.error and fail.exchange.status == 304


# -- versions and removals ---------------------------------------------------------------------------------
def test_a_changed_item_keeps_its_key_and_changes_its_fingerprint(feeds, make):
    feeds.set_feed("alerts", "rss", [item(2), item(1)])
    conn, _ = make()
    before = {i.native_id: i for i in items(walk(conn))}
    feeds.edit_item("alerts", "alert-1", summary="<p>Body of alert 1 (updated: road reopened)</p>")
    after = {i.native_id: i for i in items(walk(conn))}
    assert set(before) == set(after) == {"alert-1", "alert-2"}
    assert before["alert-1"].fingerprint() != after["alert-1"].fingerprint()
    assert after["alert-1"].text.endswith("(updated: road reopened)")
    assert before["alert-2"].fingerprint() == after["alert-2"].fingerprint()
    feeds.edit_item("alerts", "alert-2", updated=at(30))  # a new <updated> with the same words is not an edit
    assert {i.native_id: i for i in items(walk(conn))}["alert-2"].fingerprint() == before["alert-2"].fingerprint()


def test_an_item_dropped_from_the_feed_is_simply_not_yielded(feeds, make):
    feeds.set_feed("alerts", "rss", [item(3), item(2), item(1)])
    conn, _ = make()
    walk(conn)
    feeds.remove_item("alerts", "alert-1")
    evs = walk(conn)
    assert [i.native_id for i in items(evs)] == ["alert-3", "alert-2"] and not any(
        isinstance(ev, WalkFailed) for ev in evs)
    assert FeedConnector.can_detect_removal is False
    assert conn.probe("post", "alert-1").gone is False


# -- HTTP errors -------------------------------------------------------------------------------------------
def test_5xx_is_retried_then_fails_with_the_exchange(feeds, make):
    feeds.set_feed("alerts", "rss", [item(1)])
    feeds.inject("5xx", "alerts", times=2, status=503)
    conn, clock = make()
    assert len(items(walk(conn))) == 1 and len(clock.slept) == 2
    feeds.inject("5xx", "alerts", times=None)
    before = len(feeds.requests_seen)
    fail = assert_failed(walk(conn))
    assert "gave up after 5 attempts" in fail.error and fail.exchange.status == 500
    assert len(feeds.requests_seen) - before == 5


def test_429_retry_after_is_honoured_within_max_wait(feeds, make):
    feeds.set_feed("alerts", "rss", [item(1)])
    feeds.inject("429", "alerts", retry_after=7)
    conn, clock = make()
    assert len(items(walk(conn))) == 1 and clock.slept == [7.0]
    conn, clock = make()
    feeds.inject("429", "alerts", retry_after=format_datetime(NOW + timedelta(seconds=12), usegmt=True))
    assert len(items(walk(conn))) == 1 and clock.slept == [12.0]
    feeds.inject("429", "alerts", retry_after=3600)
    with pytest.raises(RateLimited, match="max_wait 30 s"):
        walk(conn)


def test_503_with_retry_after_waits_and_network_errors_are_retried(feeds, make):
    feeds.set_feed("alerts", "rss", [item(1)])
    feeds.inject("5xx", "alerts", status=503, retry_after=4)
    conn, clock = make()
    assert len(items(walk(conn))) == 1 and clock.slept == [4.0]
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    account = AccountConfig(name="apd-alerts", connector="rss", options={"url": f"http://127.0.0.1:{port}/feed"})
    clock = FakeClock(NOW)
    conn = FeedConnector(account, HttpClient(clock=clock, rng=random.Random(1), timeout=2), clock)
    fail = assert_failed(walk(conn))
    assert "gave up after 5 attempts" in fail.error and fail.exchange is None and len(clock.slept) == 4


@pytest.mark.parametrize("status, words", [(404, "was not found (HTTP 404)"), (410, "is gone (HTTP 410)"),
                                            (403, "answered HTTP 403")])
def test_missing_or_forbidden_feed_fails_naming_the_url(feeds, make, status, words):
    feeds.set_raw("alerts", b"<html>no</html>", "text/html", status=status)
    conn, _ = make("alerts" if status != 404 else "nowhere")
    fail = assert_failed(walk(conn))
    assert words in fail.error and fail.exchange.status == status
    assert (feeds.url_for("nowhere") if status == 404 else feeds.url_for("alerts")) in fail.error


def test_401_is_an_auth_error(feeds, make):
    feeds.set_raw("alerts", b"Unauthorized", "text/plain", status=401)
    conn, _ = make()
    with pytest.raises(AuthError, match="apd-alerts"):
        walk(conn)


def test_a_response_larger_than_max_bytes_fails(feeds, make):
    feeds.set_feed("alerts", "rss", [item(1)])
    feeds.inject("huge", "alerts", size=50_000)
    conn, _ = make(max_bytes=20_000)
    fail = assert_failed(walk(conn))
    assert "larger than 20000 bytes" in fail.error
    assert len(items(walk(conn))) == 1


def test_config_is_checked(feeds):
    for options, key in (({"url": "ftp://x/feed"}, "url"), ({"url": "http://x/", "max_bytes": "lots"}, "max_bytes")):
        with pytest.raises(ConfigError, match=key):
            FeedConnector(AccountConfig(name="a", connector="rss", options=options), None, FakeClock(NOW))


# -- HTML to text, the simulator ---------------------------------------------------------------------------
@pytest.mark.parametrize("html, text", [
    ("<p>One</p><p>Two</p>", "One\n\nTwo"),
    ("a<br>b<br/>c", "a\nb\nc"),
    ("  lots   of\n\twhite  space ", "lots of white space"),
    ("<ul><li>x</li><li>y</li></ul>", "x\ny"),
    ("&lt;b&gt; &amp;amp; &eacute; &#x1F693;", "<b> &amp; \xe9 \U0001F693"),
    ("<style>p{}</style><script>if (a < b) x()</script>shown", "shown"),
    ("<pre>  keep\n   this</pre>", "  keep\n   this"),
    ("<p>a <b>b</b> </p>\n  <p> c<br><br>d</p>", "a b\n\nc\n\nd"),
    ("a < b and c > d", "a < b and c > d"),
])
def test_html_to_text(html, text):
    assert html_to_text(html) == text


def test_rendering_escapes_and_rejects_what_xml_cannot_hold():
    body = render_rss("T & <co>", "http://x/", [item(1, title="a]]>b", summary="<b>x</b>]]>y")])
    assert b"a]]&gt;b" in body and b"<![CDATA[<b>x</b>]]]]><![CDATA[>y]]>" in body
    with pytest.raises(ValueError, match="XML 1.0"):
        render_rss("T", "http://x/", [item(1, title="bell \x07")])


def test_seed_demo_and_control_api(feeds, make):
    guids = seed_demo(feeds, now=NOW)
    rss, _ = make("alerts")
    atom, _ = make("alerts-atom")
    got_rss, got_atom = items(walk(rss)), items(walk(atom))
    assert [i.native_id for i in got_rss] == [i.native_id for i in got_atom] == guids
    assert [i.text for i in got_rss] == [i.text for i in got_atom]
    assert any(i.text.startswith("Missing person located") for i in got_rss)
    resp = requests.post(f"{feeds.url}/_control/add_item", timeout=5,
                         json={"name": "alerts", "guid": "new-1", "title": "Road reopened",
                               "published": "2026-11-01T11:00:00Z"})
    assert resp.status_code == 200
    assert items(walk(rss))[0].native_id == "new-1" and items(walk(rss))[0].created_at == NOW - timedelta(hours=1)
    assert requests.post(f"{feeds.url}/_control/nope", json={}, timeout=5).status_code == 404


# -- end to end: harvests into a real archive ----------------------------------------------------------------
@pytest.fixture
def registry() -> ConnectorRegistry:
    reg = ConnectorRegistry.discover()
    reg.connectors.setdefault("rss", FeedConnector)  # until the entry point is installed
    return reg


def test_harvests_keep_versions_and_never_mark_removal(archive, feeds, clock):
    feeds.set_feed("alerts", "rss", [item(2), item(1)])
    acc = AccountConfig(name="apd-alerts", connector="rss", options={"url": feeds.url_for("alerts")},
                        max_wait=timedelta(seconds=10))
    first = harvest_account(archive, acc, rng=random.Random(1))
    assert (first.status, first.new_records, first.new_versions) == ("ok", 2, 0)  # versions beyond the first
    unchanged = harvest_account(archive, acc, rng=random.Random(1))  # 304
    assert (unchanged.status, unchanged.new_records, unchanged.new_versions) == ("ok", 0, 0)
    assert feeds.requests_seen[-1]["headers"].get("If-None-Match")
    feeds.edit_item("alerts", "alert-1", title="Alert 1 (update)")
    feeds.remove_item("alerts", "alert-2")
    third = harvest_account(archive, acc, rng=random.Random(1))
    assert (third.status, third.new_records, third.new_versions) == ("ok", 0, 1)
    assert third.events["edited"] == 1 and third.events["removed"] == 0
    feeds.inject("truncated", "alerts")  # a malformed document is a partial run that stores no item
    feeds.add_item("alerts", **item(3))
    fourth = harvest_account(archive, acc, rng=random.Random(1))
    assert (fourth.status, fourth.new_records) == ("partial", 0) and "malformed feed" in fourth.error
