"""Fault injection between worker processes and the AWS-compatible endpoint.

``Endpoint`` runs moto's server as a process of its own; ``FaultProxy`` is a small threaded
HTTP/1.1 proxy in front of it that, per service (s3, sqs, sns, dynamodb), passes requests,
answers 500, throttles, denies credentials or holds requests, and can refuse every
connection for a while (the listening socket is closed, so connects get ECONNREFUSED).
Loopback only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hevcq.credentials import Credentials

SERVICES = ("s3", "sqs", "sns", "dynamodb")
MODES = ("pass", "error", "garbled", "throttle", "deny", "hang")
HOST = "127.0.0.1"
MAX_HANG_S = 120.0
IO_TIMEOUT_S = 90.0  # above botocore's 70 s read timeout: the client gives up first
# moto's own server takes any key pair; the clients and workers behind the proxy sign with this.
PROXIED_CREDENTIALS = Credentials("proxied", "proxied")
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Endpoint:
    """moto's server in its own process; a context manager."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Endpoint:
        """Start the process and wait (bounded) until it answers."""
        with self._log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"endpoint exited: {self._log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2):  # noqa: S310
                    return self
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("endpoint did not come up within 60 s")

    def stop(self) -> None:
        """Stop the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- what a request is -------------------------------------------------------------------


@dataclass
class Request:
    """One HTTP request as read from a client: head lines and a de-chunked body."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), "")

    def service(self) -> str:
        """s3, sqs, sns or dynamodb, from X-Amz-Target or the SigV4 credential scope."""
        target = self.header("X-Amz-Target")
        if target.startswith("DynamoDB_"):
            return "dynamodb"
        if target.startswith("AmazonSQS"):
            return "sqs"
        m = _SCOPE.search(self.header("Authorization"))
        return m.group(1) if m else "s3"


