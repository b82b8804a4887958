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

import json
import random
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from .mastodon_state import ApiError, MastodonState, to_datetime
from .server import Fault as Fault  # noqa: F401 - re-exported: the name lived here
from .server import SimHandler, SimulatedServer, command_line, spoil

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


def encode(doc: Any) -> bytes:
    """JSON as Mastodon writes it (UTF-8, compact)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Handler(SimHandler):
    """Mastodon's response headers, and the Date header on the simulator's clock."""

    server_version = "Mastodon"
    sys_version = ""
    content_type = "application/json; charset=utf-8"

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header on the simulator's clock, so rate-limit resets line up with it."""
        return format_datetime(cast("SimulatedMastodon", self.sim).now(), usegmt=True)

    def fixed_headers(self) -> dict[str, str]:
        return {"Cache-Control": "private, no-store", "X-Request-Id": f"{random.getrandbits(64):016x}"}


class SimulatedMastodon(SimulatedServer, MastodonState):
    """The account's state (all MastodonState control methods) served over HTTP on 127.0.0.1."""

    FAULTS = FAULTS
    CONTROL_METHODS = CONTROL_METHODS
    handler = _Handler
    thread_name = "simulated-mastodon"
    requests_seen: list[str]  # path + query exactly as received

    def __init__(self, account_id: str = "109876", token: str | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, now: Any = None, username: str = "andoverpd",
                 display_name: str = "Andover Police Department"):
        super().__init__(host, port, account_id=account_id, token=token, now=now, username=username,
                         display_name=display_name)
        self.authorizations_seen: list[str | None] = []  # the Authorization header of each request
        self.async_refresh: set[str] = set()  # status ids whose /context says replies are still being fetched

    @property
    def instance(self) -> str:
        """What a connector's ``instance`` should be: http://127.0.0.1:PORT"""
        return self.url

    def inject(self, fault: str, path_contains: str = "", times: int | None = 1, **kw: Any) -> None:
        """Make the next ``times`` requests whose path+query contains ``path_contains`` misbehave (see
        FAULTS). kw: ``status`` for 5xx/html (html with status=200 is a 200 that is not JSON),
        ``retry_after`` and ``reset`` for 429."""
        self._add_fault(fault, path_contains, times, kw)

    # -- serving ---------------------------------------------------------------------------------------
    def encode_doc(self, doc: Any) -> bytes:
        return encode(doc)

    def serve_get(self, h: SimHandler) -> None:
        """Answer one GET: the fault for it if any, else the API's answer, with rate-limit headers."""
        parts = urlsplit(h.path)
        params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        auth = h.headers.get("Authorization")
        self._admit(h.path, lambda: self.authorizations_seen.append(auth))
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
        return h.send(status, spoil(encode(doc), fault, b'"content":"'), {**headers, **rate})

    def control_error(self, exc: Exception) -> str:
        return str(exc.args[0]) if exc.args else type(exc).__name__


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
    ap = command_line("Simulated Mastodon client API for one account", 8766)
    ap.add_argument("--account-id", default="109876")
    ap.add_argument("--token", default=None, help="accept this bearer token (default: public access only)")
    ap.add_argument("--seed-demo", action="store_true", help="fill the account with demo statuses and replies")
    args = ap.parse_args(argv)
    sim = SimulatedMastodon(account_id=args.account_id, token=args.token, host=args.host, port=args.port)
    if args.seed_demo:
        seed_demo(sim)
    sim.start()
    sim.serve_until_interrupted(f"Simulated Mastodon account {args.account_id} at {sim.instance}; Ctrl-C stops")


if __name__ == "__main__":
    main()
