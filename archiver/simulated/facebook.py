"""A local Graph API server for one Facebook Page: real wire format, faults on demand, a control API.

    with SimulatedFacebook(page_id="1000", token="tok") as fb:
        post = fb.add_post("Road closed on Main St")
        fb.inject("5xx", path_contains="/comments", times=2)
        ... point a connector at fb.api_base ...

Run standalone with ``python -m archiver.simulated.facebook --port 8765 --seed-demo``; another process
drives it through ``POST /_control/<method>`` with the method's keyword arguments as a JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .graph_state import GraphError, GraphState, trace_id

FAULTS = ("5xx", "html", "truncated", "invalid_utf8", "rate_limit", "token_expired", "empty_page_with_next",
          "huge")
CONTROL_METHODS = (
    "add_post", "edit_post", "delete_post", "restore_post", "add_comment", "edit_comment", "hide_comment",
    "unhide_comment", "delete_comment", "restore_comment", "set_counts", "expire_token", "set_token",
    "set_moderate", "set_usage", "inject", "clear_faults", "post_message",
)
RATE_LIMIT_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try again. For more "
           "info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
}
_VERSION_RE = re.compile(r"^/v\d+\.\d+(?=/)")
_BAD_GATEWAY = (b"<!DOCTYPE html>\n<html lang=\"en\"><head><title>Error</title></head><body>"
                b"<h1>502 Bad Gateway</h1><p>Sorry, something went wrong. We're working on getting this "
                b"fixed as soon as we can.</p></body></html>\n")


@dataclass
class Fault:
    """One injected misbehaviour: applies to requests whose path+query contains ``path_contains``."""

    name: str
    path_contains: str = ""
    times: int | None = 1  # None: every matching request
    kw: dict[str, Any] = field(default_factory=dict)


def encode(doc: Any) -> bytes:
    """JSON as the Graph API writes it: ASCII only, slashes escaped."""
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode("ascii")


class SimulatedFacebook(GraphState):
    """The page state (all GraphState control methods) served over HTTP on 127.0.0.1."""

    def __init__(self, page_id: str = "1000", token: str = "tok", *, host: str = "127.0.0.1", port: int = 0,
                 version: str = "v21.0", page_name: str = "Andover Police Department", now: Any = None):
        super().__init__(page_id=page_id, token=token, page_name=page_name, now=now)
        self.host, self.version, self._port = host, version, port
        self.faults: list[Fault] = []
        self.usage: dict[str, str] = {}
        self.requests_seen: list[str] = []  # path + query exactly as received, token included
        self.request_count = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hold_after: int | None = None
        self._released = threading.Event()
        self.holding = threading.Event()  # set while a request is held at the gate

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> SimulatedFacebook:
        """Listen (port 0 picks a free one) and serve from a daemon thread."""
        server = ThreadingHTTPServer((self.host, self._port), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.sim = self  # type: ignore[attr-defined]
        self._server, self._port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="simulated-facebook", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> SimulatedFacebook:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port being served (after start())."""
        return self._port

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://{self.host}:{self._port}"

    @property
    def api_base(self) -> str:
        """What a connector's api_base should be: http://127.0.0.1:PORT/v21.0"""
        return f"{self.url}/{self.version}"

    # -- HTTP-level controls ---------------------------------------------------------------------------
    def inject(self, fault: str, path_contains: str = "", times: int | None = 1, **kw: Any) -> None:
        """Make the next ``times`` matching requests misbehave (see FAULTS; kw: code, retry_after,
        regain_minutes for rate_limit, size for huge)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        with self.lock:
            self.faults.append(Fault(fault, path_contains, times, dict(kw)))

    def hold_after(self, n: int | None) -> None:
        """Hold every request after the n-th until release(): lets a test kill a client at a known point."""
        with self.lock:
            self._hold_after = n
            self._released.clear()
            self.holding.clear()

    def release(self) -> None:
        """Let held requests (and later ones) through."""
        with self.lock:
            self._hold_after = None
        self._released.set()

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        with self.lock:
            self.faults.clear()

    def set_usage(self, app: dict[str, Any] | str | None = None, business: dict[str, Any] | str | None = None,
                  page: dict[str, Any] | str | None = None) -> None:
        """Send X-App-Usage / X-Business-Use-Case-Usage / X-Page-Usage on every response (a str is sent
        verbatim, so tests can send invalid JSON; None stops sending that header)."""
        with self.lock:
            self.usage = {}
            for name, value in (("X-App-Usage", app), ("X-Business-Use-Case-Usage", business),
                                ("X-Page-Usage", page)):
                if value is not None:
                    self.usage[name] = value if isinstance(value, str) else json.dumps(value)

    def _take_fault(self, target: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.path_contains in target and (f.times is None or f.times > 0):
                    if f.times is not None:
                        f.times -= 1
                    return f
        return None

    # -- serving ---------------------------------------------------------------------------------------
    def serve_get(self, h: _Handler) -> None:
        """Answer one GET: the fault for it if any, else the Graph API's answer."""
        parts = urlsplit(h.path)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.lock:
            self.requests_seen.append(h.path)
            self.request_count += 1
            held = self._hold_after is not None and self.request_count > self._hold_after
        if held:
            self.holding.set()
            self._released.wait(timeout=60)
        fault = self._take_fault(h.path)
        headers = {"Content-Type": "application/json; charset=UTF-8"}
        if fault and fault.name == "html":
            return h.send(502, _BAD_GATEWAY, {"Content-Type": "text/html; charset=utf-8"})
        if fault and fault.name == "huge":
            size = int(fault.kw.get("size", 1 << 20))
            return h.send(200, b'{"data":[],"padding":"' + b"x" * size + b'"}', headers)
        status: int = 200
        doc: dict[str, Any] | None = None
        extra: dict[str, str] = {}
        if fault and fault.name == "5xx":
            status, doc = 500, {"error": {"message": "An unexpected error has occurred. Please retry your "
                                          "request later.", "type": "OAuthException", "is_transient": True,
                                          "code": 2, "fbtrace_id": trace_id()}}
        elif fault and fault.name == "token_expired":
            status, doc = 400, GraphError(190, "Error validating access token: Session has expired.",
                                          subcode=463).body()
        elif fault and fault.name == "rate_limit":
            status, doc, extra = self._rate_limit(fault)
        if doc is None:
            path = _VERSION_RE.sub("", parts.path)
            try:
                self.check_token(params.get("access_token") or _bearer(h.headers.get("Authorization")))
                doc = self.handle_get(path, params, self.api_base)
            except GraphError as exc:
                status, doc = exc.status, exc.body()
            if fault and fault.name == "empty_page_with_next" and status == 200 and "data" in doc:
                # Same position, fresh cursor: the real next page follows this empty one.
                item = self.cursor_item(params["after"]) if params.get("after") else None
                nxt = self.link(self.api_base, path, params, after=self.cursor(item))
                doc = {"data": [], "paging": {"cursors": {}, "next": nxt}}
        body = encode(doc)
        if fault and fault.name == "truncated":
            body = body[: len(body) // 2]
        elif fault and fault.name == "invalid_utf8":
            cut = body.find(b'"message":"')
            cut = cut + 11 if cut >= 0 else len(body) // 2
            body = body[:cut] + b"\xff\xfe\xc3(" + body[cut:]
        return h.send(status, body, {**headers, **self.usage, **extra})

    def _rate_limit(self, fault: Fault) -> tuple[int, dict[str, Any], dict[str, str]]:
        code = int(fault.kw.get("code", 4))
        err = {"message": RATE_LIMIT_MESSAGES.get(code, f"(#{code}) Rate limit reached"), "type": "OAuthException",
               "is_transient": True, "code": code, "fbtrace_id": trace_id()}
        extra: dict[str, str] = {}
        if fault.kw.get("retry_after") is not None:
            extra["Retry-After"] = str(fault.kw["retry_after"])
        if fault.kw.get("regain_minutes") is not None:
            extra["X-Business-Use-Case-Usage"] = json.dumps({self.page_id: [{
                "type": "pages", "call_count": 100, "total_cputime": 12, "total_time": 20,
                "estimated_time_to_regain_access": int(fault.kw["regain_minutes"])}]})
        return 400, {"error": err}, extra

    def serve_control(self, h: _Handler, method: str, kwargs: dict[str, Any]) -> None:
        """POST /_control/<method>: call a control method with JSON kwargs; answers {"result": ...}."""
        if method not in CONTROL_METHODS:
            return h.send(404, encode({"error": f"no control method {method!r}"}), {})
        if isinstance(kwargs.get("author"), list):
            kwargs["author"] = tuple(kwargs["author"])
        try:
            result = getattr(self, method)(**kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            return h.send(400, encode({"error": str(exc)}), {})
        return h.send(200, encode({"result": result}), {"Content-Type": "application/json"})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server_version = "SimulatedGraphAPI/1.0"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY each response waits ~40 ms
        # for a delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def sim(self) -> SimulatedFacebook:
        return self.server.sim  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # tests and the demo do not want an access log on stderr

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.sim.serve_get(self)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        path = urlsplit(self.path).path
        if not path.startswith("/_control/"):
            return self.send(405, encode({"error": "only GET, and POST /_control/<method>"}), {})
        try:
            kwargs = json.loads(raw or b"{}")
        except ValueError:
            return self.send(400, encode({"error": "body must be a JSON object"}), {})
        if not isinstance(kwargs, dict):
            return self.send(400, encode({"error": "body must be a JSON object"}), {})
        self.sim.serve_control(self, path.removeprefix("/_control/"), kwargs)

    def send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """Write one complete response; a client that hung up early is not our problem."""
        try:
            self.send_response(status)
            for k, v in {"Content-Type": "application/json; charset=UTF-8", **headers}.items():
                self.send_header(k, v)
            self.send_header("facebook-api-version", self.sim.version)
            self.send_header("x-fb-trace-id", trace_id())
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _bearer(value: str | None) -> str | None:
    if value and value.lower().startswith("bearer "):
        return value[7:].strip()
    return None


# -- demo data -----------------------------------------------------------------------------------------
DEMO_POSTS = [
    "Road closure: Main St between 3rd and 5th is closed until 6 PM for a water main repair. Please use "
    "Kellogg as a detour. #AndoverKS #Traffic",
    "Join us for Coffee with a Cop this Saturday, 9-11 AM at the Andover library! ☕👮",
    "MISSING PERSON: Have you seen Daniel R., 78, last seen near 13th and Andover Rd wearing a blue jacket? "
    "Call 911 or (316) 555-0142.",
    "UPDATE: Daniel has been located safe. Thank you to everyone who shared the post. ❤️",
    "Reminder: lock your vehicles and take your valuables inside. We had 6 car break-ins this week. "
    "#9PMRoutine",
    "Congratulations to Officer Martinez on 20 years of service to the Andover community! 🎉",
    "Severe weather is expected tonight. Stay off the roads if you can and sign up for Nixle alerts.",
    "Scam alert: nobody from the police department will ever ask you to pay a fine in gift cards.",
    "We're hiring! Applications for the police officer lateral program close on the 15th.",
    "National Night Out is coming up. Bring the family to Central Park for food, games and a K9 demo. 🐕",
    "The department's annual report is now online. Calls for service were down 4% from last year.",
    "School is back in session: school zones are enforced from 7:30-8:30 AM and 2:45-3:45 PM. 🚸",
]
DEMO_AUTHORS = [("u1", "Alice Becker"), ("u2", "Tom Nguyen"), ("u3", "Maria Lopez"), ("u4", "Greg O'Neil"),
                ("u5", "Priya Shah"), ("u6", "Dwayne Harris"), ("u7", "Sam Kowalski"), ("u8", "Jen Brooks")]
DEMO_COMMENTS = [
    "Thank you for the update!", "Shared.", "Which detour is best for the school buses?",
    "Great job APD 👏👏", "Is this still in effect?", "We appreciate all you do.",
    "My car was broken into last month and nobody ever called me back.",
    "Praying for his family 🙏", "Can we get more patrols on Cedar Ln? People speed every night.",
    "Congrats!! 🎉", "Where can I apply?", "Same thing happened on our street.",
    "Why is this only posted now?", "Stay safe everyone", "Who do I call about a barking dog?",
    "مرحبا, thank you officers", "👍", "This is the best department in the county.",
]
# Hostile content is data: the archive must keep it byte-exact and always render it escaped.
DEMO_HOSTILE = ["Lol <script>alert(1)</script>", "\u202eThis text is reversed\u202c and this is not"]
DEMO_REPLIES = ["Thanks for asking! Please call our non-emergency line at (316) 555-0100.",
                "Agreed!", "It ended at 6.", "Same here.", "Please send us a private message with details."]


def seed_demo(fb: GraphState, seed: int = 7, now: datetime | None = None) -> dict[str, list[str]]:
    """Fill ``fb`` with a believable police page: 12 posts over three weeks, ~60 comments and replies.

    Also sets ``fb.demo_ids``: ids a demo can change later (edited_post and, on it, edited_comment,
    hidden_comment, deleted_comment with no replies), plus hidden_at_seed, script_comment, rtl_comment.
    """
    rng = random.Random(seed)
    now = now or fb.now()
    posts, comments = [], []
    hostile = iter(DEMO_HOSTILE)
    ids: dict[str, str] = {}
    for i, text in enumerate(DEMO_POSTS):
        created = now - timedelta(days=21) + timedelta(days=i * 21 / len(DEMO_POSTS), hours=rng.randint(0, 8))
        atts = [{"type": "photo", "title": "Main St closure map"}] if i == 0 else None
        if i == 8:
            atts = [{"type": "share", "title": "Join Andover PD", "url": "https://www.andoverks.com/jobs"}]
        pid = fb.add_post(text, created_time=created, attachments=atts)
        posts.append(pid)
        top: list[str] = []
        for j in range(5 if i == 0 else rng.randint(2, 6)):
            when = created + timedelta(minutes=7 + 13 * j + rng.randint(0, 9))
            msg = next(hostile, None) if i in (4, 9) and j == 0 else None
            if i == 0 and j == 0:
                msg = "Thank you officers for keeping us posted."
            cid = fb.add_comment(pid, msg or rng.choice(DEMO_COMMENTS), author=rng.choice(DEMO_AUTHORS),
                                 created_time=when)
            if msg in DEMO_HOSTILE:
                ids["script_comment" if "<script>" in msg else "rtl_comment"] = cid
            top.append(cid)
            comments.append(cid)
        for k, parent in enumerate(top[: rng.randint(0, 3)]):
            author = (fb.page_id, fb.page_name) if k % 2 == 0 else rng.choice(DEMO_AUTHORS)
            comments.append(fb.add_comment(pid, rng.choice(DEMO_REPLIES), author=author, parent_id=parent,
                                           created_time=created + timedelta(hours=2 + k)))
        if i == 0:
            ids.update(edited_post=pid, edited_comment=top[0], hidden_comment=top[3], deleted_comment=top[4])
        if i == 2:
            ids["hidden_at_seed"] = top[-1]
            fb.hide_comment(top[-1])  # one moderated comment: still a record, shown as hidden
    fb.demo_ids = ids
    return {"posts": posts, "comments": comments}


def main(argv: list[str] | None = None) -> None:
    """Run the simulator in the foreground until interrupted."""
    ap = argparse.ArgumentParser(description="Simulated Facebook Graph API for one Page")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--page-id", default="1000")
    ap.add_argument("--token", default="tok")
    ap.add_argument("--seed-demo", action="store_true", help="fill the page with demo posts and comments")
    args = ap.parse_args(argv)
    fb = SimulatedFacebook(page_id=args.page_id, token=args.token, host=args.host, port=args.port)
    if args.seed_demo:
        seed_demo(fb)
    fb.start()
    print(f"Simulated Facebook Page {args.page_id} at {fb.api_base} (token: {args.token}); Ctrl-C stops",
          flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fb.stop()


if __name__ == "__main__":
    main()
