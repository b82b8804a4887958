"""Facebook Pages connector (Graph API): the page feed, then every post's comment stream.

See PLATFORMS.md (Facebook). Errors are classified here: codes 1/2 and HTTP 5xx are transient,
4/17/32/613/80001 are rate limits, 190 is a dead token, 100 is how a deleted object looks.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
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
from .http import HttpClient, RetryPolicy, header, parse_retry_after

log = logging.getLogger(__name__)

POST_FIELDS = (
    "id,message,created_time,updated_time,permalink_url,from,status_type,story,attachments,"
    "message_tags,is_hidden,is_published"
)
COMMENT_FIELDS = (
    "id,message,created_time,from,parent{id},is_hidden,can_hide,attachment,message_tags,"
    "permalink_url,comment_count,like_count"
)
TRANSIENT_CODES = frozenset({1, 2})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80001})
AUTH_CODE = 190
GONE_CODE = 100
TOKEN_PROBLEMS = {463: "expired", 460: "password changed"}
USAGE_HEADERS = ("X-App-Usage", "X-Page-Usage", "X-Business-Use-Case-Usage")
# Slow down from this usage percentage on; the pause grows linearly to THROTTLE_MAX at 100%.
THROTTLE_FROM, THROTTLE_MIN, THROTTLE_MAX = 80.0, 5.0, 60.0
NO_MODERATE = (
    "comments came back without an id: the page access token lacks the MODERATE task on the page, "
    "so comments cannot be archived faithfully; a page access token from someone with the MODERATE "
    "task on the page is required"
)
_HASHTAG_RE = re.compile(r"(?<![\w&])#(\w+)")


class FacebookConnector(HttpConnector):
    """Walks a Facebook Page's feed and comment threads through the Graph API."""

    name: ClassVar[str] = "facebook"
    config_keys: ClassVar[Mapping[str, str]] = {
        "page_id": "numeric id of the Facebook Page",
        "access_token": "Page access token with the MODERATE task ($env:NAME or $file:PATH)",
        "api_base": "Graph API base URL (default https://graph.facebook.com/v21.0)",
        "page_size": "items per request, 1-100 (default 100)",
    }
    required_keys: ClassVar[tuple[str, ...]] = ("page_id", "access_token")
    secret_keys: ClassVar[tuple[str, ...]] = ("access_token",)
    can_detect_removal: ClassVar[bool] = True

    def __init__(self, account: Any, http: HttpClient | None, clock: Any):
        self._token = account.secret("access_token") or ""
        if not self._token:
            raise ConfigError(f"accounts[{account.name}].access_token is required by the 'facebook' connector")
        if http is None:
            http = HttpClient(secrets=[self._token], clock=clock)
        else:
            http.add_secret(self._token)  # whoever built the client, the token must be scrubbed
        super().__init__(account, http, clock)
        self.page_id = str(account.option("page_id") or "")
        if not self.page_id:
            raise ConfigError(f"accounts[{account.name}].page_id is required by the 'facebook' connector")
        self.api_base = str(account.option("api_base", "https://graph.facebook.com/v21.0")).rstrip("/")
        self.page_size = int_option(account, "page_size", 100, 1, 100)
        self.policy: RetryPolicy = getattr(http, "retry_policy", None) or RetryPolicy()
        self.max_wait = account.max_wait.total_seconds()
        self._waited = 0.0  # rate-limit and usage pauses so far, against max_wait
        self._throttle = 0.0  # pause owed before the next call (usage headers said we are close)
        self._warned_headers: set[str] = set()

    # -- walking ---------------------------------------------------------------------------------------
    def walk(self, plan: WalkPlan) -> Iterator[Event]:
        """Yield the feed's pages, then each recent post's comment stream, each scope's end state."""
        self._waited = 0.0
        since = None if plan.backfill else plan.since
        feed = Scope("feed", since=since)
        threads: dict[str, None] = {}  # ordered set: feed order, each post once
        url: str | None = f"{self.api_base}/{self.page_id}/feed"
        params: dict[str, Any] | None = {"fields": POST_FIELDS, "limit": self.page_size}
        seen_urls: set[str] = set()
        while url:
            try:
                ex, data, url = self._page(url, params, seen_urls)
                posts = tuple(self._post(obj, ex) for obj in data)
            except WalkError as exc:
                yield self._failed(feed, exc)
                return  # no feed, no trustworthy list of threads: stop this walk
            params = None  # paging.next carries every parameter
            for post in posts:
                if since is None or post.created_at is None or post.created_at >= since:
                    threads.setdefault(post.native_id)
            yield Page(feed, ex, posts)
            # Posts come newest first: a non-empty page wholly before the window ends the window.
            if since is not None and posts and all(p.created_at and p.created_at < since for p in posts):
                break
        yield WalkComplete(feed)
        for post_id in threads:
            yield from self._walk_thread(post_id)

    def _walk_thread(self, post_id: str) -> Iterator[Event]:
        """One post's comments and replies (filter=stream is flat and chronological)."""
        scope = Scope("thread", post_native_id=post_id)
        url: str | None = f"{self.api_base}/{post_id}/comments"
        params: dict[str, Any] | None = {
            "filter": "stream",
            "order": "chronological",
            "fields": COMMENT_FIELDS,
            "limit": self.page_size,
        }
        seen_urls: set[str] = set()
        while url:
            try:
                ex, data, url = self._page(url, params, seen_urls)
                if not all(isinstance(obj, dict) for obj in data):
                    raise WalkError(self._malformed(ex, "a comment that is not a JSON object"), ex)
                items = [self._comment(obj, post_id, ex) for obj in data if "id" in obj]
            except WalkError as exc:
                yield self._failed(scope, exc)
                return
            params = None
            if len(items) < len(data):
                # Never archive id-less comments silently: keep what has an id, keep the response as
                # evidence, and leave the thread unfinished so nothing in it is concluded removed.
                if items:
                    yield Page(scope, ex, tuple(items))
                log.warning(self._scrub(f"account {self.account.name}: {scope.label()}: {NO_MODERATE}"))
                yield WalkFailed(scope, self._scrub(f"account {self.account.name}: {NO_MODERATE}"), ex)
                return
            yield Page(scope, ex, tuple(items))
        yield WalkComplete(scope)

    def _page(
        self, url: str, params: Mapping[str, Any] | None, seen_urls: set[str]
    ) -> tuple[Exchange, list[Any], str | None]:
        """Fetch one page of an edge: (exchange, data, next URL or None)."""
        if url in seen_urls:
            raise WalkError("paging.next points back at a page already fetched (paging loop)")
        seen_urls.add(url)
        ex, doc = self._call(url, params)
        data = doc.get("data")
        if not isinstance(data, list):
            raise WalkError(self._malformed(ex, "the response has no 'data' list"), ex)
        paging = doc.get("paging")
        nxt = paging.get("next") if isinstance(paging, dict) else None
        if nxt is not None and not (isinstance(nxt, str) and _same_origin(nxt, self.api_base)):
            # The next link is sent with the token in it: only ever follow it to the API we were given.
            raise WalkError(self._malformed(ex, "paging.next is not a URL on the configured api_base"), ex)
        return ex, data, nxt or None

    # -- one request, with retries and rate-limit waits -------------------------------------------------
    def _call(self, url: str, params: Mapping[str, Any] | None) -> tuple[Exchange, dict[str, Any]]:
        """GET a Graph API URL; returns the exchange and its JSON object, or raises.

        Raises AuthError (token rejected), RateLimited (waiting would exceed max_wait) or WalkError
        (transient errors outlasted the retries, malformed response, any other Graph error).
        """
        # Next links come from the stored (redacted) body, so their access_token is the marker: drop it
        # and send ours, which also means we never pass on a token that a response put in a link.
        url = _without_params(url, {"access_token"})
        params = {**(params or {}), "access_token": self._token}
        transient = limited = 0
        while True:
            self._pay_throttle()
            try:
                ex = self.http.get(url, params)
            except TransientError as exc:
                transient += 1
                if transient >= self.policy.max_attempts:
                    raise WalkError(f"{exc} (gave up after {transient} attempts)") from None
                self._backoff(transient, str(exc))
                continue
            except MalformedResponse as exc:
                raise WalkError(str(exc)) from None
            self._read_usage(ex)
            doc, problem = _decode(ex.body)
            err = doc.get("error") if isinstance(doc, dict) else None
            if ex.status == 200 and problem is None and not err:
                return ex, doc  # type: ignore[return-value]
            if ex.status == 200 and problem is not None:
                raise WalkError(self._malformed(ex, problem), ex)
            err = err if isinstance(err, dict) else {}
            code, subcode = _int(err.get("code")), _int(err.get("error_subcode"))
            what = _describe(ex, err, code)
            if code == AUTH_CODE:
                raise AuthError(self._auth_message(subcode))
            if code in RATE_LIMIT_CODES or ex.status == 429:
                wait = self._rate_limit_wait(ex, limited)
                limited += 1
                self._check_wait(wait, "Facebook", what)
                log.info(self._scrub(f"account {self.account.name}: rate limited ({what}); waiting {wait:.1f} s"))
                self._throttle = 0.0  # this wait already is the slow-down the usage headers ask for
                self._sleep(wait)
                continue
            if code in TRANSIENT_CODES or ex.status >= 500 or err.get("is_transient") is True:
                transient += 1
                if transient >= self.policy.max_attempts:
                    raise WalkError(f"{what} (gave up after {transient} attempts)", ex, code)
                self._backoff(transient, what)
                continue
            raise WalkError(what, ex, code)

    def _rate_limit_wait(self, ex: Exchange, attempt: int) -> float:
        """Retry-After (either form), else the usage header's regain time, else backoff."""
        after = parse_retry_after(header(ex.headers, "Retry-After"), self.clock.now())
        if after is not None:
            # At least a second, so even "Retry-After: 0" repeated uses up max_wait and ends.
            return max(after, 1.0)
        regain = self._regain_minutes(ex)
        if regain:
            return regain * 60.0
        # Without a hint never retry at once: a zero wait would not move the max_wait budget.
        return max(self.policy.base, self.policy.delay(attempt, self.http.rng))

    def _regain_minutes(self, ex: Exchange) -> float:
        buc = self._usage_header(ex, "X-Business-Use-Case-Usage")
        best = 0.0
        for entries in buc.values() if isinstance(buc, dict) else ():
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict):
                    best = max(best, _num(entry.get("estimated_time_to_regain_access")))
        return best

    def _read_usage(self, ex: Exchange) -> None:
        """Owe a pause before the next call when any usage percentage reached THROTTLE_FROM."""
        pcts: list[float] = []
        for name in USAGE_HEADERS:
            doc = self._usage_header(ex, name)
            blocks: list[Any] = [doc]
            if name == "X-Business-Use-Case-Usage" and isinstance(doc, dict):
                blocks = [e for v in doc.values() if isinstance(v, list) for e in v]
            for block in blocks:
                if isinstance(block, dict):
                    pcts += [_num(block.get(k)) for k in ("call_count", "total_cputime", "total_time")]
        top = max(pcts, default=0.0)
        if top >= THROTTLE_FROM:
            frac = min(1.0, (top - THROTTLE_FROM) / (100.0 - THROTTLE_FROM))
            self._throttle = max(self._throttle, THROTTLE_MIN + frac * (THROTTLE_MAX - THROTTLE_MIN))

    def _usage_header(self, ex: Exchange, name: str) -> Any:
        raw = header(ex.headers, name)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            if name not in self._warned_headers:  # once per connector, not once per request
                self._warned_headers.add(name)
                log.warning(self._scrub(
                    f"account {self.account.name}: ignoring header {name}: not valid JSON ({raw[:80]!r})"
                ))
            return None

    def _pay_throttle(self) -> None:
        owed, self._throttle = self._throttle, 0.0
        pause = min(owed, max(0.0, self.max_wait - self._waited))
        if pause > 0:
            log.info(self._scrub(f"account {self.account.name}: API usage is high; pausing {pause:.1f} s"))
            self._sleep(pause)

    # -- messages --------------------------------------------------------------------------------------
    def _auth_message(self, subcode: int | None) -> str:
        problem = TOKEN_PROBLEMS.get(subcode or 0, "invalid")
        ref = self.account.option("access_token") or "access_token"
        return self._scrub(
            f"account {self.account.name}: Facebook rejected the access token ({problem}) — generate a "
            f"new Page access token and update {ref}"
        )

    # -- items -----------------------------------------------------------------------------------------
    def _post(self, obj: Any, ex: Exchange) -> Item:
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            raise WalkError(self._malformed(ex, "a post without an id"), ex)
        text = obj.get("message") if obj.get("message") is not None else obj.get("story")
        atts = obj.get("attachments")
        return self._item(obj, "post", None, text, _attachments(atts.get("data") if isinstance(atts, dict) else None), ex)

    def _comment(self, obj: dict[str, Any], post_id: str, ex: Exchange) -> Item:
        parent = obj.get("parent")
        parent_id = parent.get("id") if isinstance(parent, dict) else None
        if parent_id and parent_id != post_id:
            kind, parent_native_id = "reply", str(parent_id)
        else:
            kind, parent_native_id = "comment", post_id
        att = obj.get("attachment")
        return self._item(obj, kind, parent_native_id, obj.get("message"), _attachments([att] if att else []), ex)

    def _item(self, obj: dict[str, Any], kind: Any, parent: str | None, text: Any, atts: list[Any],
              ex: Exchange) -> Item:
        author = obj["from"] if isinstance(obj.get("from"), dict) else {}
        try:
            created = parse_fb_time(obj.get("created_time"))
        except ValueError as exc:
            raise WalkError(self._malformed(ex, f"item {obj.get('id')}: {exc}"), ex) from None
        return Item(
            native_id=str(obj["id"]),
            kind=kind,
            raw=obj,
            parent_native_id=parent,
            text=text if isinstance(text, str) else None,
            author=author.get("name"),
            author_id=author.get("id"),
            created_at=created,
            # Always None: a post's updated_time moves whenever a comment arrives, so it would make
            # spurious versions; the Graph API exposes no real edit time. Edits show as changed text.
            edited_at=None,
            permalink=obj.get("permalink_url"),
            hidden=bool(obj.get("is_hidden", False)),
            content={"attachments": atts},
            extra=_extra(text if isinstance(text, str) else "", obj.get("message_tags")),
        )

    # -- probing ---------------------------------------------------------------------------------------
    def probe(self, kind: str, native_id: str) -> Probe:
        """GET the object: code 100 or HTTP 404 proves it gone; anything else proves nothing."""
        try:
            ex, doc = self._call(f"{self.api_base}/{native_id}", {"fields": "id"})
        except WalkError as exc:
            gone = exc.exchange is not None and (exc.code == GONE_CODE or exc.exchange.status == 404)
            return Probe(native_id=native_id, gone=gone, exchange=exc.exchange)
        except RateLimited:
            return Probe(native_id=native_id, gone=False)
        return Probe(native_id=native_id, gone=False, exchange=ex)


