"""The connector contract: a connector pages through one platform's API and yields what it saw.

Connectors are pure: they never touch the database, the blob store or the index. They yield
``Page`` objects (one HTTP exchange and the items parsed from it), ``WalkComplete`` when a scope has
been walked to its documented end, and ``WalkFailed`` when a scope's walk stopped early. The core
decides what is new, edited, hidden or removed.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from archiver.errors import ConfigError, RateLimited

if TYPE_CHECKING:
    from .http import RetryPolicy

Kind = Literal["post", "comment", "reply"]
KINDS: tuple[str, ...] = ("post", "comment", "reply")


@dataclass(frozen=True)
class Exchange:
    """One HTTP response as fetched: the provenance of every item read from it.

    ``url`` has secrets stripped; ``body`` is byte-for-byte what the platform sent except that every
    occurrence of the account's secrets was replaced by a fixed marker (``secrets_redacted`` says so).
    """

    method: str
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    fetched_at: datetime
    secrets_redacted: bool = False


@dataclass(frozen=True)
class Item:
    """One post, comment or reply as read from a platform response."""

    native_id: str
    kind: Kind
    raw: Any  # the item's JSON value exactly as received
    parent_native_id: str | None = None
    text: str | None = None
    author: str | None = None
    author_id: str | None = None
    created_at: datetime | None = None
    edited_at: datetime | None = None
    permalink: str | None = None
    hidden: bool = False
    # What makes a new version (text, attachments, platform edit time); counts never belong here.
    content: Mapping[str, Any] = field(default_factory=dict)
    # Extra searchable fields (hashtags, mentions, ...), not part of the version.
    extra: Mapping[str, Any] = field(default_factory=dict)
    # A past state from the platform's edit history (e.g. Mastodon's /history): it becomes a version only
    # if the archive does not hold that content yet, and it never changes hidden/removed state.
    # Yield history oldest first, before the current item, and include edited_at so states differ.
    history: bool = False

    def fingerprint(self) -> str:
        """SHA-256 of the version-defining content, used to decide whether this is a new version."""
        doc = {"text": self.text, "edited_at": self.edited_at.isoformat() if self.edited_at else None}
        doc.update({k: v for k, v in self.content.items()})
        data = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Scope:
    """What a walk covers: the account's top-level feed, or the thread under one post.

    ``since`` limits a feed walk to posts created at or after it (the lookback window); absence can only
    be concluded for items inside the scope.
    """

    kind: Literal["feed", "thread"]
    post_native_id: str | None = None
    since: datetime | None = None

    def label(self) -> str:
        """A short human-readable name for logs and harvest-run errors."""
        return "feed" if self.kind == "feed" else f"thread {self.post_native_id}"


@dataclass(frozen=True)
class Page:
    """One fetched response and the items parsed from it; the core stores it in one transaction."""

    scope: Scope
    exchange: Exchange
    items: tuple[Item, ...] = ()


@dataclass(frozen=True)
class WalkComplete:
    """The scope was walked to its documented end: every item it still holds was yielded."""

    scope: Scope


@dataclass(frozen=True)
class WalkFailed:
    """The scope's walk stopped early; nothing can be concluded about absent items."""

    scope: Scope
    error: str
    exchange: Exchange | None = None


@dataclass(frozen=True)
class Probe:
    """The answer to 'is this item really gone?': the exchange that proves it, and the verdict."""

    native_id: str
    gone: bool
    exchange: Exchange | None = None


@dataclass(frozen=True)
class SaveState:
    """Small per-account values to hand back in the next WalkPlan (e.g. ETag, Last-Modified).

    Saved only when the harvest finishes ok. Never put paging cursors here: they die with their item.
    """

    values: Mapping[str, str]


Event = Page | WalkComplete | WalkFailed | SaveState


@dataclass(frozen=True)
class WalkPlan:
    """What the core asks of one harvest: a full backfill, or a re-walk of the lookback window."""

    backfill: bool
    since: datetime | None  # start of the lookback window (None with backfill)
    state: Mapping[str, str] = field(default_factory=dict)  # what the last ok run's SaveState said


