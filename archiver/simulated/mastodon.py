"""A local Mastodon client API for one account: real wire format, faults on demand, a control API.

    with SimulatedMastodon(account_id="109876", token=None) as m:
        sid = m.add_status("Road closed on Main St #Traffic")
        m.add_status("Thanks!", in_reply_to_id=sid, author=("jen@mastodon.social", "Jen Brooks"))
        m.inject("5xx", path_contains="/context", times=2)
        ... point a connector's instance at m.instance ...

Run standalone with ``python -m archiver.simulated.mastodon --port 8766 --seed-demo``; another process
drives it through ``POST /_control/<method>`` with the method's keyword arguments as a JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .mastodon_state import ApiError, MastodonState, to_datetime

FAULTS = ("5xx", "html", "truncated", "invalid_utf8", "429", "401")
CONTROL_METHODS = (
    "add_status", "add_reblog", "edit_status", "delete_status", "restore_status", "set_counts", "status_text",
    "set_rate_limit", "revoke_token", "inject", "clear_faults",
)
_ERROR_PAGE = (b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>We're sorry, but something went "
               b"wrong (500)</title></head><body><div class=\"dialog\"><h1>We're sorry, but something went "
               b"wrong.</h1></div></body></html>\n")
_BAD_GATEWAY = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad "
                b"Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
_NOT_FOUND_PAGE = b"<!DOCTYPE html>\n<html><body><h1>The page you are looking for isn't here.</h1></body></html>\n"


@dataclass
class Fault:
    """One injected misbehaviour: applies to requests whose path+query contains ``path_contains``."""

    name: str
    path_contains: str = ""
    times: int | None = 1  # None: every matching request
    kw: dict[str, Any] = field(default_factory=dict)


def encode(doc: Any) -> bytes:
    """JSON as Mastodon writes it (UTF-8, compact)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class SimulatedMastodon(MastodonState):
    """The account's state (all MastodonState control methods) served over HTTP on 127.0.0.1."""

    def __init__(self, account_id: str = "109876", token: str | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, now: Any = None, username: str = "andoverpd",
                 display_name: str = "Andover Police Department"):
        super().__init__(account_id=account_id, token=token, now=now, username=username, display_name=display_name)
        self.host, self._port = host, port
        self.faults: list[Fault] = []
        self.requests_seen: list[str] = []  # path + query exactly as received
        self.authorizations_seen: list[str | None] = []  # the Authorization header of each request
        self.request_count = 0
        self.async_refresh: set[str] = set()  # status ids whose /context says replies are still being fetched
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hold_after: int | None = None
        self._released = threading.Event()
        self.holding = threading.Event()  # set while a request is held at the gate

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> SimulatedMastodon:
        """Listen (port 0 picks a free one) and serve from a daemon thread."""
        server = ThreadingHTTPServer((self.host, self._port), _Handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.sim = self  # type: ignore[attr-defined]
        self._server, self._port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="simulated-mastodon",
                                        daemon=True)
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

    def __enter__(self) -> SimulatedMastodon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port being served (after start())."""
        return self._port

    @property
    def instance(self) -> str:
        """What a connector's ``instance`` should be: http://127.0.0.1:PORT"""
        return f"http://{self.host}:{self._port}"

    url = instance

    # -- HTTP-level controls ---------------------------------------------------------------------------
    def inject(self, fault: str, path_contains: str = "", times: int | None = 1, **kw: Any) -> None:
        """Make the next ``times`` matching requests misbehave (see FAULTS). kw: ``status`` for 5xx/html
        (html with status=200 is a 200 that is not JSON), ``retry_after`` and ``reset`` for 429."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        with self.lock:
            self.faults.append(Fault(fault, path_contains, times, dict(kw)))

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        with self.lock:
            self.faults.clear()

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
        """Answer one GET: the fault for it if any, else the API's answer, with rate-limit headers."""
        parts = urlsplit(h.path)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        auth = h.headers.get("Authorization")
        with self.lock:
            self.requests_seen.append(h.path)
            self.authorizations_seen.append(auth)
            self.request_count += 1
            held = self._hold_after is not None and self.request_count > self._hold_after
        if held:
            self.holding.set()
            self._released.wait(timeout=60)
        fault = self._take_fault(h.path)
        allowed, rate = self.take_request()
        json_type = {"Content-Type": "application/json; charset=utf-8"}
        if fault and fault.name in ("5xx", "html"):
            status = int(fault.kw.get("status", 500 if fault.name == "5xx" else 502))
            page = _ERROR_PAGE if fault.name == "5xx" else _BAD_GATEWAY
            return h.send(status, page, {"Content-Type": "text/html; charset=utf-8", **rate})
        if fault and fault.name == "429":
            reset = fault.kw.get("reset")
            extra = self.rate_headers(remaining=0, reset=to_datetime(reset, self.now()) if reset else None)
            if fault.kw.get("retry_after") is not None:
                extra["Retry-After"] = str(fault.kw["retry_after"])
            return h.send(429, encode({"error": "Too many requests"}), {**json_type, **extra})
        if not allowed:
            return h.send(429, encode({"error": "Too many requests"}), {**json_type, **rate})
        status, headers = 200, dict(json_type)
        try:
            if fault and fault.name == "401":
                raise ApiError(401, "The access token is invalid")
            bearer = auth[7:].strip() if auth and auth.lower().startswith("bearer ") else None
            authed = self.check_token(bearer)
            doc, extra = self.handle_get(parts.path, params, authed, self.instance)
            headers.update(extra)
            if parts.path.endswith("/context") and parts.path.split("/")[-2] in self.async_refresh:
                headers["Mastodon-Async-Refresh"] = 'id="a1b2", retry=5, result_count=0'
        except ApiError as exc:
            status, doc = exc.status, exc.body()
            if exc.message == "Not Found":
                return h.send(404, _NOT_FOUND_PAGE, {"Content-Type": "text/html; charset=utf-8", **rate})
        body = encode(doc)
        if fault and fault.name == "truncated":
            body = body[: len(body) // 2]
        elif fault and fault.name == "invalid_utf8":
            cut = body.find(b'"content":"')
            cut = cut + 11 if cut >= 0 else len(body) // 2
            body = body[:cut] + b"\xff\xfe\xc3(" + body[cut:]
        return h.send(status, body, {**headers, **rate})

    def serve_control(self, h: _Handler, method: str, kwargs: dict[str, Any]) -> None:
        """POST /_control/<method>: call a control method with JSON kwargs; answers {"result": ...}."""
        if method not in CONTROL_METHODS:
            return h.send(404, encode({"error": f"no control method {method!r}"}), {})
        try:
            result = getattr(self, method)(**kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            return h.send(400, encode({"error": str(exc.args[0]) if exc.args else type(exc).__name__}), {})
        return h.send(200, encode({"result": result}), {})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server_version = "Mastodon"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY each response waits for a delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def sim(self) -> SimulatedMastodon:
        return self.server.sim  # type: ignore[attr-defined,no-any-return]

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header on the simulator's clock, so rate-limit resets line up with it."""
        return format_datetime(self.sim.now(), usegmt=True)

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
            kwargs = None
        if not isinstance(kwargs, dict):
            return self.send(400, encode({"error": "body must be a JSON object"}), {})
        self.sim.serve_control(self, path.removeprefix("/_control/"), kwargs)

    def send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """Write one complete response; a client that hung up early is not our problem."""
        try:
            self.send_response(status)
            for k, v in {"Content-Type": "application/json; charset=utf-8", **headers}.items():
                self.send_header(k, v)
            self.send_header("Cache-Control", "private, no-store")
            self.send_header("X-Request-Id", f"{random.getrandbits(64):016x}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


# -- demo data -----------------------------------------------------------------------------------------
DEMO_STATUSES = [
    "Road closure: Main St between 3rd and 5th is closed until 6 PM for a water main repair. Please use "
    "Kellogg as a detour. #AndoverKS #Traffic",
    "Join us for Coffee with a Cop this Saturday, 9-11 AM at the Andover library! ☕",
    "MISSING PERSON: Have you seen Daniel R., 78, last seen near 13th and Andover Rd wearing a blue jacket? "
    "Call 911 or (316) 555-0142.",
    "UPDATE: Daniel has been located safe. Thank you to everyone who shared.",
    "Reminder: lock your vehicles and take your valuables inside. We had 6 car break-ins this week. "
    "#9PMRoutine",
    "Scam alert: nobody from the police department will ever ask you to pay a fine in gift cards.",
    "We're hiring! Applications for the lateral officer program close on the 15th. "
    "https://www.andoverks.com/jobs",
    "National Night Out is coming up. Bring the family to Central Park for food, games and a K9 demo.",
    "School is back in session: school zones are enforced 7:30-8:30 AM and 2:45-3:45 PM. #BackToSchool",
]
DEMO_RESIDENTS = [("jen@mastodon.social", "Jen Brooks"), ("tom_nguyen@kansas.social", "Tom Nguyen"),
                  ("maria@andover.town", "Maria Lopez"), ("greg@fosstodon.org", "Greg O'Neil"),
                  ("priya@mastodon.online", "Priya Shah")]
DEMO_REPLIES = [
    "Thank you for the update!", "Which detour is best for the school buses?", "Is this still in effect?",
    "We appreciate all you do.", "Can we get more patrols on Cedar Ln? People speed every night.",
    "Same thing happened on our street.", "Where can I apply?", "Boosted. Stay safe everyone",
]
# Hostile content is data: the archive must keep it byte-exact and always render it escaped.
DEMO_SCRIPT = "Lol <script>alert('apd')</script> nice try"
DEMO_OWN_REPLY = "Thanks for asking! Please call our non-emergency line at (316) 555-0100."


def seed_demo(sim: MastodonState, seed: int = 11, now: datetime | None = None) -> dict[str, list[str]]:
    """Fill ``sim`` with a believable police account: 9 statuses over two weeks, replies from residents,
    a reply from the department, one status edited at seed time, one boost, one reply with ``<script>``.

    Sets ``sim.demo_ids``: edited_status (a status for the demo to edit), deleted_reply (a resident's
    reply with no replies under it, for the demo to delete), edited_at_seed, script_reply, own_reply,
    reblog, thread_post.
    """
    rng = random.Random(seed)
    now = now or sim.now()
    statuses, replies = [], []
    ids: dict[str, str] = {}
    county = sim.add_status("Flash flood warning for Butler County until 9 PM. Turn around, don't drown.",
                            created_at=now - timedelta(days=6, hours=2),
                            author=("butlercountyem@kansas.social", "Butler County Emergency Mgmt"))
    for i, text in enumerate(DEMO_STATUSES):
        created = now - timedelta(days=14) + timedelta(days=i * 14 / len(DEMO_STATUSES), hours=rng.randint(0, 6))
        media = [{"description": "Map of the Main St closure between 3rd and 5th"}] if i == 0 else None
        sid = sim.add_status(text, created_at=created, media=media)
        statuses.append(sid)
        thread: list[str] = []
        for j in range(rng.randint(1, 4) if i else 4):
            msg = DEMO_SCRIPT if i == 4 and j == 0 else rng.choice(DEMO_REPLIES)
            parent = thread[rng.randrange(len(thread))] if thread and j % 2 else sid
            rid = sim.add_status(msg, created_at=created + timedelta(minutes=9 + 17 * j), in_reply_to_id=parent,
                                 author=rng.choice(DEMO_RESIDENTS))
            thread.append(rid)
            replies.append(rid)
            if msg == DEMO_SCRIPT:
                ids["script_reply"] = rid
        if i == 0:
            own = sim.add_status(DEMO_OWN_REPLY, created_at=created + timedelta(hours=2), in_reply_to_id=thread[1])
            statuses.append(own)
            last = sim.add_status("Perfect, thank you!", created_at=created + timedelta(hours=3),
                                  in_reply_to_id=own, author=DEMO_RESIDENTS[0])
            replies.append(last)
            ids.update(edited_status=sid, thread_post=sid, own_reply=own, deleted_reply=last)
        if i == 2:
            sim.edit_status(sid, text.replace("blue jacket", "blue jacket and a Royals cap"))
            ids["edited_at_seed"] = sid
        if i == 5:
            ids["reblog"] = sim.add_reblog(county, created_at=created + timedelta(hours=1))
            statuses.append(ids["reblog"])
    sim.demo_ids = ids
    return {"statuses": statuses, "replies": replies}


def main(argv: list[str] | None = None) -> None:
    """Run the simulator in the foreground until interrupted."""
    ap = argparse.ArgumentParser(description="Simulated Mastodon client API for one account")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--account-id", default="109876")
    ap.add_argument("--token", default=None, help="accept this bearer token (default: public access only)")
    ap.add_argument("--seed-demo", action="store_true", help="fill the account with demo statuses and replies")
    args = ap.parse_args(argv)
    sim = SimulatedMastodon(account_id=args.account_id, token=args.token, host=args.host, port=args.port)
    if args.seed_demo:
        seed_demo(sim)
    sim.start()
    print(f"Simulated Mastodon account {args.account_id} at {sim.instance}; Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
