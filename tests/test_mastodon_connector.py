"""The Mastodon connector against the simulated client API, over real HTTP (waits go to a FakeClock)."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from sqlalchemy import select

from archiver.clock import FakeClock
from archiver.config import AccountConfig
from archiver.connectors.base import Item, Page, Scope, WalkComplete, WalkFailed, WalkPlan
from archiver.connectors.http import HttpClient
from archiver.connectors.mastodon import (
    MastodonConnector,
    _Failure,
    compare_ids,
    html_to_text,
    id_key,
    link_next,
    parse_time,
)
from archiver.db.models import Record, Version
from archiver.errors import AuthError, ConfigError, RateLimited
from archiver.harvest import harvest_account
from archiver.simulated.mastodon import SimulatedMastodon, seed_demo

TOKEN = "mstdn-Zk9QtestTOKEN-0123456789abcdef"
ME = "109876"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
BACKFILL = WalkPlan(backfill=True, since=None)
JEN = ("jen@mastodon.social", "Jen Brooks")
TOM = ("tom@kansas.social", "Tom Nguyen")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def sim(clock):
    with SimulatedMastodon(account_id=ME, token=TOKEN, now=clock.now) as m:
        yield m


@pytest.fixture
def make(sim, clock, monkeypatch):
    """make(token=True, max_wait=30, **options) -> connector sharing the simulator's clock."""
    monkeypatch.setenv("TEST_MASTODON_TOKEN", TOKEN)

    def _make(token: bool = True, max_wait: float = 30, **options):
        opts = {"instance": sim.instance, "account_id": ME, **options}
        if token:
            opts["access_token"] = "$env:TEST_MASTODON_TOKEN"
        account = AccountConfig(name="apd-mastodon", connector="mastodon", options=opts,
                                max_wait=timedelta(seconds=max_wait))
        http = HttpClient(secrets=[], clock=clock, rng=random.Random(1), timeout=5)
        return MastodonConnector(account, http, clock)

    return _make


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def walk(conn: MastodonConnector, plan: WalkPlan = BACKFILL) -> list:
    return list(conn.walk(plan))


def items(events) -> list[Item]:
    return [it for ev in events if isinstance(ev, Page) for it in ev.items]


def current(events) -> dict[str, Item]:
    return {it.native_id: it for it in items(events) if not it.history}


def pages(events, scope: Scope | None = None) -> list[Page]:
    return [ev for ev in events if isinstance(ev, Page) and (scope is None or ev.scope == scope)]


def completed(events) -> set[Scope]:
    return {ev.scope for ev in events if isinstance(ev, WalkComplete)}


def failed(events) -> list[WalkFailed]:
    return [ev for ev in events if isinstance(ev, WalkFailed)]


def thread(pid: str) -> Scope:
    return Scope("thread", post_native_id=pid)


# -- ids, times, links, HTML --------------------------------------------------------------------------------
def test_ids_compare_by_length_then_lexically():
    ids = ["117462505881600002", "95003", "99999", "100000", "117462505881600001", "95010"]
    assert sorted(ids, key=id_key) == ["95003", "95010", "99999", "100000", "117462505881600001",
                                       "117462505881600002"]
    assert compare_ids("99999", "100000") == -1 and "99999" > "100000"  # lexical order would be wrong
    assert compare_ids("117462505881600002", "117462505881600001") == 1
    assert compare_ids("95003", "95003") == 0


