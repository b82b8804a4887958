"""The Facebook connector against the simulated Graph API, over real HTTP (waits go to a FakeClock)."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests

from archiver.clock import FakeClock
from archiver.config import AccountConfig
from archiver.connectors.base import Page, Scope, WalkComplete, WalkFailed, WalkPlan
from archiver.connectors.facebook import FacebookConnector, parse_fb_time
from archiver.connectors.http import REDACTED, HttpClient, RetryPolicy, parse_retry_after, retry
from archiver.errors import AuthError, MalformedResponse, RateLimited, TransientError
from archiver.simulated.facebook import SimulatedFacebook, seed_demo

TOKEN = "EAAGm0PX4ZCpsBAtestPAGEtoken0123456789xyz"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BACKFILL = WalkPlan(backfill=True, since=None)


@pytest.fixture
def fb():
    with SimulatedFacebook(page_id="1000", token=TOKEN, now=lambda: NOW) as sim:
        yield sim


@pytest.fixture
def make(fb, monkeypatch):
    """make(**options) -> (connector, clock); max_wait defaults to 30 s."""
    monkeypatch.setenv("TEST_FB_TOKEN", TOKEN)

    def _make(max_wait: float = 30, max_bytes: int = 1 << 20, **options):
        account = AccountConfig(
            name="apd-facebook",
            connector="facebook",
            options={"page_id": "1000", "access_token": "$env:TEST_FB_TOKEN", "api_base": fb.api_base, **options},
            max_wait=timedelta(seconds=max_wait),
        )
        clock = FakeClock(NOW)
        http = HttpClient(secrets=[], clock=clock, rng=random.Random(1), timeout=5, max_bytes=max_bytes)
        return FacebookConnector(account, http, clock), clock

    return _make


def at(minutes: float) -> datetime:
    return NOW - timedelta(days=3) + timedelta(minutes=minutes)


def seed_threads(fb: SimulatedFacebook, posts: int = 3, comments: int = 2) -> list[str]:
    ids = [fb.add_post(f"post {i}", created_time=at(i * 60)) for i in range(posts)]
    for pid in ids:
        for j in range(comments):
            fb.add_comment(pid, f"comment {j} on {pid}", created_time=at(1000 + j))
    return ids


def events_of(conn: FacebookConnector, plan: WalkPlan = BACKFILL) -> list:
    return list(conn.walk(plan))


def items(events) -> list:
    return [it for ev in events if isinstance(ev, Page) for it in ev.items]


def completed(events) -> set[Scope]:
    return {ev.scope for ev in events if isinstance(ev, WalkComplete)}


def failed(events) -> list[WalkFailed]:
    return [ev for ev in events if isinstance(ev, WalkFailed)]


def thread(pid: str) -> Scope:
    return Scope("thread", post_native_id=pid)


# -- paging, kinds, parents -------------------------------------------------------------------------------
def test_backfill_yields_every_post_comment_and_reply_once(fb, make):
    posts = [fb.add_post(f"Post number {i} #AndoverKS", created_time=at(i * 60)) for i in range(5)]
    comments = [fb.add_comment(posts[4], f"c{j}", author=("u9", "Bob"), created_time=at(400 + j)) for j in range(4)]
    replies = [fb.add_comment(posts[4], f"r{j}", parent_id=comments[j % 2], created_time=at(500 + j))
               for j in range(3)]
    lone = fb.add_comment(posts[0], "first!", created_time=at(30))
    conn, _ = make(page_size=2)

    evs = events_of(conn)
    got = items(evs)
    assert Counter(i.native_id for i in got) == Counter(posts + comments + replies + [lone])
    feed_pages = [ev for ev in evs if isinstance(ev, Page) and ev.scope.kind == "feed"]
    assert len(feed_pages) == 3  # 5 posts, 2 per page
    assert len([ev for ev in evs if isinstance(ev, Page) and ev.scope == thread(posts[4])]) == 4
    by_id = {i.native_id: i for i in got}
    assert [by_id[p].kind for p in posts] == ["post"] * 5
    assert all(by_id[c].kind == "comment" and by_id[c].parent_native_id == posts[4] for c in comments)
    assert [by_id[r].parent_native_id for r in replies] == [comments[0], comments[1], comments[0]]
    assert all(by_id[r].kind == "reply" for r in replies)
    assert completed(evs) == {Scope("feed")} | {thread(p) for p in posts}
    assert not failed(evs)

    post, com = by_id[posts[4]], by_id[comments[0]]
    assert post.text == "Post number 4 #AndoverKS" and post.author == "Andover Police Department"
    assert post.created_at == at(240) and post.created_at.tzinfo is not None and post.edited_at is None
    assert post.permalink.startswith("https://www.facebook.com/1000/posts/")
    assert post.extra["hashtags"] == ["AndoverKS"]
    assert (com.author, com.author_id, com.text, com.hidden) == ("Bob", "u9", "c0", False)
    # raw is the item exactly as it came in the stored response
    page = next(ev for ev in evs if isinstance(ev, Page) and com in ev.items)
    assert json.loads(page.exchange.body)["data"][0] == com.raw
    assert any(TOKEN in seen for seen in fb.requests_seen)  # the token was sent


def test_empty_page_with_next_is_not_the_end(fb, make):
    posts = seed_threads(fb, posts=3, comments=3)
    fb.inject("empty_page_with_next", path_contains="/1000/feed", times=1)
    fb.inject("empty_page_with_next", path_contains=f"/{posts[1]}/comments", times=2)
    conn, _ = make(page_size=2)
    evs = events_of(conn)
    assert len(items(evs)) == 3 + 9
    assert Scope("feed") in completed(evs) and thread(posts[1]) in completed(evs)


def test_hidden_comments_and_hostile_text_are_kept(fb, make):
    pid = fb.add_post("post", created_time=at(0))
    bad = "<script>alert(1)</script> \u202egnirts\u202c 🚓"
    cid = fb.add_comment(pid, bad, created_time=at(5))
    fb.hide_comment(cid)
    conn, _ = make()
    com = next(i for i in items(events_of(conn)) if i.native_id == cid)
    assert com.hidden is True and com.text == bad and com.raw["message"] == bad


def test_attachment_urls_drop_rotating_signatures(fb, make):
    fb.add_post("photo", created_time=at(0), attachments=[{"type": "photo", "title": "Map"}])
    fb.add_post("link", created_time=at(1), attachments=[{"type": "share", "url": "https://example.org/jobs?id=9"}])
    conn, _ = make()
    first = {i.native_id: i for i in items(events_of(conn))}
    second = {i.native_id: i for i in items(events_of(conn))}
    for nid, item in first.items():
        assert item.content == second[nid].content and item.fingerprint() == second[nid].fingerprint()
        assert item.raw != second[nid].raw  # the signed URLs did change
    urls = sorted(a["url"] for i in first.values() for a in i.content["attachments"])
    assert urls == ["https://example.org/jobs", "https://www.facebook.com/photo.php"]


# -- transient errors and malformed responses ---------------------------------------------------------------
def test_transient_5xx_and_html_errors_are_retried(fb, make):
    posts = seed_threads(fb)
    fb.inject("5xx", path_contains="/1000/feed", times=2)
    fb.inject("html", path_contains=f"/{posts[0]}/comments", times=1)
    conn, clock = make()
    evs = events_of(conn)
    assert not failed(evs) and len(items(evs)) == 9
    assert len(clock.slept) == 3 and all(0 <= s <= 4 for s in clock.slept)


def test_retries_exhausted_fail_that_thread_and_the_others_still_walk(fb, make):
    posts = seed_threads(fb)
    fb.inject("5xx", path_contains=f"/{posts[1]}/comments", times=None)
    conn, _ = make()
    evs = events_of(conn)
    [fail] = failed(evs)
    assert fail.scope == thread(posts[1]) and "gave up after 5 attempts" in fail.error
    assert fail.exchange is not None and fail.exchange.status == 500
    assert completed(evs) == {Scope("feed"), thread(posts[0]), thread(posts[2])}
    assert sum(f"/{posts[1]}/comments" in r for r in fb.requests_seen) == 5


def test_feed_failure_stops_the_walk(fb, make):
    seed_threads(fb)
    fb.inject("html", path_contains="/1000/feed", times=None)
    conn, _ = make()
    evs = events_of(conn)
    assert [ev.scope for ev in evs] == [Scope("feed")] and isinstance(evs[0], WalkFailed)
    assert not any("/comments" in r for r in fb.requests_seen)


@pytest.mark.parametrize("fault", ["truncated", "invalid_utf8"])
def test_malformed_thread_page_fails_that_thread_with_its_exchange(fb, make, fault):
    posts = seed_threads(fb)
    fb.inject(fault, path_contains=f"/{posts[0]}/comments")
    conn, _ = make()
    evs = events_of(conn)
    [fail] = failed(evs)
    assert fail.scope == thread(posts[0]) and "malformed response" in fail.error
    assert fail.exchange is not None and fail.exchange.status == 200 and fail.exchange.body
    assert {thread(posts[1]), thread(posts[2])} <= completed(evs)


def test_malformed_feed_page_stops_the_walk(fb, make):
    seed_threads(fb, posts=3)
    fb.inject("truncated", path_contains="after=")  # the second feed page
    conn, _ = make(page_size=2)
    evs = events_of(conn)
    assert isinstance(evs[-1], WalkFailed) and evs[-1].scope == Scope("feed") and evs[-1].exchange
    assert len(items(evs)) == 2 and not completed(evs)


def test_oversized_response_fails_the_scope(fb, make):
    posts = seed_threads(fb)
    fb.inject("huge", path_contains=f"/{posts[2]}/comments", size=200_000)
    conn, _ = make(max_bytes=50_000)
    [fail] = failed(events_of(conn))
    assert fail.scope == thread(posts[2]) and "response larger than 50000 bytes" in fail.error


# -- rate limits and usage headers --------------------------------------------------------------------------
@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
def test_rate_limit_waits_for_retry_after_seconds(fb, make, code):
    seed_threads(fb, posts=1)
    fb.inject("rate_limit", path_contains="/comments", code=code, retry_after="7")
    conn, clock = make()
    evs = events_of(conn)
    assert not failed(evs) and len(items(evs)) == 3
    assert clock.slept == [7.0]


def test_rate_limit_waits_for_retry_after_http_date(fb, make):
    seed_threads(fb, posts=1)
    fb.inject("rate_limit", path_contains="/feed", code=613,
              retry_after=format_datetime(NOW + timedelta(seconds=12), usegmt=True))
    conn, clock = make()
    assert not failed(events_of(conn)) and clock.slept == [12.0]


def test_rate_limit_uses_business_usage_regain_time(fb, make):
    seed_threads(fb, posts=1)
    fb.inject("rate_limit", path_contains="/feed", code=80001, regain_minutes=2)
    conn, clock = make(max_wait=300)
    assert not failed(events_of(conn)) and clock.slept == [120.0]


def test_rate_limit_beyond_max_wait_raises_rate_limited(fb, make):
    seed_threads(fb, posts=2)
    fb.inject("rate_limit", path_contains="/comments", times=None, code=32, retry_after="10")
    conn, clock = make(max_wait=30)
    seen = []
    with pytest.raises(RateLimited) as err:
        for ev in conn.walk(BACKFILL):
            seen.append(ev)
    assert clock.slept == [10.0, 10.0, 10.0]  # 30 s of budget spent, the fourth wait would exceed it
    assert "apd-facebook" in str(err.value) and "max_wait" in str(err.value)
    assert Scope("feed") in completed(seen) and len(items(seen)) == 2  # the feed was kept


def test_invalid_usage_headers_are_ignored_with_a_warning(fb, make, caplog):
    seed_threads(fb, posts=1)
    fb.set_usage(app="{not json", business="[[[")
    conn, clock = make()
    with caplog.at_level(logging.WARNING):
        evs = events_of(conn)
    assert not failed(evs) and len(items(evs)) == 3 and clock.slept == []
    assert "X-App-Usage" in caplog.text and "not valid JSON" in caplog.text


def test_high_usage_slows_down(fb, make):
    seed_threads(fb, posts=2)
    fb.set_usage(app={"call_count": 95, "total_cputime": 20, "total_time": 30})
    conn, clock = make(max_wait=600)
    assert not failed(events_of(conn))
    assert len(clock.slept) == 2 and all(40 < s <= 60 for s in clock.slept)  # before each call after the first

    fb.set_usage(business={"1000": [{"type": "pages", "call_count": 50, "total_cputime": 81,
                                     "total_time": 10, "estimated_time_to_regain_access": 0}]})
    conn, clock = make(max_wait=600)
    events_of(conn)
    assert len(clock.slept) == 2 and all(5 <= s < 10 for s in clock.slept)

    fb.set_usage(app={"call_count": 50, "total_cputime": 20, "total_time": 30})
    conn, clock = make()
    events_of(conn)
    assert clock.slept == []


def test_usage_pauses_stop_at_max_wait(fb, make):
    seed_threads(fb, posts=3)
    fb.set_usage(app={"call_count": 100})
    conn, clock = make(max_wait=90)
    assert not failed(events_of(conn)) and sum(clock.slept) == pytest.approx(90)


# -- tokens and secrets -------------------------------------------------------------------------------------
def test_expired_token_raises_auth_error_naming_account_and_fix(fb, make):
    seed_threads(fb, posts=1)
    fb.expire_token()
    conn, clock = make()
    with pytest.raises(AuthError) as err:
        events_of(conn)
    msg = str(err.value)
    assert "apd-facebook" in msg and "expired" in msg and "$env:TEST_FB_TOKEN" in msg
    assert "generate a new Page access token" in msg and TOKEN not in msg
    assert fb.request_count == 1 and clock.slept == []  # never retried


def test_token_expiring_mid_walk_is_not_retried(fb, make):
    posts = seed_threads(fb, posts=2)
    fb.inject("token_expired", path_contains=f"/{posts[0]}/comments")
    conn, _ = make()
    with pytest.raises(AuthError, match="expired"):
        events_of(conn)
    assert sum(f"/{posts[0]}/comments" in r for r in fb.requests_seen) == 1


def test_token_never_appears_in_exchanges(fb, make):
    posts = seed_threads(fb, posts=5, comments=5)
    fb.inject("truncated", path_contains=f"/{posts[3]}/comments")
    conn, _ = make(page_size=2)
    evs = events_of(conn)
    exchanges = [ev.exchange for ev in evs if isinstance(ev, Page | WalkFailed) and ev.exchange]
    assert len(exchanges) > 10
    for ex in exchanges:
        assert TOKEN not in ex.url and "access_token" not in ex.url
        assert TOKEN.encode() not in ex.body and TOKEN not in json.dumps(dict(ex.headers))
    with_next = [ex for ex in exchanges if b"next" in ex.body]
    assert with_next and all(ex.secrets_redacted and REDACTED in ex.body for ex in with_next)
    assert all(TOKEN not in ev.error for ev in failed(evs))


def test_token_with_url_special_characters_is_redacted_in_every_form(fb, make, monkeypatch):
    odd = "123456|abc/DEF+ghi=="
    fb.set_token(odd)
    seed_threads(fb, posts=3)
    monkeypatch.setenv("TEST_FB_TOKEN", odd)
    conn, _ = make(page_size=1)
    for ev in events_of(conn):
        if isinstance(ev, Page):
            assert b"123456" not in ev.exchange.body and "123456" not in ev.exchange.url


def test_comments_without_ids_are_reported_not_archived(fb, make):
    posts = seed_threads(fb, posts=2)
    empty = fb.add_post("no comments here", created_time=at(500))
    fb.set_moderate(False)
    conn, _ = make()
    evs = events_of(conn)
    assert {i.kind for i in items(evs)} == {"post"}
    fails = failed(evs)
    assert {f.scope for f in fails} == {thread(p) for p in posts}
    assert all("MODERATE" in f.error and "page access token" in f.error and f.exchange for f in fails)
    assert {Scope("feed"), thread(empty)} <= completed(evs)


# -- probing and lookback -----------------------------------------------------------------------------------
def test_probe_tells_deleted_from_present(fb, make):
    [pid] = seed_threads(fb, posts=1, comments=1)
    gone_comment = fb.add_comment(pid, "bye", created_time=at(2000))
    fb.delete_comment(gone_comment)
    conn, _ = make()
    gone = conn.probe("comment", gone_comment)
    assert gone.gone is True and gone.exchange.status == 400 and b'"code":100' in gone.exchange.body
    present = conn.probe("post", pid)
    assert present.gone is False and present.exchange.status == 200
    fb.inject("5xx", path_contains=pid, times=None)
    assert conn.probe("post", pid).gone is False
    fb.clear_faults()
    fb.inject("rate_limit", path_contains=pid, times=None, retry_after="3600")
    assert conn.probe("post", pid).gone is False


def test_lookback_stops_the_feed_early_and_walks_only_recent_threads(fb, make):
    old = [fb.add_post(f"old {i}", created_time=NOW - timedelta(days=60 - i)) for i in range(6)]
    new = [fb.add_post(f"new {i}", created_time=NOW - timedelta(days=5 - i)) for i in range(3)]
    for pid in old + new:
        fb.add_comment(pid, "hi", created_time=NOW - timedelta(days=1))
    since = NOW - timedelta(days=10)
    conn, _ = make(page_size=2)
    evs = events_of(conn, WalkPlan(backfill=False, since=since))
    feed_requests = [r for r in fb.requests_seen if "/1000/feed" in r]
    assert len(feed_requests) == 3  # [new2,new1] [new0,old5] [old4,old3] -> all older: stop
    assert WalkComplete(Scope("feed", since=since)) in evs
    assert {ev.scope for ev in evs if isinstance(ev, WalkComplete) and ev.scope.kind == "thread"} == {
        thread(p) for p in new}


def test_deleted_cursor_item_fails_the_walk_instead_of_skipping(fb, make):
    [pid] = seed_threads(fb, posts=1, comments=4)
    first = requests.get(f"{fb.api_base}/{pid}/comments", params={"access_token": TOKEN, "limit": 2}).json()
    fb.delete_comment(first["data"][-1]["id"])
    resp = requests.get(first["paging"]["next"])
    assert resp.status_code == 400 and resp.json()["error"]["code"] == 100


# -- the simulator's control endpoint and demo -------------------------------------------------------------
def test_control_endpoint_and_demo_seed(fb):
    made = seed_demo(fb)
    assert 10 <= len(made["posts"]) <= 15 and 50 <= len(made["comments"]) <= 75
    assert {"edited_post", "edited_comment", "hidden_comment", "deleted_comment"} <= set(fb.demo_ids)
    assert fb.objects[fb.demo_ids["hidden_at_seed"]].hidden
    assert "<script>" in fb.objects[fb.demo_ids["script_comment"]].message
    assert fb.post_message(fb.demo_ids["edited_post"]).startswith("Road closure")
    resp = requests.post(f"{fb.url}/_control/add_post", json={"message": "from another process"})
    pid = resp.json()["result"]
    cid = requests.post(f"{fb.url}/_control/add_comment",
                        json={"post_id": pid, "message": "hi", "author": ["u7", "Sam"]}).json()["result"]
    assert fb.objects[cid].author == ("u7", "Sam")
    assert requests.post(f"{fb.url}/_control/stop", json={}).status_code == 404


# -- the http client's helpers ------------------------------------------------------------------------------
def test_parse_retry_after_both_forms():
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after("Sun, 01 Nov 2026 12:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Sun, 01 Nov 2026 11:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None and parse_retry_after(None, NOW) is None


def test_retry_helper_backs_off_with_jitter_then_gives_up():
    clock, calls = FakeClock(NOW), []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("nope")
        return "ok"

    assert retry(flaky, clock=clock, rng=random.Random(3)) == "ok"
    assert len(clock.slept) == 2 and clock.slept[0] <= 1 and clock.slept[1] <= 2
    with pytest.raises(TransientError):
        retry(lambda: (_ for _ in ()).throw(TransientError("x")), clock=clock, rng=random.Random(3),
              policy=RetryPolicy(max_attempts=3))
    assert RetryPolicy().delay(30, random.Random(1)) <= 60


def test_http_client_scrubs_urls_errors_and_caps_size(fb):
    seed_threads(fb, posts=3)
    http = HttpClient(secrets=[TOKEN], clock=FakeClock(NOW), max_bytes=100)
    assert http.strip_url(f"https://x/y?a=1&access_token={TOKEN}&token=z&q={TOKEN}") == "https://x/y?a=1"
    assert TOKEN not in http.scrub(f"failed: https://x/y?access_token={TOKEN}&client_secret=abc")
    assert "abc" not in http.scrub("https://x/y?client_secret=abc")
    with pytest.raises(TransientError) as err:
        http.get("http://127.0.0.1:9/v21.0/1000/feed", params={"access_token": TOKEN})
    assert TOKEN not in str(err.value) and err.value.__cause__ is None
    with pytest.raises(MalformedResponse, match="response larger than 100 bytes"):
        http.get(f"{fb.api_base}/1000/feed", params={"access_token": TOKEN, "limit": 100})


def test_parse_fb_time():
    assert parse_fb_time("2026-10-01T14:03:00+0000") == datetime(2026, 10, 1, 14, 3, tzinfo=UTC)
    assert parse_fb_time(None) is None
