"""What every simulated platform shares: a local HTTP server, faults on demand, a gate, a control API.

A simulator subclasses :class:`SimulatedServer` (next to its platform state, if any) and brings only its
platform: ``serve_get`` (routing and wire format), ``FAULTS`` and ``CONTROL_METHODS``, ``encode_doc`` (how
it writes JSON), an ``inject`` with its own way of saying which requests a fault is for, and a
:class:`SimHandler` subclass (Server header, default Content-Type, headers on every response).

The server listens on 127.0.0.1 (port 0 picks a free one) from a daemon thread; ``POST /_control/<method>``
calls one of ``CONTROL_METHODS`` with the JSON body as keyword arguments and answers ``{"result": ...}``.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


@dataclass
class Fault:
    """One injected misbehaviour for the requests ``match`` picks (see SimulatedServer.fault_applies)."""

    name: str
    match: str = ""
    times: int | None = 1  # None: every matching request
    kw: dict[str, Any] = field(default_factory=dict)


def spoil(body: bytes, fault: Fault | None, marker: bytes, start: int = 0) -> bytes:
    """``body`` as the faults "truncated" (its first half) and "invalid_utf8" (bytes that are not UTF-8
    right after the first ``marker`` from ``start``, else mid-body) deliver it; other faults leave it."""
    if fault and fault.name == "truncated":
        return body[: len(body) // 2]
    if fault and fault.name == "invalid_utf8":
        at = body.find(marker, start)
        cut = at + len(marker) if at >= 0 else len(body) // 2
        return body[:cut] + b"\xff\xfe\xc3(" + body[cut:]
    return body


class SimulatedServer:
    """Serving, faults, the request gate and the control API; subclasses add the platform."""

    #: fault names inject() accepts
    FAULTS: ClassVar[tuple[str, ...]] = ()
    #: methods POST /_control/<method> may call
    CONTROL_METHODS: ClassVar[tuple[str, ...]] = ()
    #: headers of a successful control call's answer
    CONTROL_OK_HEADERS: ClassVar[dict[str, str]] = {}
    #: (status, error) for a POST outside /_control/, and for a body that is not a JSON object
    NOT_CONTROL: ClassVar[tuple[int, str]] = (405, "only GET, and POST /_control/<method>")
    BAD_BODY: ClassVar[tuple[int, str]] = (400, "body must be a JSON object")
    #: the request handler class (a SimHandler subclass: the platform's response headers)
    handler: ClassVar[type[SimHandler]]
    thread_name: ClassVar[str] = "simulated-server"

    lock: threading.RLock  # the platform state's lock (subclasses create it)

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **state: Any):
        self.host, self._port = host, port
        self.faults: list[Fault] = []
        self.requests_seen: list[Any] = []  # one entry per request, in order (what is up to the simulator)
        self.request_count = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hold_after: int | None = None
        self._released = threading.Event()
        self.holding = threading.Event()  # set while a request is held at the gate
        super().__init__(**state)  # the platform state, when the simulator has one

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Self:
        """Listen (port 0 picks a free one) and serve from a daemon thread."""
        server = ThreadingHTTPServer((self.host, self._port), self.handler)
        server.daemon_threads = True
        server.block_on_close = False
        server.sim = self  # type: ignore[attr-defined]
        self._server, self._port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=self.thread_name,
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_until_interrupted(self, banner: str) -> None:
        """Print ``banner`` and keep serving (after start()) until Ctrl-C; then stop."""
        print(banner, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def port(self) -> int:
        """The port being served (after start())."""
        return self._port

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://{self.host}:{self._port}"

    # -- faults and the gate ---------------------------------------------------------------------------
    def _add_fault(self, fault: str, match: str, times: int | None, kw: dict[str, Any]) -> None:
        if fault not in self.FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(self.FAULTS)})")
        with self.lock:
            self.faults.append(Fault(fault, match, times, dict(kw)))

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        with self.lock:
            self.faults.clear()

    def fault_applies(self, fault: Fault, target: str) -> bool:
        """Whether ``fault`` is for the request ``target`` names (default: ``match`` is a substring of it)."""
        return fault.match in target

    def _take_fault(self, target: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if self.fault_applies(f, target) and (f.times is None or f.times > 0):
                    if f.times is not None:
                        f.times -= 1
                    return f
        return None

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

    def _admit(self, seen: Any, under_lock: Callable[[], T] | None = None) -> T | None:
        """Count one request (``seen`` goes to requests_seen) and hold it while the gate is closed.

        ``under_lock`` runs in the same locked step, before any wait: what it returns (e.g. the state as
        the request found it) is returned.
        """
        with self.lock:
            self.requests_seen.append(seen)
            self.request_count += 1
            held = self._hold_after is not None and self.request_count > self._hold_after
            found = under_lock() if under_lock is not None else None
        if held:
            self.holding.set()
            self._released.wait(timeout=60)
        return found

    # -- serving ---------------------------------------------------------------------------------------
    def encode_doc(self, doc: Any) -> bytes:
        """A JSON document as the platform writes it (control-API answers use it too)."""
        return json.dumps(doc).encode()

    def serve_get(self, h: SimHandler) -> None:
        """Answer one GET (the platform's API, faults included)."""
        raise NotImplementedError

    def serve_post(self, h: SimHandler, path: str, raw: bytes) -> None:
        """A POST: only /_control/<method> with a JSON object as the body."""
        if not path.startswith("/_control/"):
            return self._refuse(h, *self.NOT_CONTROL)
        try:
            kwargs = json.loads(raw or b"{}")
        except ValueError:
            kwargs = None
        if not isinstance(kwargs, dict):
            return self._refuse(h, *self.BAD_BODY)
        self.serve_control(h, path.removeprefix("/_control/"), kwargs)

    def _refuse(self, h: SimHandler, status: int, error: str) -> None:
        h.send(status, self.encode_doc({"error": error}), {})

    def serve_control(self, h: SimHandler, method: str, kwargs: dict[str, Any]) -> None:
        """POST /_control/<method>: call a control method with JSON kwargs; answers {"result": ...}."""
        if method not in self.CONTROL_METHODS:
            return h.send(404, self.encode_doc({"error": f"no control method {method!r}"}), {})
        try:
            result = getattr(self, method)(**kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            return h.send(400, self.encode_doc({"error": self.control_error(exc)}), {})
        return h.send(200, self.encode_doc({"result": result}), dict(self.CONTROL_OK_HEADERS))

    def control_error(self, exc: Exception) -> str:
        """The error text of a control call that raised ``exc``."""
        return str(exc)


def command_line(description: str, port: int) -> argparse.ArgumentParser:
    """The options every simulator's ``python -m`` takes: --host, --port (``port`` by default)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=port)
    return ap


class SimHandler(BaseHTTPRequestHandler):
    """Hands GETs and POSTs to the simulator; subclasses set the platform's headers."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs
    #: Content-Type of a response that does not name one
    content_type = "application/json"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY each response waits ~40 ms
        # for a delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def sim(self) -> SimulatedServer:
        return self.server.sim  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # tests and the demo do not want an access log on stderr

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.sim.serve_get(self)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.sim.serve_post(self, urlsplit(self.path).path, raw)

    def fixed_headers(self) -> dict[str, str]:
        """Headers the platform sends on every response, after the response's own."""
        return {}

    def send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        """Write one complete response; a client that hung up early is not our problem."""
        try:
            self.send_response(status)
            for k, v in {"Content-Type": self.content_type, **headers}.items():
                self.send_header(k, v)
            for k, v in self.fixed_headers().items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304:  # a 304 never has a body
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
