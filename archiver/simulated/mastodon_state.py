"""In-memory model of one Mastodon account and the statuses around it, as the client API shows them.

The HTTP layer (archiver.simulated.mastodon) turns requests into ``handle_get`` calls and ApiError into
``{"error": ...}`` bodies. Control methods (add_status, edit_status, ...) make things happen.
"""

from __future__ import annotations

import html
import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

SNOWFLAKE_FROM = datetime(2017, 10, 1, tzinfo=UTC)  # Mastodon 2.0: older statuses kept short numeric ids
LEGACY_FIRST_ID = 95_000
CAP_PUBLIC, CAP_TOKEN, DEPTH_CAP_PUBLIC, ANCESTORS_CAP_PUBLIC = 60, 4096, 20, 40
RATE_WINDOW = 300  # seconds; Mastodon allows 300 requests per 5 minutes by default
_TOKEN_RE = re.compile(r"(https?://[^\s<]+)|(?<![\w/&])#(\w+)|(?<![\w/])@(\w+(?:@[\w.-]+\w)?)")


class ApiError(Exception):
    """A Mastodon API error: ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

    def body(self) -> dict[str, Any]:
        """The body Mastodon sends."""
        return {"error": self.message}


def not_found() -> ApiError:
    """What Mastodon answers for a missing, deleted or not-permitted status."""
    return ApiError(404, "Record not found")


def ms_time(dt: datetime) -> str:
    """Mastodon's timestamps: '2026-10-01T14:03:00.000Z'."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def to_datetime(value: datetime | str | None, default: datetime) -> datetime:
    """A datetime, an ISO string (the control endpoint sends strings) or None -> aware UTC, milliseconds."""
    if value is None:
        value = default
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


@dataclass
class SimAccount:
    """A Mastodon account: the archived one, or someone replying to it."""

    id: str
    username: str
    acct: str  # "user" on this instance, "user@other.example" elsewhere
    display_name: str
    domain: str

    def doc(self) -> dict[str, Any]:
        """The Account entity (a useful subset)."""
        url = f"https://{self.domain}/@{self.username}"
        return {"id": self.id, "username": self.username, "acct": self.acct, "display_name": self.display_name,
                "locked": False, "bot": False, "discoverable": True, "group": False,
                "created_at": "2022-11-07T00:00:00.000Z", "note": "", "url": url, "uri": url.replace("/@", "/users/"),
                "avatar": f"https://{self.domain}/avatars/original/missing.png", "emojis": [], "fields": []}


@dataclass
class Snapshot:
    """One state of a status, as /history shows it."""

    text: str
    spoiler_text: str
    sensitive: bool
    media: list[dict[str, Any]]
    poll: list[str] | None
    at: datetime


@dataclass
class SimStatus:
    """One status (a reblog wrapper when ``reblog_of`` is set)."""

    id: str
    account: SimAccount
    text: str
    created: datetime
    in_reply_to_id: str | None = None
    spoiler_text: str = ""
    sensitive: bool = False
    visibility: str = "public"
    media: list[dict[str, Any]] = field(default_factory=list)
    poll: list[str] | None = None
    edited: datetime | None = None
    edits: list[Snapshot] = field(default_factory=list)
    reblog_of: str | None = None
    deleted: bool = False
    counts: dict[str, int | None] = field(default_factory=lambda: {"replies": None, "reblogs": 0, "favourites": 0})

    def snapshot(self, at: datetime) -> Snapshot:
        """The status's current state, stamped ``at``."""
        return Snapshot(self.text, self.spoiler_text, self.sensitive, [dict(m) for m in self.media],
                        list(self.poll) if self.poll else None, at)


def id_key(status_id: str) -> tuple[int, str]:
    """Numeric order of id strings."""
    return (len(status_id), status_id)


