"""RSS 2.0 / Atom 1.0 connector (Nixle alerts, an agency's own site): one conditional GET per harvest.

See PLATFORMS.md (RSS/Atom). The feed is one scope, ``Scope("feed")``, fetched with If-None-Match /
If-Modified-Since from the last ok run's state; a 304 is an ok run with nothing new. Items are keyed by
guid / atom:id. Feeds cannot show deletions (old items fall off the end): ``can_detect_removal`` is False
and ``probe`` never says gone, so absence never means removal.

Decisions:
- Strict parsing. A document that is not well-formed XML (truncated, an HTML error page, bytes invalid in
  its encoding) fails the walk with its exchange and no item is taken from it: feedparser's loose parser
  would salvage items from a broken document, and the archive must not hold half-read records. Of
  feedparser's ``bozo`` exceptions only CharacterEncodingOverride and NonXMLContentType pass; anything
  else (SAXParseException "not well-formed", CharacterEncodingUnknown, undeclared prefix) fails.
- The encoding is decided here, never guessed: a byte-order mark, else the XML declaration, else the HTTP
  charset, else UTF-8 (XML's default). The document's declaration beats the HTTP header because server
  default charsets are often wrong while the feed generator knows what it wrote. The body must decode
  strictly: feedparser's fallback (windows-1252 for bytes that are not UTF-8) would make wrong text.
- Item.raw = {"format": "rss20"|"atom10"|..., "entry": feedparser's entry as JSON (strings as written,
  ``*_parsed`` struct_times dropped, nothing sanitized or resolved), "xml": the exact source text of the
  <item>/<entry> element (root namespace declarations not repeated; present when every entry could be
  matched to its element)}. The whole response body is the capture.
- Item.text = title, a blank line, then the content (else the summary) as plain text: HTML is rendered
  the way a reader sees it (tags dropped, entities decoded, blocks and <br> as line breaks, whitespace
  collapsed, script/style not shown). The HTML itself stays in Item.content and raw.
- 404 / 410 / other 4xx: WalkFailed naming the URL, the response kept as evidence. 401: AuthError (no
  credentials are sent: the administrator must fix the URL). 5xx/408/network: retried with backoff.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import io
import logging
import re
import time
import xml.parsers.expat
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

from archiver.errors import AuthError, ConfigError, ConnectorError, RateLimited, TransientError

from .base import (
    Event,
    Exchange,
    HttpConnector,
    Item,
    Page,
    Probe,
    SaveState,
    Scope,
    WalkComplete,
    WalkError,
    WalkPlan,
    int_option,
)
from .http import HttpClient, RetryPolicy, header, parse_retry_after

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"
# bozo exceptions that do not mean the document was misread (see the module docstring), by name: feedparser
# is imported where feeds are parsed, so commands that only list connectors do not pay for it.
HARMLESS_BOZO = ("CharacterEncodingOverride", "NonXMLContentType")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_XML_DECL_RE = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")
_CHARSET_RE = re.compile(r"""(?i)\bcharset\s*=\s*["']?([A-Za-z0-9._:-]+)""")
# Elements feedparser makes entries of: (namespace, local name); "" is no namespace (RSS 0.9x/2.0).
_ENTRY_ELEMENTS = frozenset({("", "item"), ("http://purl.org/rss/1.0/", "item"),
                             ("http://my.netscape.com/rdf/simple/0.9/", "item"),
                             ("http://www.w3.org/2005/Atom", "entry"), ("http://purl.org/atom/ns#", "entry")})