class _Reader:
    """Buffered reads from a socket with bounded waits."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self.buf:
            if not self._fill():
                return None
        head, self.buf = self.buf.split(marker, 1)
        return head

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("connection closed mid-body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def chunked(self) -> bytes:
        """A chunked body, de-chunked (trailers dropped)."""
        out = bytearray()
        while True:
            line = self.until(b"\r\n")
            if line is None:
                raise ConnectionError("connection closed mid-chunk")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.until(b"\r\n"):  # trailers, up to the empty line
                    pass
                return bytes(out)
            out += self.exactly(size)
            self.exactly(2)


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
    return lines[0], headers


def _get(headers: list[tuple[str, str]], name: str) -> str:
    return next((v for k, v in headers if k.lower() == name.lower()), "")


def _read_body(r: _Reader, headers: list[tuple[str, str]]) -> bytes:
    if "chunked" in _get(headers, "Transfer-Encoding").lower():
        return r.chunked()
    return r.exactly(int(_get(headers, "Content-Length") or 0))


def _without(headers: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    drop = {n.lower() for n in names}
    return [(k, v) for k, v in headers if k.lower() not in drop]


def _serialise(first: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    head = "\r\n".join([first, *(f"{k}: {v}" for k, v in headers)]) + "\r\n\r\n"
    return head.encode("latin-1") + body


# ---- canned answers ----------------------------------------------------------------------


def fault_response(req: Request, mode: str) -> bytes:
    """The endpoint's own way of saying 500, throttled or denied, for this request's service;
    ``garbled``: a 502 whose body is no service's error document (a proxy's plain text)."""
    svc = req.service()
    if mode == "garbled":
        text = b"upstream connect error or disconnect/reset before headers"
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))]
        return _serialise(
            "HTTP/1.1 502 Bad Gateway", headers, b"" if req.method == "HEAD" else text
        )
    status, code = {
        ("error", "s3"): (500, "InternalError"),
        ("error", "sqs"): (500, "InternalError"),
        ("error", "sns"): (500, "InternalError"),
        ("error", "dynamodb"): (500, "InternalServerError"),
        ("throttle", "s3"): (503, "SlowDown"),
        ("throttle", "sqs"): (400, "RequestThrottled"),
        ("throttle", "sns"): (400, "Throttling"),
        ("throttle", "dynamodb"): (400, "ProvisionedThroughputExceededException"),
        ("deny", "s3"): (403, "InvalidAccessKeyId"),
        ("deny", "sqs"): (403, "AccessDenied"),
        ("deny", "sns"): (403, "AccessDenied"),
        ("deny", "dynamodb"): (400, "UnrecognizedClientException"),
    }[(mode, svc)]
    message = f"injected by the fault proxy ({mode})"
    headers = [("x-amzn-RequestId", "fault-proxy")]
    if req.header("X-Amz-Target"):  # JSON protocols (DynamoDB, SQS)
        body = json.dumps({"__type": f"com.amazonaws.fault#{code}", "message": message})
        headers.append(("Content-Type", "application/x-amz-json-1.0"))
        if svc == "sqs":  # SQS's JSON protocol keeps the query protocol's codes here
            kind = "Receiver" if status >= 500 else "Sender"
            headers.append(("x-amzn-query-error", f"{code};{kind}"))
    elif svc == "s3":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        headers.append(("Content-Type", "application/xml"))
    else:
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
        )
        headers.append(("Content-Type", "text/xml"))
    data = b"" if req.method == "HEAD" else body.encode()
    headers.append(("Content-Length", str(len(body.encode()))))
    return _serialise(f"HTTP/1.1 {status} Fault", headers, data)


# ---- the proxy ---------------------------------------------------------------------------


class FaultProxy:
    """A threaded HTTP/1.1 proxy to ``upstream`` whose behaviour a test sets per service."""

    def __init__(self, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (HOST, upstream_port)
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.modes = dict.fromkeys(SERVICES, "pass")
        self.counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()  # set: held requests go on
        self._closed = threading.Event()
        self._refusing = threading.Event()
        self._listener: socket.socket | None = None
        self._clients: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._timers: list[threading.Timer] = []
        self._hold: Callable[[Request], bool] | None = None
        self._let_go = threading.Event()
        self.held = 0  # requests that matched a hold
        self.held_answered = 0  # of those, answered since

    # -- control
    def set(self, service: str, mode: str) -> None:
        """Set one service's mode (``"*"``: every service)."""
        assert mode in MODES, mode
        with self._lock:
            for svc in SERVICES if service == "*" else (service,):
                self.modes[svc] = mode
            if mode == "hang":
                self._release.clear()
            elif "hang" not in self.modes.values():
                self._release.set()

    def hold(self, match: Callable[[Request], bool]) -> None:
        """Keep requests that ``match`` unanswered until ``let_go`` (one write in flight)."""
        with self._lock:
            self._hold = match
            self._let_go.clear()

    def let_go(self) -> None:
        """Forward the held requests, and hold no more."""
        with self._lock:
            self._hold = None
            self._let_go.set()

    def reset(self) -> None:
        """Every service back to pass."""
        self.set("*", "pass")

    def refuse(self) -> None:
        """Close the listening socket and every client connection: connects are refused."""
        with self._lock:
            self._refusing.set()
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for c in list(self._clients):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._clients.clear()

    def accept_again(self) -> None:
        """Listen on the same port again."""
        with self._lock:
            if self._listener is None:
                self._listener = self._listen()
            self._refusing.clear()

    def refuse_for(self, seconds: float) -> None:
        """Refuse now and listen again after ``seconds`` (does not block)."""
        self.refuse()
        t = threading.Timer(seconds, self.accept_again)
        t.daemon = True
        self._timers.append(t)
        t.start()

    @property
    def refusing(self) -> bool:
        """True while connections are refused."""
        return self._refusing.is_set()

    def count(self, service: str, mode: str) -> int:
        """How many requests to ``service`` were handled in ``mode``."""
        with self._lock:
            return self.counts.get((service, mode), 0)

    # -- life cycle
    def _listen(self) -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, self.port))
        s.listen(64)
        s.settimeout(0.2)
        return s

    def __enter__(self) -> FaultProxy:
        self._listener = self._listen()
        self._release.set()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for t in self._timers:
            t.cancel()
        self._closed.set()
        self._release.set()
        self._let_go.set()
        self.refuse()
        self._thread.join(5)

    def _serve(self) -> None:
        while not self._closed.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed under us by refuse()
                continue
            with self._lock:
                if self._refusing.is_set():
                    conn.close()
                    continue
                self._clients.add(conn)
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    # -- one client connection
    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(IO_TIMEOUT_S)
        r = _Reader(conn)
        try:
            while not self._closed.is_set():
                req = self._read_request(r, conn)
                if req is None:
                    return
                conn.sendall(self._answer(req))
                if req.header("Connection").lower() == "close":
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._clients.discard(conn)
            conn.close()

    def _read_request(self, r: _Reader, conn: socket.socket) -> Request | None:
        head = r.until(b"\r\n\r\n")
        if head is None:
            return None
        first, headers = _parse_head(head)
        method, target, version = first.split(" ", 2)
        if _get(headers, "Expect").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = _read_body(r, headers)
        return Request(method, target, version, headers, body)

    def _answer(self, req: Request) -> bytes:
        svc = req.service()
        with self._lock:
            mode = self.modes.get(svc, "pass")
            self.counts[(svc, mode)] = self.counts.get((svc, mode), 0) + 1
            held = self._hold is not None and self._hold(req)
            self.held += held
        if held:
            self._let_go.wait(MAX_HANG_S)
            answer = self._forward(req)
            with self._lock:
                self.held_answered += 1
            return answer
        if mode == "hang":
            self._release.wait(MAX_HANG_S)
            mode = "pass"
        if mode != "pass":
            return fault_response(req, mode)
        return self._forward(req)

    def _forward(self, req: Request) -> bytes:
        headers = _without(
            req.headers, "Connection", "Expect", "Transfer-Encoding", "Content-Length"
        )
        if req.body or req.method in ("PUT", "POST"):
            headers.append(("Content-Length", str(len(req.body))))
        headers.append(("Connection", "close"))
        first = f"{req.method} {req.target} HTTP/1.1"
        with socket.create_connection(self.upstream, timeout=IO_TIMEOUT_S) as up:
            up.sendall(_serialise(first, headers, req.body))
            r = _Reader(up)
            while True:
                head = r.until(b"\r\n\r\n")
                if head is None:
                    raise ConnectionError("upstream closed without answering")
                status_line, resp_headers = _parse_head(head)
                status = int(status_line.split(" ", 2)[1])
                if status >= 200:
                    break
            if req.method == "HEAD" or status in (204, 304):
                body = b""
            elif "chunked" in _get(resp_headers, "Transfer-Encoding").lower():
                body = r.chunked()
            elif _get(resp_headers, "Content-Length"):
                body = r.exactly(int(_get(resp_headers, "Content-Length")))
            else:
                body = r.rest()
        out = _without(resp_headers, "Connection", "Transfer-Encoding", "Keep-Alive")
        if not (req.method == "HEAD" or status in (204, 304)):
            out = _without(out, "Content-Length")
            out.append(("Content-Length", str(len(body))))
        out.append(("Connection", "keep-alive"))
        return _serialise(status_line.replace("HTTP/1.0", "HTTP/1.1", 1), out, body)


@contextlib.contextmanager
def endpoint_behind_proxy(tmp: Path) -> Iterator[tuple[Endpoint, FaultProxy]]:
    """An endpoint process with a fault proxy in front of it."""
    with Endpoint(tmp / "endpoint.log") as ep, FaultProxy(ep.port) as proxy:
        yield ep, proxy
