"""A local HTTP server for RSS 2.0 and Atom 1.0 feeds: conditional GET, faults on demand, raw bodies.

    with FeedServer() as feeds:
        feeds.set_feed("alerts", items=[{"guid": "a1", "title": "Road closed", "summary": "<p>Main St</p>",
                                         "published": datetime(2026, 11, 1, tzinfo=UTC)}])
        feeds.inject("5xx", "alerts", times=2)
        ... point an rss account's url at feeds.url_for("alerts") ...

Run standalone with ``python -m archiver.simulated.feeds --port 8766 --seed-demo``; another process drives
it through ``POST /_control/<method>`` with the method's keyword arguments as a JSON object.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from .server import Fault, SimHandler, SimulatedServer, command_line, spoil

FAULTS = ("5xx", "429", "truncated", "invalid_utf8", "html", "huge")
CONTROL_METHODS = ("set_feed", "add_item", "edit_item", "remove_item", "inject", "clear_faults")
CONTENT_TYPES = {"rss": "application/rss+xml; charset=utf-8", "atom": "application/atom+xml; charset=utf-8"}
ITEM_KEYS = ("guid", "title", "summary", "content", "link", "published", "updated", "author", "enclosures")
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ERROR_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Site maintenance</title></head><body><h1>We'll be back "
               b"soon</h1><p>The site is down for scheduled maintenance.<br></p></body></html>\n")


@dataclass
class Feed:
    """One served document: rendered from items, or raw bytes."""

    kind: str = "rss"
    title: str = "Andover Police Department alerts"
    items: list[dict[str, Any]] = field(default_factory=list)
    etag: bool = True
    last_modified: bool = True
    raw: bytes | None = None
    content_type: str = ""
    status: int = 200
    body: bytes = b""
    modified_at: datetime | None = None


# -- rendering -------------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    text = str(value)
    if _INVALID_XML.search(text):
        raise ValueError(f"{text!r} holds a character XML 1.0 cannot carry")
    return escape(text)


def _cdata(html: str) -> str:
    """HTML as a CDATA section ("]]>" inside it split across two sections)."""
    _text(html)  # reject what XML cannot hold
    return "<![CDATA[" + html.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _date(value: Any, atom: bool) -> str:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if atom else format_datetime(
            value.astimezone(UTC), usegmt=True)
    return _text(value)  # a string is sent as written (tests of odd dates)


def _enclosures(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [e if isinstance(e, dict) else {"url": e} for e in item.get("enclosures") or ()]


def _rss_item(it: dict[str, Any]) -> str:
    has = it.get
    parts = [
        f"<title>{_text(it['title'])}</title>" if has("title") is not None else "",
        f"<link>{_text(it['link'])}</link>" if has("link") else "",
        f'<guid isPermaLink="false">{_text(it["guid"])}</guid>' if has("guid") is not None else "",
        f"<pubDate>{_date(it['published'], False)}</pubDate>" if has("published") else "",
        f"<atom:updated>{_date(it['updated'], True)}</atom:updated>" if has("updated") else "",
        f"<dc:creator>{_text(it['author'])}</dc:creator>" if has("author") else "",
        f"<description>{_cdata(it['summary'])}</description>" if has("summary") is not None else "",
        f"<content:encoded>{_cdata(it['content'])}</content:encoded>" if has("content") is not None else "",
        *(f'<enclosure url={quoteattr(e["url"])} length="{int(e.get("length", 0))}" '
          f'type={quoteattr(e.get("type", "application/octet-stream"))}/>' for e in _enclosures(it)),
    ]
    return "<item>" + "".join(parts) + "</item>"


def _atom_entry(it: dict[str, Any]) -> str:
    has = it.get
    updated = has("updated") or has("published")  # atom:updated is required
    parts = [
        f"<id>{_text(it['guid'])}</id>" if has("guid") is not None else "",
        f'<title type="text">{_text(it["title"])}</title>' if has("title") is not None else "",
        f'<link rel="alternate" type="text/html" href={quoteattr(it["link"])}/>' if has("link") else "",
        f"<published>{_date(it['published'], True)}</published>" if has("published") else "",
        f"<updated>{_date(updated, True)}</updated>" if updated else "",
        f"<author><name>{_text(it['author'])}</name></author>" if has("author") else "",
        f'<summary type="html">{_cdata(it["summary"])}</summary>' if has("summary") is not None else "",
        f'<content type="html">{_cdata(it["content"])}</content>' if has("content") is not None else "",
        *(f'<link rel="enclosure" href={quoteattr(e["url"])} '
          f'type={quoteattr(e.get("type", "application/octet-stream"))}/>' for e in _enclosures(it)),
    ]
    return "<entry>" + "".join(parts) + "</entry>"


def render_rss(title: str, link: str, items: list[dict[str, Any]], built: datetime | None = None) -> bytes:
    """An RSS 2.0 document; HTML summaries/content go in CDATA, every other text is escaped."""
    head = ['<?xml version="1.0" encoding="UTF-8"?>',
            '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">',
            f"<channel><title>{_text(title)}</title><link>{_text(link)}</link>",
            f"<description>{_text(title)}</description>",
            f'<atom:link href={quoteattr(link)} rel="self" type="application/rss+xml"/>']
    if built:
        head.append(f"<lastBuildDate>{_date(built, False)}</lastBuildDate>")
    return "\n".join([*head, *map(_rss_item, items), "</channel></rss>\n"]).encode("utf-8")


def render_atom(title: str, link: str, items: list[dict[str, Any]], built: datetime | None = None) -> bytes:
    """An Atom 1.0 document: text titles escaped, HTML summaries/content as type="html" in CDATA."""
    head = ['<?xml version="1.0" encoding="utf-8"?>', '<feed xmlns="http://www.w3.org/2005/Atom">',
            f'<title type="text">{_text(title)}</title><id>{_text(link)}</id>',
            f"<updated>{_date(built or datetime(2026, 1, 1, tzinfo=UTC), True)}</updated>",
            f'<link rel="self" href={quoteattr(link)}/>']
    return "\n".join([*head, *map(_atom_entry, items), "</feed>\n"]).encode("utf-8")


def _clean_item(item: dict[str, Any]) -> dict[str, Any]:
    unknown = set(item) - set(ITEM_KEYS)
    if unknown:
        raise ValueError(f"unknown item keys {sorted(unknown)} (known: {', '.join(ITEM_KEYS)})")
    out = dict(item)
    for key in ("published", "updated"):
        if isinstance(out.get(key), str):  # JSON control calls send ISO strings
            try:
                out[key] = datetime.fromisoformat(out[key].replace("Z", "+00:00"))
            except ValueError:
                pass  # sent as written
    return out


# -- the server ------------------------------------------------------------------------------------------
class _Handler(SimHandler):
    """A plain web server's headers."""

    server_version = "SimulatedFeeds/1.0"