class FeedConnector(HttpConnector):
    """Reads one RSS or Atom feed with a conditional GET; every entry is a post."""

    name: ClassVar[str] = "rss"
    config_keys: ClassVar[Mapping[str, str]] = {
        "url": "the feed's http(s) URL (RSS 2.0 or Atom 1.0)",
        "max_bytes": f"largest response accepted, in bytes (default {DEFAULT_MAX_BYTES})",
    }
    required_keys: ClassVar[tuple[str, ...]] = ("url",)
    secret_keys: ClassVar[tuple[str, ...]] = ()
    can_detect_removal: ClassVar[bool] = False  # feeds drop old items: absence never means removed

    def __init__(self, account: Any, http: HttpClient | None, clock: Any):
        if http is None:
            http = HttpClient(clock=clock)
        super().__init__(account, http, clock)
        self.url = str(account.option("url") or "")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"accounts[{account.name}].url must be an http(s) URL of an RSS or Atom feed")
        self.max_bytes = int_option(account, "max_bytes", DEFAULT_MAX_BYTES, 1,
                                    must="a whole number of bytes above 0")
        # The client is this harvest's own: lowering its limit stops reading a huge body early.
        if getattr(http, "max_bytes", 0) > self.max_bytes:
            http.max_bytes = self.max_bytes
        self.policy: RetryPolicy = getattr(http, "retry_policy", None) or RetryPolicy()
        self.max_wait = account.max_wait.total_seconds()

    # -- walking ---------------------------------------------------------------------------------------
    def walk(self, plan: WalkPlan) -> Iterator[Event]:
        """One conditional GET: a page of items (none on 304), the end of the walk, the new validators."""
        scope = Scope("feed")
        etag, modified = plan.state.get("etag"), plan.state.get("last_modified")
        headers = {"Accept": ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
        try:
            ex = self._fetch(headers)
            if ex.status == 304 and not (etag or modified):
                raise WalkError(f"{ex.url} answered 304 Not Modified to an unconditional request", ex)
            items = () if ex.status == 304 else self._items(ex)
        except WalkError as exc:
            yield self._failed(scope, exc)
            return
        yield Page(scope, ex, items)
        yield WalkComplete(scope)  # harmless: removal is disabled for feeds
        yield SaveState(_validators(ex, etag, modified) if ex.status == 304 else _validators(ex))

    def probe(self, kind: str, native_id: str) -> Probe:
        """A feed cannot show that an item was deleted: never 'gone'."""
        return Probe(native_id=native_id, gone=False)

    # -- one request, with retries and rate-limit waits -------------------------------------------------
    def _fetch(self, headers: Mapping[str, str]) -> Exchange:
        """GET the feed until a 200 or 304; raises WalkError, RateLimited or AuthError."""
        transient, waited = 0, 0.0
        while True:
            ex: Exchange | None = None
            try:
                ex = self.http.get(self.url, headers=headers)
            except TransientError as exc:  # network trouble
                why = str(exc)
            except ConnectorError as exc:  # MalformedResponse (too large, undecodable), a bad request
                raise WalkError(str(exc)) from None
            else:
                if ex.status in (200, 304):
                    if ex.url != self.http.strip_url(self.url):
                        log.info(self.http.scrub(f"account {self.account.name}: {self.url} redirects to {ex.url}"))
                    return ex
                after = parse_retry_after(header(ex.headers, "Retry-After"), self.clock.now())
                if ex.status == 429 or (ex.status == 503 and after is not None):
                    # At least a second, so even "Retry-After: 0" repeated uses up max_wait and ends.
                    wait = max(after, 1.0) if after is not None else max(
                        self.policy.base, self.policy.delay(transient, self.http.rng))
                    if waited + wait > self.max_wait:
                        what = (f"account {self.account.name}: {ex.url} answered HTTP {ex.status} asking for a "
                                f"wait of {wait:.0f} s, beyond max_wait {self.max_wait:.0f} s ({waited:.0f} s "
                                "already waited)")
                        if ex.status == 429:
                            raise RateLimited(self.http.scrub(what + "; the next harvest continues"))
                        raise WalkError(what, ex)
                    log.info(self.http.scrub(f"account {self.account.name}: HTTP {ex.status}; waiting {wait:.1f} s"))
                    waited += wait
                    self.clock.sleep(wait)
                    continue
                if ex.status < 500 and ex.status != 408:
                    raise self._refused(ex)
                why = f"{ex.url} answered HTTP {ex.status}"
            transient += 1
            if transient >= self.policy.max_attempts:
                raise WalkError(f"{why} (gave up after {transient} attempts)", ex)
            self._backoff(transient, why)

    def _refused(self, ex: Exchange) -> Exception:
        """The error for a 4xx answer (other than 408 and 429)."""
        where = f"accounts[{self.account.name}].url"
        if ex.status == 401:
            return AuthError(self.http.scrub(
                f"account {self.account.name}: {ex.url} answered HTTP 401: the feed asks for credentials and "
                f"this connector reads public feeds only; check {where}"))
        if ex.status in (404, 410):
            gone = "is gone (HTTP 410)" if ex.status == 410 else "was not found (HTTP 404)"
            return WalkError(f"the feed {ex.url} {gone}; check or update {where}", ex)
        return WalkError(f"{ex.url} answered HTTP {ex.status}", ex)

    # -- parsing ---------------------------------------------------------------------------------------
    def _items(self, ex: Exchange) -> tuple[Item, ...]:
        """Every entry of a strictly parsed feed; WalkError when the document is not a sound feed."""
        if len(ex.body) > self.max_bytes:
            raise WalkError(f"{ex.url}: response larger than {self.max_bytes} bytes", ex)
        encoding, source, text = decode_document(ex.body, header(ex.headers, "Content-Type"))
        if text is None:
            raise WalkError(f"malformed feed from {ex.url}: {source}", ex)
        import feedparser

        parsed = feedparser.parse(
            io.BytesIO(ex.body),  # bytes, never a str: feedparser would fetch URLs and open file names
            # No content-location: feedparser would resolve relative atom:ids against it, and keys must
            # not change with the URL the feed is fetched from. Links are resolved in entry_item instead.
            response_headers={"content-type": f"application/xml; charset={encoding}"},
            sanitize_html=False, resolve_relative_uris=False,
        )
        problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
        if problem is not None and type(problem).__name__ not in HARMLESS_BOZO:
            raise WalkError(f"malformed feed from {ex.url}: {type(problem).__name__}: {problem}", ex)
        version = parsed.get("version") or ""
        if not version:
            raise WalkError(f"malformed feed from {ex.url}: the document is not an RSS or Atom feed", ex)
        sources = entry_sources(text, len(parsed.entries))
        items: dict[str, Item] = {}
        for i, entry in enumerate(parsed.entries):
            item = entry_item(entry, sources[i] if sources else None, version, ex.url)
            if item.native_id in items:
                # Two entries under one key would make a new version on every harvest; the first wins
                # and the whole document stays in the capture.
                log.warning(self.http.scrub(f"account {self.account.name}: {ex.url} repeats the item key "
                                            f"{item.native_id!r}; keeping the first"))
                continue
            items[item.native_id] = item
        return tuple(items.values())


# -- documents -------------------------------------------------------------------------------------------
def decode_document(body: bytes, content_type: str | None) -> tuple[str, str, str | None]:
    """(encoding, where it was declared, text) or (encoding, what is wrong, None).

    A byte-order mark, else the XML declaration, else the HTTP charset, else UTF-8; no guessing.
    """
    for bom, name in _BOMS:
        if body.startswith(bom):
            encoding, source, data = name, "byte-order mark", body[len(bom):]
            break
    else:
        data = body
        decl = _XML_DECL_RE.match(body)
        charset = _CHARSET_RE.search(content_type or "")
        if decl:
            encoding, source = decl.group(1).decode("ascii"), "XML declaration"
        elif charset:
            encoding, source = charset.group(1), "HTTP charset"
        else:
            encoding, source = "utf-8", "XML default"
    try:
        codecs.lookup(encoding)
    except LookupError:
        return encoding, f"unknown encoding {encoding!r} ({source})", None
    try:
        return encoding, source, data.decode(encoding)
    except UnicodeDecodeError as exc:
        return encoding, f"the body is not valid {encoding} ({source}) at byte {exc.start}", None


def entry_sources(text: str, expected: int) -> list[str] | None:
    """The source text of each <item>/<entry>, in document order; None unless there are ``expected``."""
    if "<!ENTITY" in text:
        return None  # entity expansion would be needed to read it: not worth the risk
    data = text.encode("utf-8")
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[tuple[int, bool]] = []
    spans: list[tuple[int, int]] = []
    depth_in_entry = 0

    def start(name: str, attrs: Any) -> None:
        nonlocal depth_in_entry
        ns, _, local = name.rpartition(" ")
        is_entry = depth_in_entry == 0 and (ns, local) in _ENTRY_ELEMENTS
        depth_in_entry += 1 if (is_entry or depth_in_entry) else 0
        stack.append((parser.CurrentByteIndex, is_entry))

    def end(name: str) -> None:
        nonlocal depth_in_entry
        begin, is_entry = stack.pop()
        depth_in_entry -= 1 if depth_in_entry else 0
        if is_entry:
            stop = parser.CurrentByteIndex
            # At an end tag the index is where "</" starts; after an empty element it is already past it.
            if data.startswith(b"</", stop):
                stop = data.index(b">", stop) + 1
            spans.append((begin, stop))

    parser.StartElementHandler, parser.EndElementHandler = start, end
    try:
        parser.Parse(text.lstrip("\ufeff"), True)
    except xml.parsers.expat.ExpatError:
        return None
    if len(spans) != expected:
        return None
    return [data[a:b].decode("utf-8") for a, b in spans]


# -- items -----------------------------------------------------------------------------------------------
def entry_item(entry: Mapping[str, Any], source: str | None, version: str, base: str = "") -> Item:
    """One feedparser entry as a post; relative links are resolved against ``base`` (the feed's URL)."""
    e = dict(entry)  # real keys only: FeedParserDict.get maps missing keys to others ("updated" -> "published")
    published, updated = _when(e.get("published_parsed")), _when(e.get("updated_parsed"))
    title = e.get("title") if isinstance(e.get("title"), str) else None
    title_type = (e.get("title_detail") or {}).get("type", "text/plain")
    contents = [c for c in e.get("content") or () if isinstance(c, Mapping)]
    content_html = _as_html(contents[0]) if contents else None
    # feedparser copies content into summary when there is none: only a summary_detail is a real one.
    summary_html = _as_html(e["summary_detail"]) if e.get("summary_detail") else None
    body = _text_of(contents[0]) if contents else _text_of(e.get("summary_detail"))
    head = html_to_text(title) if title and "html" in title_type else title
    links = [lk for lk in e.get("links") or () if isinstance(lk, Mapping) and isinstance(lk.get("href"), str)]
    enclosures = [_absolute(base, lk["href"]) or lk["href"] for lk in links if lk.get("rel") == "enclosure"]
    alternates = (lk["href"] for lk in links if lk.get("rel", "alternate") == "alternate")
    permalink = next((_absolute(base, href) for href in alternates), None)
    if permalink is None and e.get("guidislink"):  # an RSS guid is a permalink unless isPermaLink="false"
        permalink = _absolute("", str(e.get("id") or ""))
    raw: dict[str, Any] = {"format": version, "entry": to_json(e)}
    if source is not None:
        raw["xml"] = source
    author = e.get("author")
    return Item(
        native_id=entry_key(e, published, title, summary_html or content_html),
        kind="post",
        raw=raw,
        text="\n\n".join(p for p in (head, body) if p) or None,
        author=author if isinstance(author, str) and author else None,
        created_at=published or updated,
        # Feeds move <updated> without changing a word (republishing, CMS saves); a version must follow
        # what the item says, so the date stays in raw and is not part of the version.
        edited_at=None,
        permalink=permalink,
        content={"title": title, "summary_html": summary_html, "content_html": content_html,
                 "enclosures": enclosures},
    )


def entry_key(entry: Mapping[str, Any], published: datetime | None, title: str | None, markup: str | None) -> str:
    """guid / atom:id; else the link plus the publication time; else a hash of what the entry says
    (an edit of such an entry cannot be told from a new one)."""
    ident = entry.get("id")
    if isinstance(ident, str) and ident.strip():
        return ident.strip()
    when = published.isoformat() if published else str(entry.get("published") or "")
    link = entry.get("link")
    if isinstance(link, str) and link.strip():
        return f"{link.strip()} {when}".rstrip()
    digest = hashlib.sha256("\x1f".join((title or "", when, markup or "")).encode("utf-8", "surrogatepass"))
    return f"sha256:{digest.hexdigest()}"


def to_json(value: Any) -> Any:
    """feedparser's structures as plain JSON values: *_parsed struct_times dropped, the rest as is."""
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()
                if not (str(k).endswith("_parsed") or isinstance(v, time.struct_time))}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _absolute(base: str, href: str) -> str | None:
    url = urljoin(base, href.strip()) if base else href.strip()
    return url if urlsplit(url).scheme in ("http", "https") else None


