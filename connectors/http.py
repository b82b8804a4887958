"""The HTTP client every connector uses: streams bodies, strips and redacts secrets, never leaks them.

Platform-specific error classification (which codes are transient, which are rate limits) belongs to
each connector; this module only knows HTTP, secrets and generic backoff.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from archiver.clock import Clock
from archiver.errors import ConnectorError, MalformedResponse, TransientError

from .base import Exchange

if TYPE_CHECKING:
    # Imported where used: `archiver search` and other commands that only list connectors stay fast.
    import requests

log = logging.getLogger(__name__)

REDACTED = b"[REDACTED]"
REDACTED_TEXT = REDACTED.decode()
#: query parameters that carry credentials on the platforms we speak to
SECRET_PARAMS = frozenset({"access_token", "appsecret_proof", "client_secret", "token"})
DEFAULT_USER_AGENT = "archiver/0.1 (public-records archiver)"
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024
# Belt and braces for scrub(): a credential-looking parameter in any URL inside a message, even one
# whose value is not a configured secret (e.g. a token a platform minted and echoed back).
_PARAM_RE = re.compile(r"(?i)\b(access_token|appsecret_proof|client_secret|token)=[^&\s\"'<>]+")

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2**n))."""

    base: float = 1.0
    cap: float = 60.0
    max_attempts: int = 5

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after the (0-based) failed attempt ``attempt``."""
        return rng.uniform(0.0, min(self.cap, self.base * (2 ** max(attempt, 0))))


def retry(
    fn: Callable[[], T],
    *,
    clock: Clock,
    rng: random.Random,
    policy: RetryPolicy | None = None,
    retry_on: tuple[type[BaseException], ...] = (TransientError,),
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, sleeping through ``clock`` between failures; re-raise the last."""
    policy = policy or RetryPolicy()
    attempt = 0
    while True:
        try:
            return fn()
        except retry_on as exc:
            if attempt + 1 >= policy.max_attempts:
                raise
            delay = policy.delay(attempt, rng)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            clock.sleep(delay)
            attempt += 1


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None when unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # RFC 7231 dates are GMT; an old-style date without a zone is too
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup on a plain dict (Exchange.headers)."""
    low = name.lower()
    for key, value in headers.items():
        if key.lower() == low:
            return value
    return None


class HttpClient:
    """A requests.Session wrapper that returns Exchanges with secrets stripped from URL and body."""

    def __init__(
        self,
        secrets: Iterable[str] = (),
        clock: Clock | None = None,
        rng: random.Random | None = None,
        timeout: float = 30.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        user_agent: str = DEFAULT_USER_AGENT,
        session: requests.Session | None = None,
        retry_policy: RetryPolicy | None = None,
    ):
        if clock is None:
            from archiver.clock import SystemClock

            clock = SystemClock()
        self.clock = clock
        self.rng = rng or random.Random()
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.retry_policy = retry_policy or RetryPolicy()
        import requests

        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self._secrets: list[str] = []
        for s in secrets:
            self.add_secret(s)

    # -- secrets ---------------------------------------------------------------------------------------
    def add_secret(self, secret: str | None) -> None:
        """Register one more value to strip from everything this client returns."""
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets.sort(key=len, reverse=True)

    def _forms(self) -> list[str]:
        """Every spelling of every secret that can appear in a body or message."""
        forms: set[str] = set()
        for s in self._secrets:
            forms.add(s)
            forms.add(quote(s, safe=""))
            forms.add(quote_plus(s))
            # As a JSON string value, possibly with '/' escaped (the Graph API escapes slashes).
            js = json.dumps(s)[1:-1]
            forms.update({js, js.replace("/", "\\/")})
        return sorted((f for f in forms if f), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every secret (and every credential query parameter's value) replaced."""
        if not isinstance(text, str):
            text = str(text)
        for form in self._forms():
            text = text.replace(form, REDACTED_TEXT)
        return _PARAM_RE.sub(lambda m: f"{m.group(1)}={REDACTED_TEXT}", text)

    def redact_bytes(self, body: bytes) -> tuple[bytes, bool]:
        """``body`` with every secret replaced by the marker, and whether anything was replaced."""
        changed = False
        for form in self._forms():
            needle = form.encode("utf-8", "surrogatepass")
            if needle in body:
                body = body.replace(needle, REDACTED)
                changed = True
        return body, changed

    def strip_url(self, url: str) -> str:
        """``url`` without credential query parameters, userinfo, or any other secret."""
        parts = urlsplit(url)
        pairs = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.lower() not in SECRET_PARAMS and v not in self._secrets
        ]
        netloc = parts.netloc.rpartition("@")[2]
        clean = urlunsplit((parts.scheme, netloc, parts.path, urlencode(pairs), ""))
        return self.scrub(clean)

    # -- requests --------------------------------------------------------------------------------------
    def get(
        self, url: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> Exchange:
        """GET ``url``; the Exchange's URL and body carry no secret. Network failures -> TransientError."""
        import requests

        shown = self.strip_url(url)
        try:
            resp = self.session.get(
                url, params=params, headers=dict(headers or {}), timeout=self.timeout, stream=True
            )
            try:
                body = self._read(resp, shown)
            finally:
                resp.close()
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            # "from None": the original exception's text carries the full URL with the token.
            raise TransientError(self.scrub(f"GET {shown}: {type(exc).__name__}: {exc}")) from None
        except requests.exceptions.ContentDecodingError as exc:
            raise MalformedResponse(self.scrub(f"GET {shown}: undecodable body: {exc}")) from None
        except requests.RequestException as exc:
            raise ConnectorError(self.scrub(f"GET {shown}: {type(exc).__name__}: {exc}")) from None
        redacted, changed = self.redact_bytes(body)
        return Exchange(
            method="GET",
            url=self.strip_url(resp.url or url),
            status=resp.status_code,
            headers={k: self.scrub(v) for k, v in resp.headers.items()},
            body=redacted,
            fetched_at=self.clock.now(),
            secrets_redacted=changed,
        )

    def _read(self, resp: requests.Response, shown: str) -> bytes:
        """The whole body, or MalformedResponse once it passes max_bytes."""
        buf = bytearray()
        for chunk in resp.iter_content(chunk_size=_CHUNK):
            buf += chunk
            if len(buf) > self.max_bytes:
                raise MalformedResponse(f"GET {shown}: response larger than {self.max_bytes} bytes")
        return bytes(buf)

    def close(self) -> None:
        """Close the underlying session."""
        self.session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
