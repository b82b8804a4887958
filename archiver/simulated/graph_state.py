"""In-memory model of one Facebook Page as the Graph API shows it: posts, comments, replies, paging.

The HTTP layer (archiver.simulated.facebook) turns requests into calls of ``handle_get`` and the
GraphError it raises into Graph API error bodies. Control methods (add_post, hide_comment, ...) are
what tests and the demo call to make things happen on the "platform".
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

FB_TIME = "%Y-%m-%dT%H:%M:%S+0000"
DEPRECATED_POST_FIELDS = {"caption", "description", "link", "name", "object_id", "source", "type"}
DEFAULT_POST_FIELDS = "id,message,story,created_time"
DEFAULT_COMMENT_FIELDS = "id,message,created_time,from"


class GraphError(Exception):
    """A Graph API error: rendered as {"error": {...}} with an HTTP status (400 unless said)."""

    def __init__(self, code: int, message: str, subcode: int | None = None, status: int = 400,
                 type_: str = "OAuthException"):
        super().__init__(message)
        self.code, self.message, self.subcode, self.status, self.type = code, message, subcode, status, type_

    def body(self) -> dict[str, Any]:
        """The error object as Facebook sends it."""
        err: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            err["error_subcode"] = self.subcode
        err["fbtrace_id"] = trace_id()
        return {"error": err}


def trace_id() -> str:
    """A random fbtrace_id-looking string."""
    return base64.b64encode(secrets.token_bytes(8)).decode().rstrip("=")


def fb_time(dt: datetime) -> str:
    """Graph API timestamp: '2026-10-01T14:03:00+0000'."""
    return dt.astimezone(UTC).strftime(FB_TIME)


def to_datetime(value: datetime | str | None, default: datetime) -> datetime:
    """Accept a datetime, an ISO / Graph API string (the control endpoint sends strings), or None."""
    if value is None:
        return default
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00").replace("+0000", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)


@dataclass
class GraphObject:
    """One post or comment (a reply is a comment with parent_id)."""

    id: str
    kind: str  # "post" | "comment"
    message: str | None
    created: datetime
    updated: datetime
    author: tuple[str, str]
    seq: int
    post_id: str | None = None
    parent_id: str | None = None
    story: str | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    message_tags: list[dict[str, Any]] = field(default_factory=list)
    hidden: bool = False
    deleted: bool = False
    like_count: int = 0
    comment_count: int | None = None  # None: computed from live replies


def parse_fields(spec: str) -> dict[str, str | None]:
    """'id,from,parent{id}' -> {'id': None, 'from': None, 'parent': 'id'}."""
    out: dict[str, str | None] = {}
    depth, cur = 0, ""
    for ch in spec + ",":
        if ch == "," and depth == 0:
            name, brace, rest = cur.strip().partition("{")
            if name.strip():
                out[name.strip()] = rest[:-1] if brace else None
            cur = ""
            continue
        depth += (ch == "{") - (ch == "}")
        cur += ch
    return out


def select(doc: dict[str, Any], spec: str) -> dict[str, Any]:
    """Keep only the requested fields, applying nested selections like parent{id}."""
    out: dict[str, Any] = {}
    for name, sub in parse_fields(spec).items():
        if name not in doc:
            continue
        value = doc[name]
        if sub and isinstance(value, dict) and isinstance(value.get("data"), list):
            value = {**value, "data": [select(v, sub) for v in value["data"]]}
        elif sub and isinstance(value, dict):
            value = select(value, sub)
        out[name] = value
    return out


class GraphState:
    """The page's content and the token's state, safe to use from server threads."""

    def __init__(self, page_id: str = "1000", token: str = "tok", page_name: str = "Andover Police Department",
                 now: Callable[[], datetime] | None = None):
        self.page_id = page_id
        self.page_name = page_name
        self.token = token
        self.token_expired = False
        self.moderate = True
        self.clock: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.objects: dict[str, GraphObject] = {}
        self._seq = itertools.count(1)
        self._served = itertools.count(1)  # rotates CDN URL signatures, as Facebook does
        self.demo_ids: dict[str, str] = {}  # filled by seed_demo: notable ids a demo changes later

    def now(self) -> datetime:
        """The simulator's current time (whole seconds, like the Graph API)."""
        return to_datetime(self.clock(), self.clock())

    # -- control ---------------------------------------------------------------------------------------
    def post_message(self, id: str) -> str | None:
        """A post's current text (deleted posts included)."""
        with self.lock:
            return self._get(id, "post", alive=False).message

    def add_post(self, message: str | None, created_time: datetime | str | None = None,
                 attachments: list[dict[str, Any]] | None = None, story: str | None = None,
                 message_tags: list[dict[str, Any]] | None = None) -> str:
        """Publish a post from the page; returns its id ('1000_17')."""
        with self.lock:
            n = next(self._seq)
            when = to_datetime(created_time, self.now())
            obj = GraphObject(f"{self.page_id}_{n}", "post", message, when, when, (self.page_id, self.page_name),
                              n, story=story, attachments=list(attachments or []),
                              message_tags=list(message_tags or []))
            self.objects[obj.id] = obj
            return obj.id

    def add_comment(self, post_id: str, message: str, author: tuple[str, str] | list[str] = ("u1", "Alice"),
                    parent_id: str | None = None, created_time: datetime | str | None = None,
                    attachment: dict[str, Any] | None = None,
                    message_tags: list[dict[str, Any]] | None = None) -> str:
        """Comment on a post (or reply to a comment); returns its id ('17_4')."""
        with self.lock:
            post = self._get(post_id, "post")
            if parent_id is not None:
                parent = self._get(parent_id, "comment")
                # Facebook nests one level only: a reply to a reply hangs off the top-level comment.
                parent_id = parent.parent_id or parent.id
                if parent.post_id != post_id:
                    raise ValueError(f"comment {parent_id} is not on post {post_id}")
            n = next(self._seq)
            when = to_datetime(created_time, self.now())
            obj = GraphObject(f"{post.seq}_{n}", "comment", message, when, when, (str(author[0]), str(author[1])),
                              n, post_id=post_id, parent_id=parent_id,
                              attachments=[attachment] if attachment else [],
                              message_tags=list(message_tags or []))
            self.objects[obj.id] = obj
            post.updated = max(post.updated, when)  # Facebook moves updated_time when comments arrive
            return obj.id

    def edit_post(self, id: str, message: str) -> None:
        """Change a post's text."""
        self._edit(id, "post", message)

    def edit_comment(self, id: str, message: str) -> None:
        """Change a comment's text."""
        self._edit(id, "comment", message)

    def delete_post(self, id: str) -> None:
        """Delete a post (its comments go with it)."""
        self._set(id, "post", deleted=True)

    def restore_post(self, id: str) -> None:
        """Undo delete_post."""
        self._set(id, "post", deleted=False)

    def delete_comment(self, id: str) -> None:
        """Delete a comment (its replies go with it)."""
        self._set(id, "comment", deleted=True)

    def restore_comment(self, id: str) -> None:
        """Undo delete_comment."""
        self._set(id, "comment", deleted=False)

    def hide_comment(self, id: str) -> None:
        """Hide a comment (still returned to a MODERATE token, with is_hidden=true)."""
        self._set(id, "comment", hidden=True)

    def unhide_comment(self, id: str) -> None:
        """Undo hide_comment."""
        self._set(id, "comment", hidden=False)

    def set_counts(self, id: str, like_count: int | None = None, comment_count: int | None = None) -> None:
        """Change counts only (never a new version)."""
        with self.lock:
            obj = self._get(id, None, alive=False)
            if like_count is not None:
                obj.like_count = int(like_count)
            if comment_count is not None:
                obj.comment_count = int(comment_count)

    def expire_token(self) -> None:
        """From now on every request fails with code 190 / subcode 463."""
        self.token_expired = True

    def set_token(self, tok: str) -> None:
        """Accept a new token (and only it)."""
        self.token, self.token_expired = tok, False

    def set_moderate(self, flag: bool = True) -> None:
        """False: the token lacks MODERATE, comments come back without id and from, hidden ones not at all."""
        self.moderate = bool(flag)

    def _get(self, id: str, kind: str | None, alive: bool = True) -> GraphObject:
        obj = self.objects.get(id)
        if obj is None or (kind and obj.kind != kind) or (alive and not self._alive(obj)):
            raise KeyError(f"no {kind or 'object'} {id!r}")
        return obj

    def _edit(self, id: str, kind: str, message: str) -> None:
        with self.lock:
            obj = self._get(id, kind, alive=False)
            obj.message, obj.updated = message, self.now()

    def _set(self, id: str, kind: str, **attrs: Any) -> None:
        with self.lock:
            obj = self._get(id, kind, alive=False)
            for k, v in attrs.items():
                setattr(obj, k, v)

    # -- reading ---------------------------------------------------------------------------------------
    def check_token(self, tok: str | None) -> None:
        """Raise the GraphError Facebook gives for a missing, wrong or expired token."""
        if not tok:
            raise GraphError(104, "An access token is required to request this resource.")
        if tok != self.token:
            raise GraphError(190, "Invalid OAuth access token - Cannot parse access token")
        if self.token_expired:
            now = self.now().strftime("%A, %d-%b-%y %H:%M:%S UTC")
            raise GraphError(190, f"Error validating access token: Session has expired on {now}. "
                                  f"The current time is {now}.", subcode=463)

    def handle_get(self, path: str, params: dict[str, str], base_url: str) -> dict[str, Any]:
        """Answer GET /{id} or /{id}/{edge}; ``base_url`` builds paging links ('http://h:p/v21.0')."""
        with self.lock:
            parts = [p for p in path.split("/") if p]
            if len(parts) == 1:
                return self._object(parts[0], params)
            if len(parts) == 2:
                node, edge = parts
                if node == self.page_id and edge in ("feed", "posts", "published_posts"):
                    return self._feed(path, params, base_url)
                if edge == "comments" and node in self.objects and self._alive(self.objects[node]):
                    return self._comments(self.objects[node], path, params, base_url)
                if edge == "comments":
                    raise _missing(node)
            raise GraphError(2500, f"Unknown path components: /{'/'.join(parts[1:])}")

    def _alive(self, obj: GraphObject) -> bool:
        while True:
            if obj.deleted:
                return False
            up = obj.parent_id or obj.post_id
            if up is None:
                return True
            obj = self.objects[up]

    def _visible(self, obj: GraphObject) -> bool:
        return self._alive(obj) and (self.moderate or not obj.hidden)

    def _object(self, id: str, params: dict[str, str]) -> dict[str, Any]:
        if id == self.page_id:
            return select({"id": self.page_id, "name": self.page_name}, params.get("fields") or "id,name")
        obj = self.objects.get(id)
        if obj is None or not self._visible(obj):
            raise _missing(id)
        return self._render(obj, params)

    def _feed(self, path: str, params: dict[str, str], base_url: str) -> dict[str, Any]:
        asked = set(parse_fields(params.get("fields", "")))
        if asked & DEPRECATED_POST_FIELDS:
            raise GraphError(12, "(#12) deprecate_post_aggregated_fields_for_attachement is deprecated for "
                                 "versions v3.3 and higher")
        posts = [o for o in self.objects.values() if o.kind == "post" and self._alive(o)]
        posts.sort(key=lambda o: (o.created, o.seq), reverse=True)
        return self._paged(posts, path, params, base_url)

    def _comments(self, node: GraphObject, path: str, params: dict[str, str], base_url: str) -> dict[str, Any]:
        if node.kind == "post":
            stream = params.get("filter", "toplevel") == "stream"
            items = [o for o in self.objects.values() if o.post_id == node.id and (stream or not o.parent_id)]
        else:
            items = [o for o in self.objects.values() if o.parent_id == node.id]
        items = [o for o in items if self._alive(o)]
        items.sort(key=lambda o: (o.created, o.seq), reverse=params.get("order") == "reverse_chronological")
        return self._paged(items, path, params, base_url)

    def _paged(self, ordered: list[GraphObject], path: str, params: dict[str, str],
               base_url: str) -> dict[str, Any]:
        """Cursor paging: the cursor names an item; it dies with that item (error 100, like Facebook)."""
        try:
            limit = max(1, min(100, int(params.get("limit", 25))))
        except ValueError:
            raise GraphError(100, "(#100) Param limit must be a number") from None
        ids = [o.id for o in ordered]
        if params.get("before"):
            end = self._position(params["before"], ids)
            chunk = [o for o in ordered[: max(end, 0)] if self._visible(o)][-limit:]
        else:
            start = self._position(params["after"], ids) + 1 if params.get("after") else 0
            chunk = [o for o in ordered[start:] if self._visible(o)][:limit]
        if not chunk:
            return {"data": []}
        first, last = ids.index(chunk[0].id), ids.index(chunk[-1].id)
        doc: dict[str, Any] = {
            "data": [self._render(o, params) for o in chunk],
            "paging": {"cursors": {"before": self.cursor(chunk[0].id), "after": self.cursor(chunk[-1].id)}},
        }
        if any(self._visible(o) for o in ordered[last + 1:]):
            doc["paging"]["next"] = self.link(base_url, path, params, after=self.cursor(chunk[-1].id))
        if any(self._visible(o) for o in ordered[:first]):
            doc["paging"]["previous"] = self.link(base_url, path, params, before=self.cursor(chunk[0].id))
        return doc

    def cursor(self, item_id: str | None) -> str:
        """An opaque cursor naming ``item_id`` (None: the start); a fresh nonce each time."""
        raw = json.dumps({"k": item_id, "n": secrets.token_hex(3)}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def cursor_item(self, cursor: str) -> str | None:
        """The item id a cursor names; GraphError 100 when it is not one of ours."""
        try:
            doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            return doc["k"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise GraphError(100, "(#100) The parameter 'after' or 'before' is not a valid cursor") from None

    def _position(self, cursor: str, ids: list[str]) -> int:
        item = self.cursor_item(cursor)
        if item is None:
            return -1
        if item not in ids:
            raise GraphError(100, "(#100) Invalid cursor: the item it points to no longer exists")
        return ids.index(item)

    @staticmethod
    def link(base_url: str, path: str, params: dict[str, str], **cursor: str) -> str:
        """A paging URL with every original parameter (access_token included, as Facebook does)."""
        query = {k: v for k, v in params.items() if k not in ("after", "before")}
        query.update(cursor)
        return f"{base_url}/{path.strip('/')}?{urlencode(query)}"

    # -- rendering -------------------------------------------------------------------------------------
    def _render(self, obj: GraphObject, params: dict[str, str]) -> dict[str, Any]:
        full = self._post_doc(obj) if obj.kind == "post" else self._comment_doc(obj)
        default = DEFAULT_POST_FIELDS if obj.kind == "post" else DEFAULT_COMMENT_FIELDS
        doc = select(full, params.get("fields") or default)
        if obj.kind == "comment" and not self.moderate:
            doc.pop("id", None)
            doc.pop("from", None)
        return doc

    def _permalink(self, obj: GraphObject) -> str:
        base = f"https://www.facebook.com/{self.page_id}/posts"
        if obj.kind == "post":
            return f"{base}/{obj.seq}"
        post = self.objects[obj.post_id or ""]
        if obj.parent_id:
            top = self.objects[obj.parent_id]
            return f"{base}/{post.seq}?comment_id={top.seq}&reply_comment_id={obj.seq}"
        return f"{base}/{post.seq}?comment_id={obj.seq}"

    def _post_doc(self, obj: GraphObject) -> dict[str, Any]:
        atts = [self._attachment(a, obj) for a in obj.attachments]
        doc: dict[str, Any] = {"id": obj.id, "created_time": fb_time(obj.created),
                               "updated_time": fb_time(obj.updated), "permalink_url": self._permalink(obj),
                               "from": {"name": obj.author[1], "id": obj.author[0]},
                               "status_type": "added_photos" if any(a.get("type") == "photo" for a in atts)
                               else "mobile_status_update",
                               "is_hidden": obj.hidden, "is_published": True}
        if obj.message is not None:
            doc["message"] = obj.message
        if obj.story is not None:
            doc["story"] = obj.story
        if atts:
            doc["attachments"] = {"data": atts}
        if obj.message_tags:
            doc["message_tags"] = obj.message_tags
        return doc

    def _comment_doc(self, obj: GraphObject) -> dict[str, Any]:
        replies = sum(1 for o in self.objects.values() if o.parent_id == obj.id and self._visible(o))
        doc: dict[str, Any] = {"id": obj.id, "created_time": fb_time(obj.created),
                               "from": {"name": obj.author[1], "id": obj.author[0]},
                               "message": obj.message or "", "can_hide": True, "is_hidden": obj.hidden,
                               "like_count": obj.like_count,
                               "comment_count": replies if obj.comment_count is None else obj.comment_count,
                               "permalink_url": self._permalink(obj)}
        if obj.parent_id:
            doc["parent"] = {"id": obj.parent_id, "created_time": fb_time(self.objects[obj.parent_id].created),
                             "message": self.objects[obj.parent_id].message or ""}
        if obj.attachments:
            doc["attachment"] = self._attachment(obj.attachments[0], obj)
        if obj.message_tags:
            doc["message_tags"] = obj.message_tags
        return doc

    def _attachment(self, att: dict[str, Any], obj: GraphObject) -> dict[str, Any]:
        """Facebook's attachment shape; photo URLs carry a signature that changes on every response."""
        out = dict(att)
        out.setdefault("type", "photo")
        target = dict(out.get("target") or {})
        target.setdefault("id", f"{9000 + obj.seq}")
        out["target"] = target
        if out["type"] == "photo":
            sig = f"oh=00_{secrets.token_hex(8)}&oe={next(self._served):08X}"
            src = f"https://scontent.xx.fbcdn.net/v/t39.30808-6/{target['id']}_n.jpg?_nc_cat=1&{sig}"
            out.setdefault("media", {"image": {"height": 720, "width": 960, "src": src}})
            out.setdefault("url", f"https://www.facebook.com/photo.php?fbid={target['id']}&set=a.1&type=3")
        elif out["type"] == "share" and out.get("url"):
            # Outbound links go through Facebook's redirector, whose "h" signature rotates.
            out["url"] = "https://l.facebook.com/l.php?" + urlencode(
                {"u": out["url"], "h": f"AT{secrets.token_hex(6)}", "s": "1"})
        return out


def _missing(id: str) -> GraphError:
    return GraphError(100, f"Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded "
                           "due to missing permissions, or does not support this operation. Please read the "
                           "Graph API documentation at https://developers.facebook.com/docs/graph-api",
                      subcode=33)