class MastodonState:
    """The account's statuses, replies to them, the token and the rate-limit window; thread-safe."""

    def __init__(self, account_id: str = "109876", token: str | None = None, now: Callable[[], datetime] | None = None,
                 username: str = "andoverpd", display_name: str = "Andover Police Department",
                 domain: str = "mastodon.example"):
        self.domain = domain
        self.token, self.token_revoked = token, False
        self.clock: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.me = SimAccount(str(account_id), username, username, display_name, domain)
        self.accounts: dict[str, SimAccount] = {username: self.me}
        self.statuses: dict[str, SimStatus] = {}
        self._seq = itertools.count(1)
        self._legacy = itertools.count(LEGACY_FIRST_ID)
        self.rate_limit, self.rate_remaining = RATE_WINDOW, RATE_WINDOW
        self.rate_reset: datetime | None = None
        self.demo_ids: dict[str, str] = {}  # filled by seed_demo: notable ids a demo changes later

    def now(self) -> datetime:
        """The simulator's current time, to the millisecond."""
        return to_datetime(self.clock(), self.clock())

    # -- control ---------------------------------------------------------------------------------------
    def add_status(self, text: str, created_at: datetime | str | None = None, in_reply_to_id: str | None = None,
                   author: tuple[str, str] | None = None, spoiler_text: str = "", sensitive: bool = False,
                   media: list[dict[str, Any]] | None = None, poll: list[str] | None = None,
                   visibility: str = "public") -> str:
        """Publish a status (by the account, or by ``author`` = (acct, display_name)); returns its id."""
        with self.lock:
            if in_reply_to_id is not None and in_reply_to_id not in self.statuses:
                raise KeyError(f"no status {in_reply_to_id!r}")
            when = to_datetime(created_at, self.now())
            sid = self._new_id(when)
            st = SimStatus(sid, self._account(author), text, when, in_reply_to_id, spoiler_text, bool(sensitive),
                           visibility, [self._media(m) for m in media or []], list(poll) if poll else None)
            self.statuses[sid] = st
            return sid

    def add_reblog(self, status_id: str, created_at: datetime | str | None = None) -> str:
        """The account boosts ``status_id``; returns the reblog wrapper's id."""
        with self.lock:
            self._get(status_id)
            when = to_datetime(created_at, self.now())
            sid = self._new_id(when)
            self.statuses[sid] = SimStatus(sid, self.me, "", when, reblog_of=status_id)
            return sid

    def edit_status(self, id: str, text: str | None = None, spoiler_text: str | None = None,
                    sensitive: bool | None = None, media: list[dict[str, Any]] | None = None) -> None:
        """Edit a status the way Mastodon does: history gains the original (first time) and the new state."""
        with self.lock:
            st = self._get(id)
            if not st.edits:
                st.edits.append(st.snapshot(st.created))
            if text is not None:
                st.text = text
            if spoiler_text is not None:
                st.spoiler_text = spoiler_text
            if sensitive is not None:
                st.sensitive = bool(sensitive)
            if media is not None:
                st.media = [self._media(m) for m in media]
            st.edited = max(self.now(), st.edits[-1].at)
            st.edits.append(st.snapshot(st.edited))

    def delete_status(self, id: str) -> None:
        """Delete a status: 404 from now on; its replies drop out of every context."""
        with self.lock:
            self._get(id, alive=False).deleted = True

    def restore_status(self, id: str) -> None:
        """Undo delete_status."""
        with self.lock:
            self._get(id, alive=False).deleted = False

    def set_counts(self, id: str, replies: int | None = None, reblogs: int | None = None,
                   favourites: int | None = None) -> None:
        """Override counts (never a new version); ``replies`` otherwise counts public direct replies."""
        with self.lock:
            st = self._get(id, alive=False)
            for key, value in (("replies", replies), ("reblogs", reblogs), ("favourites", favourites)):
                if value is not None:
                    st.counts[key] = int(value)

    def status_text(self, id: str) -> str:
        """A status's current text, as given to add_status / edit_status."""
        with self.lock:
            return self._get(id, alive=False).text

    def set_rate_limit(self, remaining: int | None = None, reset: datetime | str | None = None,
                       limit: int | None = None) -> None:
        """Set the rate-limit window: requests left and when it resets (default: the next 5-minute mark)."""
        with self.lock:
            if limit is not None:
                self.rate_limit = int(limit)
            self.rate_remaining = self.rate_limit if remaining is None else int(remaining)
            self.rate_reset = to_datetime(reset, self.now()) if reset is not None else self._next_reset()

    def revoke_token(self) -> None:
        """From now on the token gets 401 (requests without a token still work)."""
        self.token_revoked = True

    def _new_id(self, when: datetime) -> str:
        if when < SNOWFLAKE_FROM:
            return str(next(self._legacy))
        return str((int(when.timestamp() * 1000) << 16) | (next(self._seq) & 0xFFFF))

    def _account(self, author: tuple[str, str] | list[str] | None) -> SimAccount:
        if author is None:
            return self.me
        acct, name = str(author[0]).lstrip("@"), str(author[1])
        if acct not in self.accounts:
            user, _, dom = acct.partition("@")
            self.accounts[acct] = SimAccount(str(110_000 + 7 * len(self.accounts)), user, acct, name,
                                             dom or self.domain)
        return self.accounts[acct]

    def _media(self, spec: dict[str, Any]) -> dict[str, Any]:
        mid = str((int(self.now().timestamp() * 1000) << 16) | (next(self._seq) & 0xFFFF))
        path = f"media_attachments/files/{mid[:3]}/{mid[3:6]}/{mid[6:9]}"
        kind = str(spec.get("type", "image"))
        return {"id": mid, "type": kind, "url": f"https://files.{self.domain}/{path}/original/{mid}.jpg",
                "preview_url": f"https://files.{self.domain}/{path}/small/{mid}.jpg", "remote_url": None,
                "preview_remote_url": None, "text_url": None, "description": spec.get("description"),
                "meta": {"original": {"width": 1200, "height": 800, "size": "1200x800", "aspect": 1.5}},
                "blurhash": "UEHLh[WB2yk8pyoJadR*.7kCMdnj"}

    def _get(self, id: str, alive: bool = True) -> SimStatus:
        st = self.statuses.get(id)
        if st is None or (alive and st.deleted):
            raise KeyError(f"no status {id!r}")
        return st

    # -- rate limit ------------------------------------------------------------------------------------
    def _next_reset(self) -> datetime:
        t = int(self.now().timestamp())
        return datetime.fromtimestamp(t - t % RATE_WINDOW + RATE_WINDOW, UTC)

    def take_request(self) -> tuple[bool, dict[str, str]]:
        """Count one request against the window: (allowed, the X-RateLimit-* headers to send)."""
        with self.lock:
            now = self.now()
            if self.rate_reset is None or now >= self.rate_reset:
                self.rate_remaining, self.rate_reset = self.rate_limit, self._next_reset()
            allowed = self.rate_remaining > 0
            if allowed:
                self.rate_remaining -= 1
            return allowed, self.rate_headers()

    def rate_headers(self, remaining: int | None = None, reset: datetime | None = None) -> dict[str, str]:
        """X-RateLimit-Limit/Remaining/Reset, Reset as ISO-8601 with microseconds like Mastodon."""
        when = (reset or self.rate_reset or self._next_reset()).astimezone(UTC)
        return {"X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": str(self.rate_remaining if remaining is None else remaining),
                "X-RateLimit-Reset": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}

    # -- reading ---------------------------------------------------------------------------------------
    def check_token(self, bearer: str | None) -> bool:
        """Whether the request is authenticated; ApiError 401 for a wrong or revoked token."""
        if bearer is None:
            return False
        if self.token is None or bearer != self.token or self.token_revoked:
            raise ApiError(401, "The access token is invalid")
        return True

    def handle_get(self, path: str, params: dict[str, str], authed: bool, base_url: str) -> tuple[Any, dict[str, str]]:
        """Answer one API GET: (JSON document, extra headers such as Link)."""
        with self.lock:
            parts = [p for p in path.split("/") if p]
            if parts[:3] == ["api", "v1", "accounts"] and len(parts) == 5 and parts[4] == "statuses":
                if parts[3] != self.me.id:
                    raise not_found()
                return self._account_statuses(path, params, authed, base_url)
            if parts[:3] == ["api", "v1", "accounts"] and len(parts) == 4 and parts[3] == self.me.id:
                return self.me.doc(), {}
            if parts[:3] == ["api", "v1", "statuses"] and len(parts) in (4, 5):
                st = self.statuses.get(parts[3])
                if st is None or st.deleted or not self._visible(st, authed):
                    raise not_found()
                if len(parts) == 4:
                    return self.status_doc(st), {}
                if parts[4] == "context":
                    return self._context(st, authed), {}
                if parts[4] == "history":
                    return self._history(st), {}
            raise ApiError(404, "Not Found")

    def _visible(self, st: SimStatus, authed: bool) -> bool:
        return authed or st.visibility in ("public", "unlisted")

    def _account_statuses(self, path: str, params: dict[str, str], authed: bool,
                          base_url: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
        try:
            limit = max(1, min(40, int(params.get("limit", 20))))
        except ValueError:
            limit = 20
        mine = sorted((s for s in self.statuses.values() if s.account is self.me and not s.deleted
                       and self._visible(s, authed)), key=lambda s: id_key(s.id), reverse=True)
        if params.get("exclude_replies") in ("true", "1"):
            mine = [s for s in mine if s.in_reply_to_id is None or self.statuses[s.in_reply_to_id].account is self.me]
        if params.get("exclude_reblogs") in ("true", "1"):
            mine = [s for s in mine if s.reblog_of is None]
        if params.get("max_id"):
            mine = [s for s in mine if id_key(s.id) < id_key(params["max_id"])]
        low = params.get("min_id") or params.get("since_id")
        if low:
            mine = [s for s in mine if id_key(s.id) > id_key(low)]
        chunk = mine[-limit:] if params.get("min_id") else mine[:limit]
        keep = {k: v for k, v in params.items() if k in ("limit", "exclude_replies", "exclude_reblogs", "only_media")}
        links = []
        if len(chunk) == limit:  # Mastodon offers "next" whenever the page is full
            links.append(f'<{base_url}{path}?{urlencode({**keep, "max_id": chunk[-1].id})}>; rel="next"')
        if chunk:
            links.append(f'<{base_url}{path}?{urlencode({**keep, "min_id": chunk[0].id})}>; rel="prev"')
        return [self.status_doc(s) for s in chunk], ({"Link": ", ".join(links)} if links else {})

    def _children(self, st: SimStatus, authed: bool) -> list[SimStatus]:
        kids = [s for s in self.statuses.values() if s.in_reply_to_id == st.id and not s.deleted
                and self._visible(s, authed)]
        return sorted(kids, key=lambda s: id_key(s.id))

    def _context(self, st: SimStatus, authed: bool) -> dict[str, Any]:
        ancestors: list[SimStatus] = []
        up = st.in_reply_to_id
        while up and up in self.statuses and not self.statuses[up].deleted:
            ancestors.insert(0, self.statuses[up])
            up = self.statuses[up].in_reply_to_id
        if not authed:
            ancestors = ancestors[-ANCESTORS_CAP_PUBLIC:]
        cap, depth_cap = (CAP_TOKEN, None) if authed else (CAP_PUBLIC, DEPTH_CAP_PUBLIC)
        descendants: list[SimStatus] = []

        def visit(node: SimStatus, depth: int) -> None:
            for kid in self._children(node, authed):
                if len(descendants) >= cap or (depth_cap is not None and depth > depth_cap):
                    return
                descendants.append(kid)
                visit(kid, depth + 1)

        visit(st, 1)
        return {"ancestors": [self.status_doc(s) for s in ancestors],
                "descendants": [self.status_doc(s) for s in descendants]}

    def _history(self, st: SimStatus) -> list[dict[str, Any]]:
        snaps = st.edits or [st.snapshot(st.edited or st.created)]
        out = []
        for snap in snaps:
            entry: dict[str, Any] = {"content": self.render_html(snap.text), "spoiler_text": snap.spoiler_text,
                                     "sensitive": snap.sensitive, "created_at": ms_time(snap.at),
                                     "account": st.account.doc()}
            if snap.poll:
                entry["poll"] = {"options": [{"title": t} for t in snap.poll]}
            entry.update(media_attachments=[dict(m) for m in snap.media], emojis=[])
            out.append(entry)
        return out

    # -- rendering -------------------------------------------------------------------------------------
    def status_doc(self, st: SimStatus) -> dict[str, Any]:
        """The Status entity as Mastodon serialises it."""
        acc = st.account
        parent = self.statuses.get(st.in_reply_to_id or "")
        replies = st.counts["replies"]
        if replies is None:
            replies = sum(1 for s in self._children(st, False) if s.visibility in ("public", "unlisted"))
        mentions, tags = self._entities(st.text)
        base = f"https://{acc.domain}/users/{acc.username}/statuses/{st.id}"
        doc: dict[str, Any] = {
            "id": st.id, "created_at": ms_time(st.created), "in_reply_to_id": st.in_reply_to_id,
            "in_reply_to_account_id": parent.account.id if parent else None, "sensitive": st.sensitive,
            "spoiler_text": st.spoiler_text, "visibility": st.visibility, "language": "en",
            "uri": base + ("/activity" if st.reblog_of else ""),
            "url": None if st.reblog_of else f"https://{acc.domain}/@{acc.username}/{st.id}",
            "replies_count": replies, "reblogs_count": st.counts["reblogs"],
            "favourites_count": st.counts["favourites"],
            "edited_at": ms_time(st.edited) if st.edited else None,
            "content": "" if st.reblog_of else self.render_html(st.text),
            "reblog": self.status_doc(self.statuses[st.reblog_of]) if st.reblog_of else None,
            "account": acc.doc(), "media_attachments": [dict(m) for m in st.media],
            "mentions": mentions, "tags": tags, "emojis": [], "card": None, "poll": None,
        }
        if st.poll:
            doc["poll"] = {"id": str(90_000 + int(st.id) % 1000), "expires_at": ms_time(st.created + timedelta(days=1)),
                           "expired": self.now() > st.created + timedelta(days=1), "multiple": False,
                           "votes_count": 0, "voters_count": 0, "emojis": [],
                           "options": [{"title": t, "votes_count": 0} for t in st.poll]}
        return doc

    def _entities(self, text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        mentions, tags = [], []
        for m in _TOKEN_RE.finditer(text):
            if m.group(3) and m.group(3) in self.accounts:
                a = self.accounts[m.group(3)]
                mentions.append({"id": a.id, "username": a.username, "url": f"https://{a.domain}/@{a.username}",
                                 "acct": a.acct})
            elif m.group(2):
                tags.append({"name": m.group(2).lower(), "url": f"https://{self.domain}/tags/{m.group(2).lower()}"})
        return mentions, tags

    def render_html(self, text: str) -> str:
        """Status text as Mastodon's HTML: escaped, paragraphs, <br />, links, hashtags and mentions."""
        def link(m: re.Match[str]) -> str:
            if m.group(1):
                url = m.group(1)
                scheme, _, rest = url.partition("://")
                return (f'<a href="{url}" target="_blank" rel="nofollow noopener noreferrer" translate="no">'
                        f'<span class="invisible">{scheme}://</span><span class="">{rest}</span>'
                        '<span class="invisible"></span></a>')
            if m.group(2):
                tag = m.group(2)
                return (f'<a href="https://{self.domain}/tags/{tag.lower()}" class="mention hashtag" '
                        f'rel="tag">#<span>{tag}</span></a>')
            acct = self.accounts.get(m.group(3))
            if acct is None:
                return m.group(0)
            return (f'<span class="h-card" translate="no"><a href="https://{acct.domain}/@{acct.username}" '
                    f'class="u-url mention">@<span>{acct.username}</span></a></span>')

        paras = [p for p in text.split("\n\n") if p.strip()] or [""]
        return "".join("<p>" + _TOKEN_RE.sub(link, html.escape(p, quote=False)).replace("\n", "<br />") + "</p>"
                       for p in paras)