class Connector(abc.ABC):
    """Base class of every platform connector (entry-point group ``archiver.connectors``)."""

    #: entry-point name, also the ``platform`` of the records it yields
    name: ClassVar[str]
    #: account config keys this connector reads: key -> one-line description
    config_keys: ClassVar[Mapping[str, str]] = {}
    #: keys that are required
    required_keys: ClassVar[tuple[str, ...]] = ()
    #: keys whose values are secrets (resolved from $env:/$file:, scrubbed from everything stored)
    secret_keys: ClassVar[tuple[str, ...]] = ()
    #: whether absence from a complete walk can mean removal (feeds cannot show deletions)
    can_detect_removal: ClassVar[bool] = True

    def __init__(self, account: Any, http: Any, clock: Any):
        self.account = account
        self.http = http
        self.clock = clock

    @abc.abstractmethod
    def walk(self, plan: WalkPlan) -> Iterator[Event]:
        """Page through the account's content, yielding pages and the end state of each scope."""

    def probe(self, kind: str, native_id: str) -> Probe:
        """Fetch one item to confirm it is gone; platforms that cannot confirm say 'gone'."""
        return Probe(native_id=native_id, gone=True)


# -- shared by the HTTP connectors -------------------------------------------------------------------------
class WalkError(Exception):
    """A scope's walk cannot go on; carries the response that showed it, when there was one, and the
    platform's error code, when it gave one."""

    def __init__(self, message: str, exchange: Exchange | None = None, code: int | None = None):
        super().__init__(message)
        self.exchange = exchange
        self.code = code


class HttpConnector(Connector):
    """A Connector that walks an HTTP API through ``self.http`` (an HttpClient), retrying with ``policy``.

    Rate-limit pauses count against ``max_wait`` (seconds) in ``_waited``; a subclass sets all three.
    """

    policy: RetryPolicy
    max_wait: float
    _waited: float = 0.0

    def _scrub(self, text: str) -> str:
        return self.http.scrub(text)  # type: ignore[no-any-return]

    def _log(self) -> logging.Logger:
        return logging.getLogger(type(self).__module__)  # the connector's own logger

    def _failed(self, scope: Scope, exc: WalkError, what: str | None = None) -> WalkFailed:
        """WalkFailed for ``scope`` (logged): the account, the scope, what was being read, the error."""
        msg = self._scrub(f"account {self.account.name}: {scope.label()}: {what + ': ' if what else ''}{exc}")
        self._log().warning(msg)
        return WalkFailed(scope, msg, exc.exchange)

    def _malformed(self, ex: Exchange, problem: str) -> str:
        return f"malformed response from {ex.url} (HTTP {ex.status}): {problem}"

    def _backoff(self, attempt: int, why: str) -> None:
        """Sleep before retry ``attempt`` (1-based) of a transient failure."""
        delay = self.policy.delay(attempt - 1, self.http.rng)
        self._log().info(self._scrub(f"account {self.account.name}: {why}; retry {attempt} in {delay:.1f} s"))
        self.clock.sleep(delay)

    def _check_wait(self, wait: float, platform: str, why: str) -> None:
        """RateLimited when a rate-limit wait of ``wait`` s would take the pauses beyond max_wait."""
        if self._waited + wait > self.max_wait:
            raise RateLimited(self._scrub(
                f"account {self.account.name}: {platform} rate limit ({why}) asks for a wait of {wait:.0f} s, "
                f"beyond max_wait {self.max_wait:.0f} s ({self._waited:.0f} s already waited); the next "
                "harvest continues"
            ))

    def _sleep(self, seconds: float) -> None:
        """A pause that counts against max_wait."""
        self._waited += seconds
        self.clock.sleep(seconds)


def int_option(account: Any, key: str, default: int, low: int, high: int | None = None, *,
               must: str | None = None) -> int:
    """The account option ``key`` as a whole number from ``low`` to ``high`` (None: no upper bound).

    ConfigError otherwise, saying what it ``must`` be (default: "a whole number from LOW to HIGH").
    """
    try:
        value = int(account.option(key, default))
    except (TypeError, ValueError):
        value = low - 1
    if value < low or (high is not None and value > high):
        must = must or f"a whole number from {low} to {high}"
        raise ConfigError(f"accounts[{account.name}].{key} must be {must}")
    return value


def decode_json(body: bytes) -> tuple[Any, str | None]:
    """(the JSON value of a UTF-8 body, None) or (None, what is wrong with the body)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"body is not valid UTF-8 (byte {exc.start})"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"body is not valid JSON ({exc.msg} at char {exc.pos} of {len(text)})"