def test_helpers_parse_times_links_and_html():
    assert parse_time("2026-10-01T14:03:00.000Z") == datetime(2026, 10, 1, 14, 3, tzinfo=UTC)
    assert parse_time("2026-10-01T14:03:00.123456Z").microsecond == 123456
    assert parse_time(None) is None and parse_time("soon", strict=False) is None
    with pytest.raises(ValueError):
        parse_time("yesterday")
    link = ('<https://m.example/api/v1/accounts/1/statuses?limit=40&max_id=9>; rel="next", '
            '<https://m.example/api/v1/accounts/1/statuses?limit=40&min_id=12>; rel="prev"')
    assert link_next(link) == "https://m.example/api/v1/accounts/1/statuses?limit=40&max_id=9"
    assert link_next('<https://m.example/x?min_id=1>; rel="prev"') is None and link_next(None) is None
    assert html_to_text("<p>a<br />b</p><p>c &amp; d &lt;script&gt;</p>") == "a\nb\n\nc & d <script>"
    assert html_to_text('<p><span class="h-card"><a href="https://m.example/@jen" class="u-url mention">@<span>'
                        'jen</span></a></span> see <a href="https://example.org/jobs/lateral"><span class='
                        '"invisible">https://</span><span class="ellipsis">example.org/jobs/lat</span><span '
                        'class="invisible">eral</span></a></p>') == "@jen see https://example.org/jobs/lateral"
    assert html_to_text("") == "" and html_to_text(None) is None


def test_config_is_checked(make):
    for bad, words in [({"instance": "mastodon.example"}, "instance"), ({"account_id": "../admin"}, "account_id"),
                       ({"page_size": 41}, "page_size"), ({"page_size": "x"}, "page_size")]:
        with pytest.raises(ConfigError, match=words):
            make(**bad)


# -- paging, items ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("legacy", "new", "feed_requests"), [(4, 6, 4), (3, 6, 4)])
def test_pages_through_link_headers_to_the_end_across_id_lengths(sim, make, legacy, new, feed_requests):
    old = [sim.add_status(f"old {i}", created_at=datetime(2016, 5, 1 + i, tzinfo=UTC)) for i in range(legacy)]
    recent = [sim.add_status(f"new {i} #AndoverKS", created_at=ago(days=20 - i)) for i in range(new)]
    assert {len(i) for i in old} == {5} and {len(i) for i in recent} == {18}
    evs = walk(make(page_size=3))
    feed = pages(evs, Scope("feed"))
    assert len(feed) == feed_requests  # 10 -> 3+3+3+1; 9 -> 3+3+3 and an empty page (next was offered)
    got = [it.native_id for p in feed for it in p.items]
    assert got == sorted(old + recent, key=id_key, reverse=True)
    assert Scope("feed") in completed(evs) and not failed(evs)
    assert completed(evs) == {Scope("feed")} | {thread(s) for s in old + recent}
    assert all("max_id=" in p.exchange.url for p in feed[1:])

    post = current(evs)[recent[-1]]
    assert (post.kind, post.parent_native_id, post.text) == ("post", None, "new 5 #AndoverKS")
    assert (post.author, post.author_id, post.created_at) == ("andoverpd", ME, ago(days=15))
    assert post.permalink == f"https://mastodon.example/@andoverpd/{recent[-1]}" and post.edited_at is None
    assert post.extra["hashtags"] == ["andoverks"] and post.raw["content"].startswith("<p>new 5")
    assert post.content == {"spoiler_text": "", "sensitive": False, "media": [], "poll": None}
    page = next(p for p in feed if post in p.items)
    assert json.loads(page.exchange.body)[page.items.index(post)] == post.raw


def test_lookback_stops_the_feed_early_and_walks_only_recent_threads(sim, make):
    old = [sim.add_status(f"old {i}", created_at=ago(days=60 - i)) for i in range(6)]
    new = [sim.add_status(f"new {i}", created_at=ago(days=5 - i)) for i in range(3)]
    since = ago(days=10)
    evs = walk(make(page_size=2), WalkPlan(backfill=False, since=since))
    assert sum("/accounts/" in r for r in sim.requests_seen) == 3  # [n2 n1] [n0 o5] [o4 o3]: all older, stop
    assert WalkComplete(Scope("feed", since=since)) in evs
    assert {s for s in completed(evs) if s.kind == "thread"} == {thread(p) for p in new}
    assert not any(f"/{o}/context" in r for o in old for r in sim.requests_seen)