class FeedServer(SimulatedServer):
    """Feeds served over HTTP on 127.0.0.1 at /feeds/<name>; unknown names answer 404."""

    FAULTS = FAULTS
    CONTROL_METHODS = CONTROL_METHODS
    CONTROL_OK_HEADERS = {"Content-Type": "application/json"}
    # One answer for every refused POST.
    NOT_CONTROL = BAD_BODY = (400, "POST /_control/<method> with a JSON object")
    handler = _Handler
    thread_name = "feed-server"
    requests_seen: list[dict[str, Any]]  # {"path", "feed", "headers"} per GET, in order

    def __init__(self, host: str = "127.0.0.1", port: int = 0, now: Any = None):
        self.now = now or (lambda: datetime.now(UTC))
        self.lock = threading.RLock()
        self.feeds: dict[str, Feed] = {}
        super().__init__(host, port)

    def start(self) -> Self:
        """Listen (port 0 picks a free one) and serve from a daemon thread."""
        super().start()
        with self.lock:  # feeds set before start() link to the port now known
            for name, feed in self.feeds.items():
                if feed.raw is None:
                    feed.body = self._render(name, feed)
        return self

    def url_for(self, name: str) -> str:
        """The URL the feed ``name`` is served at."""
        return f"{self.url}/feeds/{quote(name, safe='')}"

    # -- feeds -----------------------------------------------------------------------------------------
    def set_feed(self, name: str, kind: str = "rss", items: list[dict[str, Any]] | None = None, etag: bool = True,
                 last_modified: bool = True, title: str | None = None) -> None:
        """Serve ``items`` (dicts of ITEM_KEYS) as an RSS 2.0 or Atom 1.0 feed; send the validators asked for."""
        if kind not in CONTENT_TYPES:
            raise ValueError(f"kind must be 'rss' or 'atom', not {kind!r}")
        with self.lock:
            old = self.feeds.get(name)
            feed = Feed(kind=kind, title=title or (old.title if old else Feed.title),
                        items=[_clean_item(i) for i in items or ()], etag=etag, last_modified=last_modified)
            self._publish(name, feed, old)

    def set_raw(self, name: str, body: bytes, content_type: str = "application/xml", status: int = 200,
                etag: bool = True, last_modified: bool = True) -> None:
        """Serve ``body`` byte for byte (malformed XML, odd encodings, an HTML error page, a 410)."""
        with self.lock:
            feed = Feed(raw=bytes(body), content_type=content_type, status=status, etag=etag,
                        last_modified=last_modified)
            self._publish(name, feed, self.feeds.get(name))

    def add_item(self, name: str, **item: Any) -> None:
        """Put one item at the top of the feed (feeds list newest first)."""
        with self.lock:
            feed = self.feeds[name]
            self.set_feed(name, feed.kind, [item, *feed.items], feed.etag, feed.last_modified)

    def edit_item(self, name: str, guid: str, **changes: Any) -> None:
        """Change fields of the item with ``guid``."""
        with self.lock:
            feed = self.feeds[name]
            if not any(i.get("guid") == guid for i in feed.items):
                raise KeyError(f"no item {guid!r} in feed {name!r}")
            items = [{**i, **changes} if i.get("guid") == guid else i for i in feed.items]
            self.set_feed(name, feed.kind, items, feed.etag, feed.last_modified)

    def remove_item(self, name: str, guid: str) -> None:
        """Drop the item with ``guid`` from the feed (as a feed does when an item ages out)."""
        with self.lock:
            feed = self.feeds[name]
            self.set_feed(name, feed.kind, [i for i in feed.items if i.get("guid") != guid], feed.etag,
                          feed.last_modified)

    def _publish(self, name: str, feed: Feed, old: Feed | None) -> None:
        # Whole seconds (HTTP dates), and strictly later than the last version so If-Modified-Since sees it.
        stamp = self.now().astimezone(UTC).replace(microsecond=0)
        if old is not None and old.modified_at is not None and stamp <= old.modified_at:
            stamp = old.modified_at + timedelta(seconds=1)
        feed.modified_at = stamp
        if feed.raw is None:
            feed.content_type = CONTENT_TYPES[feed.kind]
        feed.body = feed.raw if feed.raw is not None else self._render(name, feed)
        self.feeds[name] = feed

    def _render(self, name: str, feed: Feed) -> bytes:
        render = render_rss if feed.kind == "rss" else render_atom
        return render(feed.title, self.url_for(name), feed.items, feed.modified_at)

    # -- faults ----------------------------------------------------------------------------------------
    def inject(self, fault: str, name: str = "", times: int | None = 1, **kw: Any) -> None:
        """Make the next ``times`` requests for the feed ``name`` ("" for every feed) misbehave (FAULTS;
        kw: retry_after for 429 and 5xx, status for 5xx, size for huge)."""
        self._add_fault(fault, name, times, kw)

    def fault_applies(self, fault: Fault, target: str) -> bool:
        return fault.match in ("", target)

    # -- serving ---------------------------------------------------------------------------------------
    def serve_get(self, h: SimHandler) -> None:
        """Answer one GET: the fault for it if any, else the feed (or 304, or 404)."""
        path = urlsplit(h.path).path
        name = unquote(path.removeprefix("/feeds/")) if path.startswith("/feeds/") else ""
        seen = {"path": h.path, "feed": name, "headers": dict(h.headers.items())}
        feed = self._admit(seen, lambda: self.feeds.get(name))  # the feed as the request found it
        fault = self._take_fault(name)
        after = {"Retry-After": str(fault.kw["retry_after"])} if fault and "retry_after" in fault.kw else {}
        if fault and fault.name == "5xx":
            return h.send(int(fault.kw.get("status", 500)), b"<html><body><h1>Server Error</h1></body></html>",
                          {"Content-Type": "text/html", **after})
        if fault and fault.name == "429":
            return h.send(429, b"Too Many Requests\n", {"Content-Type": "text/plain", **after})
        if fault and fault.name == "html":
            return h.send(200, _ERROR_PAGE, {"Content-Type": "text/html; charset=utf-8"})
        if feed is None:
            return h.send(404, b"<html><body><h1>404 Not Found</h1></body></html>", {"Content-Type": "text/html"})
        headers = {"Content-Type": feed.content_type}
        if feed.etag:
            headers["ETag"] = '"' + hashlib.sha256(feed.body).hexdigest()[:20] + '"'
        if feed.last_modified and feed.modified_at is not None:
            headers["Last-Modified"] = format_datetime(feed.modified_at, usegmt=True)
        if feed.status == 200 and self._not_modified(h, feed, headers.get("ETag")):
            return h.send(304, b"", {k: v for k, v in headers.items() if k != "Content-Type"})
        first = feed.body.find(b"<item>") if b"<item>" in feed.body else feed.body.find(b"<entry>")
        body = spoil(feed.body, fault, b"<title>", first)  # the first item's title
        if fault and fault.name == "huge":
            body = body.replace(b"\n", b"\n<!--" + b"x" * int(fault.kw.get("size", 1 << 20)) + b"-->\n", 1)
        return h.send(feed.status, body, headers)

    def _not_modified(self, h: SimHandler, feed: Feed, etag: str | None) -> bool:
        """RFC 9110: If-None-Match decides when sent; else If-Modified-Since against Last-Modified."""
        inm = h.headers.get("If-None-Match")
        if inm is not None:
            tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
            return etag is not None and ("*" in tags or etag in tags)
        ims = h.headers.get("If-Modified-Since")
        if ims is None or not feed.last_modified or feed.modified_at is None:
            return False
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError, IndexError):
            return False
        return since.tzinfo is not None and feed.modified_at <= since