def _when(parsed: Any) -> datetime | None:
    if not isinstance(parsed, time.struct_time):
        return None
    try:
        return datetime(*parsed[:6], tzinfo=UTC)  # feedparser's struct_times are already UTC
    except ValueError:
        return None


def _as_html(detail: Mapping[str, Any]) -> str | None:
    value = detail.get("value")
    if not isinstance(value, str):
        return None
    return value if "html" in str(detail.get("type", "")) else html.escape(value, quote=False)


def _text_of(detail: Any) -> str | None:
    if not isinstance(detail, Mapping) or not isinstance(detail.get("value"), str):
        return None
    value = detail["value"]
    return html_to_text(value) if "html" in str(detail.get("type", "")) else value


def _validators(ex: Exchange, etag: str | None = None, modified: str | None = None) -> dict[str, str]:
    """ETag / Last-Modified of the response (falling back to the ones sent, for a 304), present keys only."""
    values = {"etag": header(ex.headers, "ETag") or etag,
              "last_modified": header(ex.headers, "Last-Modified") or modified}
    return {k: v for k, v in values.items() if v}


# -- HTML to text ----------------------------------------------------------------------------------------
# Blocks that stand apart (a blank line) and blocks that only start a line; <br> adds one line break.
_PARAGRAPH_TAGS = frozenset("address article aside blockquote dl fieldset figure footer form h1 h2 h3 h4 h5 h6 "
                            "header hr main nav ol p pre section table ul".split())