def test_threads_give_comments_and_replies_with_parents(sim, make):
    post = sim.add_status("Road closed on Main St", created_at=ago(hours=5))
    c1 = sim.add_status("Which detour?", created_at=ago(hours=4), in_reply_to_id=post, author=JEN)
    c2 = sim.add_status("Lol <script>alert(1)</script> & more", created_at=ago(hours=4), in_reply_to_id=post,
                        author=TOM)
    r1 = sim.add_status("Kellogg", created_at=ago(hours=3), in_reply_to_id=c1, author=TOM)
    r2 = sim.add_status("Thanks", created_at=ago(hours=3), in_reply_to_id=r1, author=JEN)
    own = sim.add_status("Use Kellogg, please.", created_at=ago(hours=2), in_reply_to_id=c1)
    under_own = sim.add_status("Will do", created_at=ago(hours=1), in_reply_to_id=own, author=JEN)
    county = sim.add_status("Flood warning", created_at=ago(hours=9), author=("em@kansas.social", "County EM"))
    boost = sim.add_reblog(county, created_at=ago(hours=1))
    evs = walk(make())
    got = current(evs)
    assert {i.native_id for i in pages(evs, thread(post))[0].items} == {c1, c2, r1, r2, under_own}
    assert [(got[i].kind, got[i].parent_native_id) for i in (c1, c2, r1, r2, under_own)] == [
        ("comment", post), ("comment", post), ("reply", c1), ("reply", r1), ("reply", own)]
    assert got[c2].text == "Lol <script>alert(1)</script> & more" and "&lt;script&gt;" in got[c2].raw["content"]
    assert (got[own].kind, got[own].parent_native_id, got[own].author) == ("post", c1, "andoverpd")
    assert (got[c1].author, got[c1].extra["display_name"]) == ("jen@mastodon.social", "Jen Brooks")
    # The boost is a post with no text of its own that names what it boosted; its thread is not walked.
    assert (got[boost].kind, got[boost].text) == ("post", "")
    assert got[boost].content["reblog_of"] == sim.status_doc(sim.statuses[county])["uri"]
    assert got[boost].raw["reblog"]["id"] == county
    # The own reply sits inside the post's thread, walked completely: it is not walked again.
    assert completed(evs) == {Scope("feed"), thread(post)} and not failed(evs)
    assert not any(f"/{own}/context" in r or f"/{boost}/context" in r for r in sim.requests_seen)


# -- edits --------------------------------------------------------------------------------------------------
def test_edit_history_comes_before_the_status_oldest_first(sim, make, clock):
    post = sim.add_status("Main St is closed until 6 PM", created_at=ago(hours=5))
    com = sim.add_status("Thanks!", created_at=ago(hours=4), in_reply_to_id=post, author=JEN)
    conn = make()
    before = current(walk(conn))
    sim.edit_status(post, "Main St is closed until 8 PM")
    clock.advance(minutes=30)
    sim.edit_status(post, "Main St is closed until 8 PM", spoiler_text="traffic")
    sim.edit_status(com, "Thanks so much!")
    evs = walk(conn)
    got = current(evs)
    [hist] = [p for p in pages(evs, Scope("feed")) if "/history" in p.exchange.url]
    feed_page = next(p for p in pages(evs, Scope("feed")) if got[post] in p.items)
    assert evs.index(hist) < evs.index(feed_page)
    assert [i.text for i in hist.items] == ["Main St is closed until 6 PM", "Main St is closed until 8 PM",
                                            "Main St is closed until 8 PM"]
    assert all(i.history and i.native_id == post and i.kind == "post" for i in hist.items)
    assert [i.edited_at for i in hist.items] == [None, NOW, NOW + timedelta(minutes=30)]
    assert [i.content["spoiler_text"] for i in hist.items] == ["", "", "traffic"]
    assert got[post].edited_at == NOW + timedelta(minutes=30) and not got[post].history
    # The newest state from /history is the current status; the oldest is what was captured before.
    assert hist.items[-1].fingerprint() == got[post].fingerprint()
    assert hist.items[0].fingerprint() == before[post].fingerprint()
    assert len({i.fingerprint() for i in hist.items}) == 3

    [chist] = [p for p in pages(evs, thread(post)) if "/history" in p.exchange.url]
    tpage = next(p for p in pages(evs, thread(post)) if "/context" in p.exchange.url)
    assert evs.index(chist) < evs.index(tpage)
    assert [(i.kind, i.parent_native_id, i.text) for i in chist.items] == [
        ("comment", post, "Thanks!"), ("comment", post, "Thanks so much!")]
    assert chist.items[-1].fingerprint() == got[com].fingerprint()
    assert chist.items[0].fingerprint() == before[com].fingerprint()
    assert completed(evs) == {Scope("feed"), thread(post)}