# -- demo data -------------------------------------------------------------------------------------------
DEMO_ALERTS = [
    ("Traffic advisory", "<p><b>Main St</b> between 3rd &amp; 5th is closed until 6 PM for a water main repair. "
                         "Use Kellogg as a detour.</p>"),
    ("Missing person", "<p>Have you seen Daniel R., 78? Last seen near 13th and Andover Rd wearing a blue "
                       "jacket.</p><p>Call 911 or (316) 555-0142.</p>"),
    ("Missing person located", "<p>Daniel has been located safe. Thank you for sharing.</p>"),
    ("Severe weather warning", "<p>Severe thunderstorms expected after 9 PM.<br>Stay off the roads if you can."
                               "</p>"),
    ("Boil water notice", "<p>Residents east of Andover Rd should boil water until further notice.</p>"),
    ("Community meeting", "<p>Coffee with a Cop, Saturday 9&ndash;11 AM at the library. ☕</p>"),
    ("Scam alert", "<p>Nobody from the department will ever ask you to pay a fine in gift cards.</p>"),
    ("Road reopened", "<p>Main St is open again. Thank you for your patience.</p>"),
]


def seed_demo(server: FeedServer, now: datetime | None = None) -> list[str]:
    """Publish a Nixle-style "alerts" RSS feed (and the same as Atom at "alerts-atom"); returns the guids."""
    now = now or server.now()
    items: list[dict[str, Any]] = []
    for i, (title, html) in enumerate(DEMO_ALERTS):
        n = 9810400 + i
        items.append({"guid": f"nixle-alert-{n}", "title": f"{title} - Andover Police Department",
                      "summary": html, "link": f"https://local.nixle.com/alert/{n}/",
                      "published": now - timedelta(days=14) + timedelta(days=i * 14 / len(DEMO_ALERTS)),
                      "author": "Andover Police Department"})
    items.reverse()  # newest first, as feeds list them
    server.set_feed("alerts", "rss", items, title="Andover Police Department - Nixle alerts")
    server.set_feed("alerts-atom", "atom", items, title="Andover Police Department - Nixle alerts")
    return [i["guid"] for i in items]


def main(argv: list[str] | None = None) -> None:
    """Run the feed server in the foreground until interrupted."""
    ap = command_line("Simulated RSS/Atom feeds", 8766)
    ap.add_argument("--seed-demo", action="store_true", help="publish a Nixle-style alerts feed")
    args = ap.parse_args(argv)
    server = FeedServer(host=args.host, port=args.port)
    server.start()
    if args.seed_demo:
        seed_demo(server)
    names = ", ".join(server.url_for(n) for n in server.feeds) or f"{server.url}/feeds/<name> (none yet)"
    server.serve_until_interrupted(f"Simulated feeds: {names}; Ctrl-C stops")


if __name__ == "__main__":
    main()
