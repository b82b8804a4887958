"""One contract, every connector: each runs through the real core against its simulated platform.

Paging to the end, incremental re-runs, edits become versions, a failed walk marks nothing removed,
rate limits are honoured, secrets never leak. Add a platform by writing an adapter below.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from archiver.archive import Archive
from archiver.clock import FakeClock
from archiver.config import AccountConfig
from archiver.db.models import AuditEntry, Capture, HarvestRun, Record, Version
from archiver.harvest import harvest_account

SECRET = "s3cr3t-contract-TOKEN-0042"


class FacebookAdapter:
    """The simulated Graph API."""

    name = "facebook"
    can_remove = True
    min_pages = 3

    def __init__(self, clock: FakeClock):
        from archiver.simulated.facebook import SimulatedFacebook

        self.sim = SimulatedFacebook(page_id="1000", token=SECRET, now=clock.now)
        self.clock = clock

    def __enter__(self) -> FacebookAdapter:
        self.sim.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.stop()

    def account(self) -> AccountConfig:
        return AccountConfig(name="contract-fb", connector="facebook", max_wait=timedelta(seconds=60),
                             options={"page_id": "1000", "access_token": "$env:CONTRACT_TOKEN",
                                      "api_base": self.sim.api_base, "page_size": 3})

    def seed(self) -> dict[str, str]:
        ids = {f"p{i}": self.sim.add_post(f"post {i}", created_time=self.clock.now() - timedelta(hours=20 - i))
               for i in range(7)}
        for i in range(7):
            ids[f"c{i}"] = self.sim.add_comment(ids["p6"], f"comment {i}",
                                                created_time=self.clock.now() - timedelta(hours=5 - i / 2))
        return ids

    def expected(self) -> int:
        return 14

    def edit(self, ids: dict[str, str]) -> str:
        self.sim.edit_comment(ids["c2"], "comment 2, edited")
        return ids["c2"]

    def delete(self, ids: dict[str, str]) -> str:
        self.sim.delete_comment(ids["c4"])
        return ids["c4"]

    def break_walk(self, ids: dict[str, str]) -> None:
        self.sim.inject("5xx", path_contains=f"{ids['p6']}/comments", times=None)

    def heal(self) -> None:
        self.sim.clear_faults()

    def rate_limit_once(self) -> None:
        self.sim.inject("rate_limit", path_contains="/feed", code=613, retry_after="7")


class FeedAdapter:
    """A Nixle-style RSS feed over local HTTP (feeds cannot show removals)."""

    name = "rss"
    can_remove = False
    min_pages = 1

    def __init__(self, clock: FakeClock):
        from archiver.simulated.feeds import FeedServer

        self.sim = FeedServer(now=clock.now)
        self.clock = clock

    def __enter__(self) -> FeedAdapter:
        self.sim.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.stop()

    def account(self) -> AccountConfig:
        return AccountConfig(name="contract-rss", connector="rss", max_wait=timedelta(seconds=60),
                             options={"url": self.sim.url_for("alerts")})

    def seed(self) -> dict[str, str]:
        items = [{"guid": f"alert-{i}", "title": f"Alert {i}", "summary": f"<p>alert <b>{i}</b></p>",
                  "link": f"https://alerts.example/{i}", "published": self.clock.now() - timedelta(hours=9 - i)}
                 for i in range(9)]
        self.sim.set_feed("alerts", "rss", items)
        return {f"a{i}": f"alert-{i}" for i in range(9)}

    def expected(self) -> int:
        return 9

    def edit(self, ids: dict[str, str]) -> str:
        self.sim.edit_item("alerts", "alert-3", summary="<p>alert 3: road reopened</p>")
        return "alert-3"

    def delete(self, ids: dict[str, str]) -> str:
        self.sim.remove_item("alerts", "alert-4")
        return "alert-4"

    def break_walk(self, ids: dict[str, str]) -> None:
        self.sim.inject("truncated", "alerts", times=None)

    def heal(self) -> None:
        self.sim.clear_faults()

    def rate_limit_once(self) -> None:
        self.sim.inject("429", "alerts", retry_after="7")


class MastodonAdapter:
    """The simulated Mastodon instance (REST API, Link paging, /context threads)."""

    name = "mastodon"
    can_remove = True
    min_pages = 3

    def __init__(self, clock: FakeClock):
        from archiver.simulated.mastodon import SimulatedMastodon

        self.sim = SimulatedMastodon(account_id="109876", token=SECRET, now=clock.now)
        self.clock = clock

    def __enter__(self) -> MastodonAdapter:
        self.sim.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sim.stop()

    def account(self) -> AccountConfig:
        return AccountConfig(name="contract-masto", connector="mastodon", max_wait=timedelta(seconds=60),
                             options={"instance": self.sim.instance, "account_id": "109876",
                                      "access_token": "$env:CONTRACT_TOKEN", "page_size": 3})

    def seed(self) -> dict[str, str]:
        ids = {f"p{i}": self.sim.add_status(f"post {i}", created_at=self.clock.now() - timedelta(hours=20 - i))
               for i in range(7)}
        for i in range(7):
            ids[f"c{i}"] = self.sim.add_status(f"comment {i}", in_reply_to_id=ids["p6"],
                                               author=("jen@mastodon.social", "Jen"),
                                               created_at=self.clock.now() - timedelta(hours=5 - i / 2))
        return ids

    def expected(self) -> int:
        return 14

    def edit(self, ids: dict[str, str]) -> str:
        self.sim.edit_status(ids["c2"], "comment 2, edited")
        return ids["c2"]

    def delete(self, ids: dict[str, str]) -> str:
        self.sim.delete_status(ids["c4"])
        return ids["c4"]

    def break_walk(self, ids: dict[str, str]) -> None:
        self.sim.inject("5xx", path_contains=f"{ids['p6']}/context", times=None)

    def heal(self) -> None:
        self.sim.clear_faults()

    def rate_limit_once(self) -> None:
        self.sim.inject("429", path_contains="/accounts/", retry_after="7")


ADAPTERS: dict[str, Any] = {"facebook": FacebookAdapter, "mastodon": MastodonAdapter, "rss": FeedAdapter}


@pytest.fixture(params=sorted(ADAPTERS))
def platform(request: pytest.FixtureRequest, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("CONTRACT_TOKEN", SECRET)
    with ADAPTERS[request.param](clock) as adapter:
        yield adapter


def count(archive: Archive, model: Any) -> int:
    with archive.db.read() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def status_of(archive: Archive, native_id: str) -> str:
    with archive.db.read() as s:
        return s.execute(select(Record.status).where(Record.native_id == native_id)).scalar_one()


def test_pages_to_the_end_and_reruns_add_nothing(archive: Archive, platform: Any) -> None:
    platform.seed()
    acc = platform.account()
    r = harvest_account(archive, acc)
    assert r.status == "ok", r.error
    assert r.new_records == platform.expected() == count(archive, Record)
    assert r.pages >= platform.min_pages
    again = harvest_account(archive, acc)
    assert (again.status, again.new_records, again.new_versions, sum(again.events.values())) == ("ok", 0, 0, 0)
    assert count(archive, Version) == platform.expected()


def test_edits_become_versions(archive: Archive, platform: Any) -> None:
    ids = platform.seed()
    acc = platform.account()
    harvest_account(archive, acc)
    nid = platform.edit(ids)
    platform.clock.advance(minutes=10)
    r = harvest_account(archive, acc)
    assert r.status == "ok" and r.new_versions >= 1 and r.events["edited"] >= 1
    assert status_of(archive, nid) == "edited"


def test_a_failed_walk_marks_nothing_removed(archive: Archive, platform: Any) -> None:
    ids = platform.seed()
    acc = platform.account()
    harvest_account(archive, acc)
    nid = platform.delete(ids)
    platform.break_walk(ids)
    r = harvest_account(archive, acc)
    assert r.status == "partial" and r.events["removed"] == 0
    assert status_of(archive, nid) == "live"
    platform.heal()
    r = harvest_account(archive, acc)
    assert r.status == "ok"
    assert status_of(archive, nid) == ("removed" if platform.can_remove else "live")


def test_rate_limits_are_honoured(archive: Archive, platform: Any) -> None:
    platform.seed()
    platform.rate_limit_once()
    r = harvest_account(archive, platform.account())
    assert r.status == "ok", r.error
    assert any(s >= 7 for s in archive.clock.slept)  # type: ignore[attr-defined]
    assert r.new_records == platform.expected()


def test_secrets_never_leak(archive: Archive, platform: Any) -> None:
    platform.seed()
    harvest_account(archive, platform.account())
    with archive.db.read() as s:
        for url, headers in s.execute(select(Capture.url, Capture.headers)):
            assert SECRET not in url and SECRET not in headers
        for (details,) in s.execute(select(AuditEntry.details)):
            assert SECRET not in details
        for (err,) in s.execute(select(HarvestRun.error)):
            assert SECRET not in (err or "")
    for sha in archive.blobs.iterate():
        assert SECRET.encode() not in archive.blobs.get(sha)