def test_media_descriptions_and_counts(sim, make):
    post = sim.add_status("Map", created_at=ago(hours=1), media=[{"description": "closure map"}])
    conn = make()
    first = current(walk(conn))[post]
    sim.set_counts(post, favourites=40, reblogs=7)
    again = current(walk(conn))[post]
    assert again.fingerprint() == first.fingerprint() and again.raw != first.raw  # counts are not versions
    [media] = first.content["media"]
    assert media["description"] == "closure map" and media["url"].startswith("https://files.mastodon.example/")


def test_a_history_that_cannot_be_read_fails_that_scope_only(sim, make):
    post = sim.add_status("v1", created_at=ago(hours=2))
    sim.edit_status(post, "v2")
    sim.inject("truncated", path_contains="/history")
    evs = walk(make())
    [fail] = failed(evs)
    assert fail.scope == Scope("feed") and f"edit history of status {post}" in fail.error and fail.exchange
    assert current(evs)[post].text == "v2"  # the status itself is still archived
    assert completed(evs) == {thread(post)}  # but the feed is not concluded


# -- completeness of reply lists ----------------------------------------------------------------------------
def test_reply_lists_capped_without_a_token_are_never_complete(sim, make):
    post = sim.add_status("Town hall tonight", created_at=ago(hours=6))
    for i in range(61):
        sim.add_status(f"reply {i}", created_at=ago(hours=5), in_reply_to_id=post, author=JEN)
    evs = walk(make(token=False))
    assert len(pages(evs, thread(post))[0].items) == 60
    [fail] = failed(evs)
    assert fail.scope == thread(post) and "Mastodon's cap" in fail.error and "access_token" in fail.error
    assert thread(post) not in completed(evs)
    evs = walk(make(token=True))
    assert len(pages(evs, thread(post))[0].items) == 61 and thread(post) in completed(evs)
    assert sim.authorizations_seen[0] is None and sim.authorizations_seen[-1] == f"Bearer {TOKEN}"


def test_deep_or_short_or_refreshing_reply_lists_are_not_complete(sim, make):
    deep = sim.add_status("deep", created_at=ago(hours=9))
    parent = deep
    for i in range(21):
        parent = sim.add_status(f"level {i + 1}", created_at=ago(hours=8), in_reply_to_id=parent, author=JEN)
    short = sim.add_status("short", created_at=ago(hours=7))
    sim.add_status("only one", created_at=ago(hours=6), in_reply_to_id=short, author=TOM)
    sim.set_counts(short, replies=3)
    busy = sim.add_status("busy", created_at=ago(hours=5))
    sim.async_refresh.add(busy)
    fine = sim.add_status("fine", created_at=ago(hours=4))
    evs = walk(make(token=False))
    why = {f.scope.post_native_id: f.error for f in failed(evs)}
    assert "depth" in why[deep] and "reports 3 replies" in why[short] and "Mastodon-Async-Refresh" in why[busy]
    assert completed(evs) == {Scope("feed"), thread(fine)}


# -- removal ------------------------------------------------------------------------------------------------
def test_probe_tells_deleted_from_present(sim, make):
    post = sim.add_status("post", created_at=ago(hours=3))
    gone = sim.add_status("bye", created_at=ago(hours=2), in_reply_to_id=post, author=JEN)
    sim.delete_status(gone)
    conn = make()
    result = conn.probe("comment", gone)
    assert result.gone is True and result.exchange.status == 404
    assert json.loads(result.exchange.body) == {"error": "Record not found"}
    present = conn.probe("post", post)
    assert present.gone is False and present.exchange.status == 200
    assert conn.probe("post", "not-an-id").gone is False
    sim.inject("5xx", path_contains=post, times=None)
    assert conn.probe("post", post).gone is False
    sim.clear_faults()
    sim.inject("429", path_contains=post, times=None, retry_after="3600")
    assert conn.probe("post", post).gone is False
    sim.clear_faults()
    sim.restore_status(gone)
    assert conn.probe("comment", gone).gone is False