# -- helpers ----------------------------------------------------------------------------------------------
def parse_fb_time(value: Any) -> datetime | None:
    """'2026-10-01T14:03:00+0000' (also ISO forms) -> aware UTC datetime; None when absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"created_time {value!r} is not a string")
    for fmt in ("%Y-%m-%dT%H:%M:%S%z",):
        try:
            return datetime.strptime(value, fmt).astimezone(UTC)
        except ValueError:
            pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"created_time {value!r} is not a Graph API timestamp") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def _decode(body: bytes) -> tuple[Any, str | None]:
    """(parsed JSON object, None) or (None, what is wrong with the body)."""
    doc, problem = decode_json(body)
    if problem is None and not isinstance(doc, dict):
        return None, "body is not a JSON object"
    return doc, problem


def _describe(ex: Exchange, err: Mapping[str, Any], code: int | None) -> str:
    if not err:
        return f"HTTP {ex.status} without a Graph API error object"
    sub = f"/{err.get('error_subcode')}" if err.get("error_subcode") is not None else ""
    trace = f", fbtrace_id {err.get('fbtrace_id')}" if err.get("fbtrace_id") else ""
    return f"Facebook error {code}{sub} (HTTP {ex.status}): {err.get('message', '')}{trace}"


def _attachments(data: Any) -> list[dict[str, Any]]:
    """Stable attachment descriptions: type, target id, title, description, URL without query."""
    out: list[dict[str, Any]] = []
    for att in data if isinstance(data, list) else ():
        if not isinstance(att, dict):
            continue
        target = att["target"] if isinstance(att.get("target"), dict) else {}
        out.append({
            "type": att.get("type"),
            "target_id": target.get("id"),
            "title": att.get("title"),
            "description": att.get("description"),
            "url": _stable_url(att.get("url") or target.get("url")),
        })
        subs = att.get("subattachments")
        out += _attachments(subs.get("data") if isinstance(subs, dict) else None)
    return out


def _stable_url(url: Any) -> str | None:
    """Drop the query (CDN URLs carry rotating signatures); unwrap l.facebook.com redirect links first."""
    if not isinstance(url, str) or not url:
        return None
    parts = urlsplit(url)
    if parts.netloc.endswith("l.facebook.com") and parts.path == "/l.php":
        target = dict(parse_qsl(parts.query)).get("u")
        if target:
            parts = urlsplit(target)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _extra(text: str, tags: Any) -> dict[str, list[str]]:
    hashtags = list(dict.fromkeys(_HASHTAG_RE.findall(text)))
    mentions: list[str] = []
    for tag in tags if isinstance(tags, list) else ():
        if isinstance(tag, dict) and isinstance(tag.get("name"), str):
            name = tag["name"]
            if name.startswith("#"):
                hashtags.append(name[1:])
            elif name not in mentions:
                mentions.append(name)
    return {"hashtags": list(dict.fromkeys(hashtags)), "mentions": mentions}


def _without_params(url: str, names: set[str]) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
