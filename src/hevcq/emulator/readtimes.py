"""Bounded read times for the endpoint's HTTP server: a half-sent request is cut off.

Python's HTTP server waits for a request's headers and body as long as the client keeps
the connection open, so a client that trickles them (slowloris) holds a thread for ever.
Here the request line and headers must arrive within ``header_s`` of the connection's
start, and the body at a mean rate of at least ``min_body_rate`` after ``body_grace_s``.
Data already waiting is always read, so a busy server never cuts off a prompt client.
"""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from hevcq.limits import BODY_CHUNK

# What a response waits for a client that does not read it, per send.
SEND_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ReadBounds:
    """How long a request may take to arrive."""

    header_s: float = 10.0
    body_grace_s: float = 10.0
    min_body_rate: float = float(BODY_CHUNK)  # bytes per second, on average


class DeadlineReader(io.RawIOBase):
    """A connection's reading side that gives up when the request arrives too slowly."""

    def __init__(
        self,
        sock: socket.socket,
        bounds: ReadBounds,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sock, self.bounds, self.clock = sock, bounds, clock
        self.started = clock()
        self.body_started: float | None = None
        self.body_bytes = 0

    def start_body(self) -> None:
        """The headers are in: the body's allowance starts now."""
        self.body_started, self.body_bytes = self.clock(), 0

    def deadline(self) -> float:
        """When reading must stop if the data has not come."""
        if self.body_started is None:
            return self.started + self.bounds.header_s
        allowance = self.bounds.body_grace_s + self.body_bytes / self.bounds.min_body_rate
        return self.body_started + allowance

    def readable(self) -> bool:
        """A reading side."""
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Read what arrives before the deadline; ``TimeoutError`` when nothing does."""
        left = self.deadline() - self.clock()
        try:
            self.sock.settimeout(max(left, 0.0))  # 0: only what is already here
            n = self.sock.recv_into(buffer)
        except BlockingIOError as exc:
            raise TimeoutError("the request arrived too slowly") from exc
        finally:
            self.sock.settimeout(SEND_TIMEOUT_S)
        if self.body_started is not None:
            self.body_bytes += n
        return n


def bounded(base: type[BaseHTTPRequestHandler], bounds: ReadBounds) -> type:
    """A request handler class like ``base`` whose reads keep to ``bounds``."""

    class Bounded(base):  # type: ignore[valid-type,misc]  # a base chosen at run time
        rfile: io.BufferedIOBase
        connection: socket.socket
        deadlines: DeadlineReader

        def setup(self) -> None:
            super().setup()
            self.rfile.close()  # the socket stays open: the server closes it after the request
            self.deadlines = DeadlineReader(self.connection, bounds)
            self.rfile = io.BufferedReader(self.deadlines, BODY_CHUNK)

        def parse_request(self) -> bool:
            ok: bool = super().parse_request()
            self.deadlines.start_body()
            return ok

    Bounded.__name__ = Bounded.__qualname__ = f"Bounded{base.__name__}"
    return Bounded