_LINE_TAGS = frozenset("dd div dt figcaption li tbody thead tr".split())
_HIDDEN_TAGS = frozenset({"script", "style", "template", "head"})
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.pending = 0  # line breaks owed before the next text
        self.hidden = self.pre = 0

    def _block(self, tag: str, opening: bool) -> None:
        if tag == "br":
            self.pending = min(self.pending + 1, 2) if opening else self.pending
        elif tag in _PARAGRAPH_TAGS or tag in _LINE_TAGS:
            self.pending = max(self.pending, 2 if tag in _PARAGRAPH_TAGS else 1)
            if tag == "pre":
                self.pre = max(0, self.pre + (1 if opening else -1))

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        self._block(tag, True)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        self._block(tag, False)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if not self.pre:
            data = _HTML_SPACE.sub(" ", data)
            if self.pending or not self.out:  # at the start of a line
                data = data.lstrip(" ")
        if not data:
            return
        if self.pending and self.out:
            self.out[-1] = self.out[-1].rstrip(" ")
            self.out.append("\n" * self.pending)
        self.pending = 0
        self.out.append(data)


def html_to_text(markup: str) -> str:
    """What a reader sees of an HTML fragment: text with entities decoded, blocks on their own lines."""
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    return "".join(parser.out).rstrip(" ")
