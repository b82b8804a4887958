"""A local Graph API server for one Facebook Page: real wire format, faults on demand, a control API.

    with SimulatedFacebook(page_id="1000", token="tok") as fb:
        post = fb.add_post("Road closed on Main St")
        fb.inject("5xx", path_contains="/comments", times=2)
        ... point a connector at fb.api_base ...

Run standalone with ``python -m archiver.simulated.facebook --port 8765 --seed-demo``; another process
drives it through ``POST /_control/<method>`` with the method's keyword arguments as a JSON object.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from .graph_state import GraphError, GraphState, trace_id
from .server import Fault, SimHandler, SimulatedServer, command_line, spoil

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


def encode(doc: Any) -> bytes:
    """JSON as the Graph API writes it: ASCII only, slashes escaped."""
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode("ascii")


class _Handler(SimHandler):
    """The Graph API's response headers."""

    server_version = "SimulatedGraphAPI/1.0"
    content_type = "application/json; charset=UTF-8"

    def fixed_headers(self) -> dict[str, str]:
        return {"facebook-api-version": cast("SimulatedFacebook", self.sim).version, "x-fb-trace-id": trace_id()}


class SimulatedFacebook(SimulatedServer, GraphState):
    """The page state (all GraphState control methods) served over HTTP on 127.0.0.1."""

    FAULTS = FAULTS
    CONTROL_METHODS = CONTROL_METHODS
    CONTROL_OK_HEADERS = {"Content-Type": "application/json"}
    handler = _Handler
    thread_name = "simulated-facebook"
    requests_seen: list[str]  # path + query exactly as received, token included

    def __init__(self, page_id: str = "1000", token: str = "tok", *, host: str = "127.0.0.1", port: int = 0,
                 version: str = "v21.0", page_name: str = "Andover Police Department", now: Any = None):
        super().__init__(host, port, page_id=page_id, token=token, page_name=page_name, now=now)
        self.version = version
        self.usage: dict[str, str] = {}

    @property
    def api_base(self) -> str:
        """What a connector's api_base should be: http://127.0.0.1:PORT/v21.0"""
        return f"{self.url}/{self.version}"

    # -- HTTP-level controls ---------------------------------------------------------------------------
    def inject(self, fault: str, path_contains: str = "", times: int | None = 1, **kw: Any) -> None:
        """Make the next ``times`` requests whose path+query contains ``path_contains`` misbehave (see
        FAULTS; kw: code, retry_after, regain_minutes for rate_limit, size for huge)."""
        self._add_fault(fault, path_contains, times, kw)

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

    # -- serving ---------------------------------------------------------------------------------------
    def encode_doc(self, doc: Any) -> bytes:
        return encode(doc)

    def serve_get(self, h: SimHandler) -> None:
        """Answer one GET: the fault for it if any, else the Graph API's answer."""
        parts = urlsplit(h.path)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self._admit(h.path)
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
        body = spoil(encode(doc), fault, b'"message":"')
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

    def serve_control(self, h: SimHandler, method: str, kwargs: dict[str, Any]) -> None:
        if isinstance(kwargs.get("author"), list):  # JSON has no tuples
            kwargs["author"] = tuple(kwargs["author"])
        super().serve_control(h, method, kwargs)


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
    ap = command_line("Simulated Facebook Graph API for one Page", 8765)
    ap.add_argument("--page-id", default="1000")
    ap.add_argument("--token", default="tok")
    ap.add_argument("--seed-demo", action="store_true", help="fill the page with demo posts and comments")
    args = ap.parse_args(argv)
    fb = SimulatedFacebook(page_id=args.page_id, token=args.token, host=args.host, port=args.port)
    if args.seed_demo:
        seed_demo(fb)
    fb.start()
    fb.serve_until_interrupted(f"Simulated Facebook Page {args.page_id} at {fb.api_base} (token: {args.token}); "
                               "Ctrl-C stops")


if __name__ == "__main__":
    main()