# -- rate limits --------------------------------------------------------------------------------------------
def test_429_waits_for_retry_after_in_both_forms_or_for_the_reset(sim, make, clock):
    sim.add_status("post", created_at=ago(hours=1))
    sim.inject("429", path_contains="/accounts/", retry_after="7")
    assert not failed(walk(make())) and clock.slept == [7.0]
    sim.inject("429", path_contains="/context", retry_after=format_datetime(clock.now() + timedelta(seconds=12),
                                                                            usegmt=True))
    assert not failed(walk(make())) and clock.slept == [7.0, 12.0]
    sim.inject("429", path_contains="/accounts/", reset=clock.now() + timedelta(seconds=45))
    assert not failed(walk(make(max_wait=60))) and clock.slept == [7.0, 12.0, 45.0]


def test_remaining_zero_waits_until_the_reset(sim, make, clock):
    post = sim.add_status("post", created_at=ago(hours=1))
    sim.set_rate_limit(remaining=1, reset=NOW + timedelta(seconds=60))
    evs = walk(make(max_wait=120))
    assert not failed(evs) and completed(evs) == {Scope("feed"), thread(post)}
    assert clock.slept == [60.0] and sim.request_count == 2  # no 429 was needed to make it wait


def test_rate_limits_beyond_max_wait_raise_rate_limited(sim, make, clock):
    post = sim.add_status("post", created_at=ago(hours=1))
    sim.inject("429", path_contains="/context", times=None, retry_after="10")
    seen = []
    with pytest.raises(RateLimited) as err:
        for ev in make(max_wait=30).walk(BACKFILL):
            seen.append(ev)
    assert clock.slept == [10.0, 10.0, 10.0] and "apd-mastodon" in str(err.value) and "max_wait" in str(err.value)
    assert Scope("feed") in completed(seen) and post in current(seen)
    sim.clear_faults()
    sim.set_rate_limit(remaining=1, reset=clock.now() + timedelta(minutes=10))
    with pytest.raises(RateLimited, match="asks for a wait of 600 s"):
        walk(make(max_wait=30))


# -- failures -----------------------------------------------------------------------------------------------
def test_5xx_is_retried_then_fails_only_that_thread(sim, make, clock):
    posts = [sim.add_status(f"post {i}", created_at=ago(hours=5 - i)) for i in range(3)]
    sim.inject("5xx", path_contains=f"/{posts[0]}/context", times=2)
    sim.inject("html", path_contains="/accounts/", times=1)
    sim.inject("5xx", path_contains=f"/{posts[1]}/context", times=None, status=503)
    evs = walk(make())
    [fail] = failed(evs)
    assert fail.scope == thread(posts[1]) and "gave up after 5 attempts" in fail.error
    assert fail.exchange is not None and fail.exchange.status == 503
    assert completed(evs) == {Scope("feed"), thread(posts[0]), thread(posts[2])}
    assert len(clock.slept) == 3 + 4 and all(0 <= s <= 16 for s in clock.slept)


def test_feed_failure_stops_the_walk(sim, make):
    sim.add_status("post", created_at=ago(hours=1))
    sim.inject("5xx", path_contains="/accounts/", times=None)
    evs = walk(make())
    assert len(evs) == 1 and isinstance(evs[0], WalkFailed) and evs[0].scope == Scope("feed")
    assert not any("/context" in r for r in sim.requests_seen)


def test_network_failures_are_retried_then_fail_the_feed(make, clock):
    evs = walk(make(instance="http://127.0.0.1:9"))
    assert len(evs) == 1 and evs[0].scope == Scope("feed") and evs[0].exchange is None
    assert "gave up after 5 attempts" in evs[0].error and len(clock.slept) == 4


