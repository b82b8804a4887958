"""Mastodon connector: an account's statuses, the replies under each (/context), edit histories.

See PLATFORMS.md (Mastodon). Decisions:
- Every status of the account, its own replies included, is a ``post`` (the feed covers its removal); an
  own reply keeps ``parent_native_id = in_reply_to_id`` and is left out of thread pages.
- A reblog is a ``post`` with empty text and ``content["reblog_of"]`` = the boosted status's URI (all of
  it stays in ``raw``); its thread is not walked.
- ``text`` is the status HTML as plain text (paragraph -> blank line, <br> -> newline, tags dropped,
  entities decoded); the HTML stays in ``raw["content"]``.
- ``/context`` caps descendants silently (no token: 60 statuses, 20 levels; token: 4,096), drops what the
  viewer may not see, and may still be fetching remote replies (``Mastodon-Async-Refresh``). A thread is
  complete only if the list is under the cap, no reply is at the depth cap, no status in it reports more
  replies (``replies_count`` counts public and unlisted ones) than the list holds, and no refresh runs;
  else its items are kept and it ends in WalkFailed, so nothing in it is concluded removed.
- ``/history`` of an edited status is its own page, before the page with the status, as history items.
  The first entry is the original (``edited_at`` None, matching a capture made before the edit); the
  others carry their ``created_at``; the newest equals the status's ``edited_at``, so same fingerprint.
- Threads are walked oldest first; an own reply inside a completely walked thread is not walked again.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from archiver.errors import AuthError, ConfigError, MalformedResponse, RateLimited, TransientError

from .base import (
    Event,
    Exchange,
    HttpConnector,
    Item,
    Page,
    Probe,
    Scope,
    WalkComplete,
    WalkError,
    WalkFailed,
    WalkPlan,
    decode_json,
    int_option,
)
from .http import REDACTED_TEXT, SECRET_PARAMS, HttpClient, RetryPolicy, header, parse_retry_after

log = logging.getLogger(__name__)

MAX_PAGE = 40
CAP_PUBLIC, CAP_TOKEN, DEPTH_CAP_PUBLIC = 60, 4096, 20
_ID_RE = re.compile(r"^[0-9]{1,30}$")
_LINK_RE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL_RE = re.compile(r'rel\s*=\s*"?([^";]+)"?', re.I)


_Failure = WalkError  # the name this module's error had before WalkError; tests still use it


class MastodonConnector(HttpConnector):
    """Walks a Mastodon account's statuses and the replies under them through the client API."""

    name: ClassVar[str] = "mastodon"
    config_keys: ClassVar[Mapping[str, str]] = {
        "instance": "base URL of the account's home instance, e.g. https://mastodon.example",
        "account_id": "numeric id of the account on that instance",
        "access_token": "optional access token with read:statuses ($env:NAME or $file:PATH); without one "
                        "only public statuses are seen and reply lists are capped at 60",
        "page_size": "statuses per request, 1-40 (default 40)",
    }
    required_keys: ClassVar[tuple[str, ...]] = ("instance", "account_id")
    secret_keys: ClassVar[tuple[str, ...]] = ("access_token",)
    can_detect_removal: ClassVar[bool] = True

    def __init__(self, account: Any, http: HttpClient | None, clock: Any):
        self._token = account.secret("access_token") or ""
        if http is None:
            http = HttpClient(secrets=[self._token] if self._token else [], clock=clock)
        elif self._token:
            http.add_secret(self._token)
        super().__init__(account, http, clock)
        where = f"accounts[{account.name}]"
        self.instance = str(account.option("instance") or "").rstrip("/")
        if urlsplit(self.instance).scheme not in ("http", "https") or not urlsplit(self.instance).netloc:
            raise ConfigError(f"{where}.instance must be the instance's base URL, e.g. https://mastodon.example")
        self.account_id = str(account.option("account_id") or "")
        if not _ID_RE.match(self.account_id):
            raise ConfigError(f"{where}.account_id must be the account's numeric id (a string of digits)")
        self.page_size = int_option(account, "page_size", MAX_PAGE, 1, MAX_PAGE)
        self.policy: RetryPolicy = getattr(http, "retry_policy", None) or RetryPolicy()
        self.max_wait = account.max_wait.total_seconds()
        self._waited = 0.0
        self._reset_at: datetime | None = None  # our clock's time the rate-limit window reopens

    # -- walking ---------------------------------------------------------------------------------------
    def walk(self, plan: WalkPlan) -> Iterator[Event]:
        """The feed (newest first, by the Link header), then each recent status's replies, oldest first."""
        self._waited = 0.0
        since = None if plan.backfill else plan.since
        feed = Scope("feed", since=since)
        roots: dict[str, dict[str, Any]] = {}  # status id -> status JSON, for threads to walk
        feed_ok = True
        url: str | None = f"{self.instance}/api/v1/accounts/{self.account_id}/statuses"
        params: dict[str, Any] | None = {"limit": self.page_size, "exclude_replies": "false"}
        oldest: str | None = None
        while url:
            try:
                ex, data, url = self._list_page(url, params)
                posts = [self._status(obj, ex, "post", _str(obj.get("in_reply_to_id"))) for obj in data]
                if oldest is not None and posts and compare_ids(posts[0].native_id, oldest) >= 0:
                    raise WalkError(self._malformed(ex, "the next page is not older than the last one"), ex)
            except WalkError as exc:
                yield self._failed(feed, exc)
                return  # no trustworthy list of statuses: stop this walk
            params = None  # the Link header's URL carries every parameter
            oldest = posts[-1].native_id if posts else oldest
            for event in self._histories(feed, data, posts):
                feed_ok = feed_ok and not isinstance(event, WalkFailed)
                yield event
            yield Page(feed, ex, tuple(posts))
            for obj, post in zip(data, posts, strict=True):
                if (since is None or (post.created_at and post.created_at >= since)) and not obj.get("reblog"):
                    roots[post.native_id] = obj
            # Newest first: a page wholly before the window ends the window; an empty one ends the list (and
            # each page must be older than the last, so the walk cannot loop).
            if not posts or (since and all(p.created_at and p.created_at < since for p in posts)):
                break
        if feed_ok:
            yield WalkComplete(feed)
        covered: set[str] = set()
        for sid in sorted(roots, key=id_key):
            if sid not in covered:
                yield from self._walk_thread(roots[sid], covered)

    def _walk_thread(self, root: dict[str, Any], covered: set[str]) -> Iterator[Event]:
        """One status's descendants: comments (direct replies) and replies (to comments)."""
        post_id = str(root["id"])
        scope = Scope("thread", post_native_id=post_id)
        try:
            ex, doc = self._call(f"{self.instance}/api/v1/statuses/{post_id}/context", None)
            desc = doc.get("descendants") if isinstance(doc, dict) else None
            if not isinstance(desc, list) or not all(isinstance(d, dict) and isinstance(d.get("id"), str)
                                                     for d in desc):
                raise WalkError(self._malformed(ex, "the context has no 'descendants' list of statuses"), ex)
            theirs = [d for d in desc if _str(_obj(d.get("account")).get("id")) != self.account_id]
            items = [self._status(d, ex, *_kind(d, post_id)) for d in theirs]
        except WalkError as exc:
            yield self._failed(scope, exc)
            return
        ok = True
        for event in self._histories(scope, theirs, items):
            ok = ok and not isinstance(event, WalkFailed)
            yield event
        yield Page(scope, ex, tuple(items))
        doubt = self._incomplete(root, desc, ex)
        if doubt:
            msg = self._scrub(f"account {self.account.name}: {scope.label()}: {doubt}; nothing in it is "
                              "concluded removed" + (" (an access_token lifts the cap)" if "cap" in doubt and not self._token else ""))
            log.warning(msg)
            yield WalkFailed(scope, msg)
        elif ok:
            covered.update(str(d["id"]) for d in desc)
            yield WalkComplete(scope)

    def _incomplete(self, root: dict[str, Any], desc: list[dict[str, Any]], ex: Exchange) -> str | None:
        """Why the descendants list may lack replies, or None when it is whole."""
        cap = CAP_TOKEN if self._token else CAP_PUBLIC
        if len(desc) >= cap:
            return f"the reply list holds {len(desc)} statuses, Mastodon's cap: it may be cut short"
        if header(ex.headers, "Mastodon-Async-Refresh"):
            return "the instance is still fetching remote replies (Mastodon-Async-Refresh)"
        children = Counter(_str(d.get("in_reply_to_id")) for d in desc)
        depth = {str(root["id"]): 0}
        for d in desc:  # depth first: a parent comes before its replies
            depth[d["id"]] = depth.get(_str(d.get("in_reply_to_id")) or "", 0) + 1
        if not self._token and max(depth.values()) >= DEPTH_CAP_PUBLIC:
            return f"replies reach {DEPTH_CAP_PUBLIC} levels, Mastodon's depth cap: deeper ones are cut"
        for status in [root, *desc]:
            said = status.get("replies_count")
            got = children[str(status["id"])]
            if isinstance(said, int) and said > got:
                return (f"status {status['id']} reports {said} replies but the reply list holds {got} "
                        "(replies hidden from this viewer, or a cut list)")
        return None

    def _histories(self, scope: Scope, objs: list[Any], items: list[Item]) -> Iterator[Event]:
        """A history page for each edited status among ``objs`` (WalkFailed if one cannot be fetched)."""
        for obj, item in zip(objs, items, strict=True):
            if not obj.get("edited_at") or obj.get("reblog"):
                continue
            try:
                ex, doc = self._call(f"{self.instance}/api/v1/statuses/{item.native_id}/history", None)
                if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc):
                    raise WalkError(self._malformed(ex, "the edit history is not a list of objects"), ex)
                states = [self._history_item(entry, i, item, ex) for i, entry in enumerate(doc)]
            except WalkError as exc:
                yield self._failed(scope, exc, f"edit history of status {item.native_id}")
                continue
            yield Page(scope, ex, tuple(states))

    def _list_page(self, url: str, params: Mapping[str, Any] | None) -> tuple[Exchange, list[Any], str | None]:
        ex, doc = self._call(url, params)
        if not isinstance(doc, list) or not all(isinstance(s, dict) for s in doc):
            raise WalkError(self._malformed(ex, "the response is not a JSON list of statuses"), ex)
        nxt = link_next(header(ex.headers, "Link"))
        if nxt is not None:
            nxt = _clean_url(nxt, SECRET_PARAMS)  # the token goes in a header, never in a URL
            if urlsplit(nxt)[:2] != urlsplit(self.instance)[:2] or REDACTED_TEXT in nxt:
                raise WalkError(self._malformed(ex, "the Link header's next URL is not on the instance"), ex)
        return ex, doc, nxt

    # -- one request, with retries and rate-limit waits -------------------------------------------------
    def _call(self, url: str, params: Mapping[str, Any] | None) -> tuple[Exchange, Any]:
        """GET one API URL: (exchange, parsed JSON), or AuthError / RateLimited / WalkError."""
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        transient = limited = 0
        while True:
            self._wait_for_window()
            try:
                ex: Exchange | None = self.http.get(url, params, headers)
            except TransientError as exc:
                ex, what = None, str(exc)
            except MalformedResponse as exc:
                raise WalkError(str(exc)) from None
            if ex is not None:
                self._read_window(ex)
                if ex.status == 200:
                    doc, problem = decode_json(ex.body)
                    if problem is not None:
                        raise WalkError(self._malformed(ex, problem), ex)
                    return ex, doc
                what = _describe(ex)
                if ex.status in (401, 403):
                    raise AuthError(self._auth_message(what))
                if ex.status == 429:
                    self._reset_at = None  # the wait below is the one the limit asks for
                    self._pause(self._rate_limit_wait(ex, limited), what)
                    limited += 1
                    continue
                if ex.status < 500:
                    raise WalkError(what, ex)
            transient += 1  # a network failure or a 5xx
            if transient >= self.policy.max_attempts:
                raise WalkError(f"{what} (gave up after {transient} attempts)", ex)
            self._backoff(transient, what)

    def _pause(self, wait: float, why: str) -> None:
        """Sleep ``wait`` s for the rate limit (counted against max_wait), or RateLimited beyond it."""
        self._check_wait(wait, "Mastodon", why)
        log.info(self._scrub(f"account {self.account.name}: rate limit ({why}); waiting {wait:.1f} s"))
        self._sleep(wait)

    def _server_now(self, ex: Exchange) -> datetime:
        """The server's clock (Date header) when it answered; our clock when it did not say."""
        try:
            when = parsedate_to_datetime(header(ex.headers, "Date") or "")
        except (TypeError, ValueError, IndexError):
            return self.clock.now()  # type: ignore[no-any-return]
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    def _until_reset(self, ex: Exchange) -> float | None:
        reset = parse_time(header(ex.headers, "X-RateLimit-Reset"), strict=False)
        return None if reset is None else max(0.0, (reset - self._server_now(ex)).total_seconds())

    def _read_window(self, ex: Exchange) -> None:
        """Remaining 0: owe a pause until the window resets (measured on the server's clock)."""
        remaining = _int(header(ex.headers, "X-RateLimit-Remaining"))
        wait = self._until_reset(ex) if remaining is not None and remaining <= 0 else None
        self._reset_at = self.clock.now() + timedelta(seconds=wait) if wait else None

    def _wait_for_window(self) -> None:
        wait = (self._reset_at - self.clock.now()).total_seconds() if self._reset_at else 0.0
        self._reset_at = None
        if wait > 0:
            self._pause(wait, "no requests remaining until X-RateLimit-Reset")

    def _rate_limit_wait(self, ex: Exchange, attempt: int) -> float:
        """Retry-After (either form), else X-RateLimit-Reset, else backoff (at least a second)."""
        after = parse_retry_after(header(ex.headers, "Retry-After"), self._server_now(ex))
        if after is None:
            after = self._until_reset(ex)
        if after is None or after < 1.0:  # no usable hint (or a reset already past): back off, never hammer
            after = max(self.policy.base, 1.0, self.policy.delay(attempt, self.http.rng))
        return after

    # -- messages --------------------------------------------------------------------------------------
    def _auth_message(self, what: str) -> str:
        if self._token:
            problem, todo = "rejected the access token", f"update {self.account.option('access_token')}"
        else:
            problem, todo = "refused to serve the account without a token", "set access_token"
        return self._scrub(f"account {self.account.name}: {self.instance} {problem} ({what}) — create "
                           f"{'a new' if self._token else 'an'} access token with the read:statuses scope on "
                           f"the instance and {todo}")

    # -- items -----------------------------------------------------------------------------------------
    def _status(self, obj: dict[str, Any], ex: Exchange, kind: Any, parent: str | None) -> Item:
        if not isinstance(obj.get("id"), str) or not _ID_RE.match(obj["id"]):
            raise WalkError(self._malformed(ex, f"a status without a string id: {str(obj.get('id'))[:40]!r}"), ex)
        try:
            created, edited = parse_time(obj.get("created_at")), parse_time(obj.get("edited_at"))
        except ValueError as exc:
            raise WalkError(self._malformed(ex, f"status {obj['id']}: {exc}"), ex) from None
        account, shown = _obj(obj.get("account")), _obj(obj.get("reblog")) or obj
        extra: dict[str, Any] = {
            "hashtags": [t["name"] for t in _dicts(shown.get("tags")) if isinstance(t.get("name"), str)],
            "mentions": [m["acct"] for m in _dicts(shown.get("mentions")) if isinstance(m.get("acct"), str)],
            "display_name": account.get("display_name"),
        }
        if shown is not obj:
            extra["reblog_of_account"] = _obj(shown.get("account")).get("acct")
        return Item(
            native_id=obj["id"], kind=kind, raw=obj, parent_native_id=parent,
            text="" if shown is not obj else html_to_text(obj.get("content")),
            author=_str(account.get("acct")), author_id=_str(account.get("id")), created_at=created,
            edited_at=edited, permalink=_str(obj.get("url") or obj.get("uri")), content=status_content(obj),
            extra=extra,
        )

    def _history_item(self, entry: dict[str, Any], index: int, status: Item, ex: Exchange) -> Item:
        try:
            at = parse_time(entry.get("created_at"))
        except ValueError as exc:
            raise WalkError(self._malformed(ex, f"history of status {status.native_id}: {exc}"), ex) from None
        account = _obj(entry.get("account"))
        return Item(
            native_id=status.native_id, kind=status.kind, raw=entry, parent_native_id=status.parent_native_id,
            text=html_to_text(entry.get("content")), author=_str(account.get("acct")) or status.author,
            author_id=_str(account.get("id")) or status.author_id, created_at=status.created_at,
            edited_at=None if index == 0 else at,  # the first entry is the original, never edited
            permalink=status.permalink, content=status_content(entry), history=True,
        )

    # -- probing ---------------------------------------------------------------------------------------
    def probe(self, kind: str, native_id: str) -> Probe:
        """GET the status: 404 {"error": "Record not found"} proves it gone; anything else proves nothing."""
        if not _ID_RE.match(native_id):
            return Probe(native_id=native_id, gone=False)
        try:
            ex, _ = self._call(f"{self.instance}/api/v1/statuses/{native_id}", None)
        except WalkError as exc:
            ex2 = exc.exchange
            gone = ex2 is not None and ex2.status == 404 and _error_text(ex2.body) == "Record not found"
            return Probe(native_id=native_id, gone=gone, exchange=ex2)
        except RateLimited:
            return Probe(native_id=native_id, gone=False)
        return Probe(native_id=native_id, gone=False, exchange=ex)


