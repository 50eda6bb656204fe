"""The listening socket of ``hevcq serve`` and of an ingest's dashboard.

Apart from the server so that the ingest, which binds its dashboard's socket and hands it
to a child process, does not load the web stack (FastAPI, uvicorn) itself.
"""

from __future__ import annotations

import socket

LISTEN_BACKLOG = 64


def signed_in_address(base: str, token: str) -> str:
    """The address of the dashboard at ``base`` with the run's token in its fragment,
    which a browser never sends: the page's script reads it and sends it as a bearer
    token."""
    return f"{base}#token={token}"


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (0: a free port); ``OSError`` when it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # create_server sets SO_REUSEADDR: a port left in TIME_WAIT by the previous run is
    # free; one a server listens on is not.
    return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