def test_link_urls_are_followed_only_on_the_instance_and_without_credentials(sim, make, monkeypatch):
    for i in range(4):
        sim.add_status(f"post {i}", created_at=ago(hours=9 - i))
    plain = sim.handle_get

    def rewritten(path, params, authed, base_url, host="127.0.0.1"):
        doc, headers = plain(path, params, authed, base_url.replace("127.0.0.1", host))
        if "Link" in headers:
            headers["Link"] = headers["Link"].replace("limit=2", "limit=2&access_token=leaked")
        return doc, headers

    monkeypatch.setattr(sim, "handle_get", rewritten)
    evs = walk(make(page_size=2))
    assert Scope("feed") in completed(evs) and len(current(evs)) == 4
    assert not any("access_token" in r for r in sim.requests_seen)
    monkeypatch.setattr(sim, "handle_get", lambda *a: rewritten(*a, host="evil.example"))
    before = len(sim.requests_seen)
    evs = walk(make(page_size=2))
    [fail] = failed(evs)
    assert fail.scope == Scope("feed") and "not on the instance" in fail.error and fail.exchange is not None
    assert len(sim.requests_seen) == before + 1 and not current(evs)  # the first page, and nothing else


@pytest.mark.parametrize("fault", ["truncated", "invalid_utf8", "html"])
def test_malformed_pages_fail_the_scope_with_their_exchange(sim, make, fault):
    posts = [sim.add_status(f"post {i}", created_at=ago(hours=9 - i)) for i in range(5)]
    sim.add_status("hi", created_at=ago(hours=1), in_reply_to_id=posts[0], author=JEN)
    sim.inject(fault, path_contains=f"/{posts[0]}/context", status=200)
    sim.inject(fault, path_contains="max_id=", status=200)  # the second feed page
    evs = walk(make(page_size=3))
    [fail] = failed(evs)
    assert fail.scope == Scope("feed") and "malformed response" in fail.error
    assert fail.exchange is not None and fail.exchange.status == 200 and fail.exchange.body
    assert len(items(evs)) == 3 and not completed(evs)
    evs = walk(make(page_size=3))
    [fail] = failed(evs)
    assert fail.scope == thread(posts[0]) and fail.exchange is not None and fail.exchange.status == 200
    assert completed(evs) == {Scope("feed")} | {thread(p) for p in posts[1:]}


def test_a_list_that_is_not_a_list_of_statuses_fails(sim, make):
    sim.add_status("post", created_at=ago(hours=1))
    conn = make()
    with pytest.raises(_Failure, match="not a JSON list of statuses") as err:  # an endpoint answering one object
        conn._list_page(f"{sim.instance}/api/v1/accounts/{ME}", None)
    assert err.value.exchange is not None and err.value.exchange.status == 200


# -- tokens and secrets -------------------------------------------------------------------------------------
def test_rejected_token_raises_auth_error_naming_account_and_fix(sim, make, clock):
    sim.add_status("post", created_at=ago(hours=1))
    sim.revoke_token()
    with pytest.raises(AuthError) as err:
        walk(make())
    msg = str(err.value)
    assert "apd-mastodon" in msg and "$env:TEST_MASTODON_TOKEN" in msg and "read:statuses" in msg
    assert TOKEN not in msg and sim.request_count == 1 and clock.slept == []  # never retried
    sim.inject("401", path_contains="/accounts/")
    with pytest.raises(AuthError, match="set access_token"):
        walk(make(token=False))


def test_token_is_sent_as_bearer_and_never_stored(sim, make):
    post = sim.add_status(f"someone pasted {TOKEN} here", created_at=ago(hours=2))
    sim.add_status("reply", created_at=ago(hours=1), in_reply_to_id=post, author=JEN)
    sim.inject("truncated", path_contains="/context")
    evs = walk(make())
    assert set(sim.authorizations_seen) == {f"Bearer {TOKEN}"}
    assert not any(TOKEN in r for r in sim.requests_seen)
    exchanges = [ev.exchange for ev in evs if isinstance(ev, Page | WalkFailed) and ev.exchange]
    assert len(exchanges) == 2
    for ex in exchanges:
        assert TOKEN not in ex.url and TOKEN.encode() not in ex.body and TOKEN not in json.dumps(dict(ex.headers))
    assert exchanges[0].secrets_redacted and all(TOKEN not in f.error for f in failed(evs))