# -- helpers ----------------------------------------------------------------------------------------------
def id_key(status_id: str) -> tuple[int, str]:
    """Sort key for Mastodon ids (numeric strings of any length): by length, then lexically."""
    return (len(status_id), status_id)


def compare_ids(a: str, b: str) -> int:
    """-1, 0 or 1 as id ``a`` is older than, the same as, or newer than ``b``."""
    ka, kb = id_key(a), id_key(b)
    return (ka > kb) - (ka < kb)


def status_content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What makes a version: built the same way from a status and from a /history entry."""
    # remote_url first: a remote file's local copy moves (media proxy) when the instance purges its cache.
    media = [{"id": _str(m.get("id")), "type": m.get("type"), "url": _clean_url(m.get("remote_url") or m.get("url")),
              "description": m.get("description")} for m in _dicts(obj.get("media_attachments"))]
    poll = _obj(obj.get("poll"))
    out: dict[str, Any] = {
        "spoiler_text": obj.get("spoiler_text") or "",
        "sensitive": bool(obj.get("sensitive")),
        "media": media,
        "poll": [o.get("title") for o in _dicts(poll.get("options"))] if poll else None,
    }
    if isinstance(obj.get("reblog"), dict):
        out["reblog_of"] = obj["reblog"].get("uri") or obj["reblog"].get("url")
    return out


def parse_time(value: Any, strict: bool = True) -> datetime | None:
    """'2026-10-01T14:03:00.000Z' (any ISO-8601 form) -> aware UTC datetime; None when absent."""
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        if not strict:
            return None
        raise ValueError(f"time {str(value)[:40]!r} is not ISO-8601") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def link_next(value: str | None) -> str | None:
    """The rel="next" URL of a Link header, or None."""
    for m in _LINK_RE.finditer(value or ""):
        rel = _REL_RE.search(m.group(2))
        if rel and "next" in rel.group(1).lower().split():
            return m.group(1).strip()
    return None


class _TextParser(HTMLParser):
    BLOCKS = frozenset({"p", "blockquote", "pre", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []

    def _gap(self, sep: str) -> None:
        if self.out and not "".join(self.out[-2:]).endswith(sep):
            self.out.append(sep)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.out.append("\n")
        elif tag == "li" or tag in self.BLOCKS:
            self._gap("\n" if tag == "li" else "\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self._gap("\n\n")

    def handle_data(self, data: str) -> None:
        self.out.append(data)


def html_to_text(html: Any) -> str | None:
    """Mastodon's status HTML as plain text: '<p>a<br />b</p><p>c &amp; d</p>' -> 'a\\nb\\n\\nc & d'."""
    if not isinstance(html, str):
        return None
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return "".join(parser.out).strip("\n")


def _kind(obj: dict[str, Any], post_id: str) -> tuple[str, str | None]:
    parent = _str(obj.get("in_reply_to_id"))
    return ("comment" if parent == post_id or parent is None else "reply"), parent or post_id


def _error_text(body: bytes) -> str | None:
    doc, problem = decode_json(body)
    return doc.get("error") if problem is None and isinstance(doc, dict) else None


def _describe(ex: Exchange) -> str:
    err = _error_text(ex.body)
    return f"HTTP {ex.status}: {err}" if isinstance(err, str) else f"HTTP {ex.status} without a Mastodon error"


def _clean_url(url: Any, drop: frozenset[str] | None = None) -> Any:
    """``url`` without the query parameters in ``drop`` (None: without any query, nor fragment)."""
    if not isinstance(url, str) or not url:
        return None
    p = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(p.query, keep_blank_values=True) if drop and k.lower() not in drop]
    return urlunsplit((p.scheme, p.netloc, p.path, urlencode(query), ""))


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return str(value) if value is not None and value != "" else None


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None