# -- the simulator, and the real core ------------------------------------------------------------------------
def test_simulator_wire_format_control_endpoint_and_demo(sim):
    made = seed_demo(sim)
    assert 9 <= len(made["statuses"]) <= 12 and len(made["replies"]) >= 15
    assert {"edited_status", "deleted_reply", "edited_at_seed", "script_reply", "reblog"} <= set(sim.demo_ids)
    assert "<script>" in sim.status_text(sim.demo_ids["script_reply"])
    resp = requests.get(f"{sim.instance}/api/v1/accounts/{ME}/statuses", params={"limit": 2})
    assert resp.status_code == 200 and len(resp.json()) == 2 and 'rel="next"' in resp.headers["Link"]
    assert resp.headers["X-RateLimit-Limit"] == "300" and resp.headers["X-RateLimit-Reset"].endswith("Z")
    status = resp.json()[0]
    assert status["created_at"].endswith(".000Z") and status["content"].startswith("<p>")
    hist = requests.get(f"{sim.instance}/api/v1/statuses/{sim.demo_ids['edited_at_seed']}/history").json()
    assert len(hist) == 2 and set(hist[0]) >= {"content", "spoiler_text", "sensitive", "created_at", "account"}
    assert requests.get(f"{sim.instance}/api/v1/statuses/1").json() == {"error": "Record not found"}
    sid = requests.post(f"{sim.instance}/_control/add_status",
                        json={"text": "from another process", "author": list(JEN)}).json()["result"]
    assert sim.statuses[sid].account.acct == JEN[0]
    assert requests.post(f"{sim.instance}/_control/stop", json={}).status_code == 404
    bad = requests.post(f"{sim.instance}/_control/delete_status", json={"id": "1"})
    assert bad.status_code == 400 and bad.json() == {"error": "no status '1'"}

    sim.hold_after(sim.request_count)
    held = threading.Thread(target=requests.get, args=(f"{sim.instance}/api/v1/statuses/{sid}",), daemon=True)
    held.start()
    assert sim.holding.wait(5)
    sim.release()
    held.join(5)
    assert not held.is_alive()


def test_through_the_real_core(archive, sim, clock, monkeypatch):
    monkeypatch.setitem(archive.registry.connectors, "mastodon", MastodonConnector)
    monkeypatch.setenv("TEST_MASTODON_TOKEN", TOKEN)
    seed_demo(sim)
    acc = AccountConfig(name="apd-mastodon", connector="mastodon", max_wait=timedelta(seconds=60),
                        options={"instance": sim.instance, "account_id": ME, "page_size": 4,
                                 "access_token": "$env:TEST_MASTODON_TOKEN"})
    first = harvest_account(archive, acc)
    assert first.status == "ok", first.error
    with archive.db.read() as s:
        kinds = Counter(s.execute(select(Record.kind)).scalars())
        versions = Counter(s.execute(select(Version.record_id)).scalars())
    assert kinds["post"] == 11 and kinds["comment"] + kinds["reply"] >= 15
    assert sorted(Counter(versions.values()).items()) == [(1, sum(kinds.values()) - 1), (2, 1)]  # edited at seed
    again = harvest_account(archive, acc)
    assert (again.status, again.new_records, again.new_versions, sum(again.events.values())) == ("ok", 0, 0, 0)

    ids = sim.demo_ids
    sim.edit_status(ids["edited_status"], sim.status_text(ids["edited_status"]) + "\n\nUPDATE: reopened.")
    sim.delete_status(ids["deleted_reply"])
    clock.advance(minutes=30)
    third = harvest_account(archive, acc)
    assert third.status == "ok", third.error
    assert (third.events["edited"], third.events["removed"], third.new_records) == (1, 1, 0)
    with archive.db.read() as s:
        status = dict(s.execute(select(Record.native_id, Record.status)).all())
    assert status[ids["deleted_reply"]] == "removed" and status[ids["edited_status"]] == "edited"
