"""Finding the farm to serve, and running the app under uvicorn (in front, on a socket a
parent bound, or in a thread)."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from hevcq.credentials import Credentials
from hevcq.errors import ConfigError, FarmConfigError, RetryableError
from hevcq.farm.client import Farm
from hevcq.farm.embedded import RunningFarm, running_farm
from hevcq.pools import Pool
from hevcq.settings import Settings
from hevcq.topology import FarmRefs
from hevcq.web import guard
from hevcq.web.app import WebConfig, create_app
from hevcq.web.auth import AuthConfig, Authenticator
from hevcq.web.play import PlayPolicy, SegmentMode
from hevcq.web.videos import UploadQuota
from hevcq.web.view import SCAN_SHARE, FarmView

SERVER_START_TIMEOUT_S = 10.0
GRACEFUL_STOP_S = 2  # seconds (uvicorn takes whole ones)
# A configured farm that cannot be read: missing or refused resources, AWS failing.
UNREACHABLE_REASON = "configured farm unreachable (the server's log says why)"
UNREACHABLE: tuple[type[Exception], ...] = (ConfigError, FarmConfigError, RetryableError)


def is_loopback(host: str) -> bool:
    """True for a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Located:
    """A farm to serve (or None, and why), whether it is the embedded one, and then the
    token its dashboard asks for on loopback (``Credentials.dashboard_token``)."""

    farm: FarmView | None
    embedded: bool
    reason: str = ""
    local_token: str | None = None


def embedded_view(
    refs: FarmRefs, endpoint: str, credentials: Credentials, settings: Settings
) -> FarmView:
    """A view of an embedded farm reached at ``endpoint`` with its run's key pair."""
    return FarmView(
        Farm.embedded(endpoint, refs, credentials),
        raw_policy=settings.raw,
        quota=upload_quota(settings),
        api_pools=settings.api_pool_names,
        # The embedded endpoint answers no web page: this server streams the segments.
        play_policy=play_policy(settings, "proxy"),
        scan_share=SCAN_SHARE,
    )


def play_policy(settings: Settings, segments: SegmentMode) -> PlayPolicy:
    """How this server plays outputs (``hevcq.web.play``)."""
    key = settings.play_key.get_secret_value().encode() if settings.play_key else None
    base = settings.public_base_url
    if key is None:
        return PlayPolicy(segments=segments, public_base_url=base)
    return PlayPolicy(key=key, segments=segments, public_base_url=base)


def upload_quota(settings: Settings) -> UploadQuota:
    """Each owner's uploads and bytes in flight, from the settings."""
    return UploadQuota(settings.uploads_in_flight, settings.upload_bytes_in_flight)


def locate(settings: Settings, pools: dict[str, Pool], state_dir: Path) -> Located:
    """The configured farm, else the running embedded farm, else none (with the reason)."""
    if not settings.embedded:
        try:
            farm = Farm.configured(settings, pools)
        except UNREACHABLE as exc:
            return Located(None, embedded=False, reason=f"configured farm unreachable: {exc}")
        view = FarmView(
            farm,
            raw_policy=settings.raw,
            quota=upload_quota(settings),
            api_pools=settings.api_pool_names,
            play_policy=play_policy(settings, "presigned"),
            scan_share=SCAN_SHARE,
        )
        return Located(view, embedded=False)
    running = running_farm(state_dir)
    if running is None:
        return Located(
            None,
            embedded=True,
            reason="no farm configured (HEVCQ_BUCKET unset) and no embedded farm running",
        )
    return embedded_located(running, settings)


def embedded_located(farm: RunningFarm, settings: Settings) -> Located:
    """A running embedded farm to serve, with the token its dashboard asks for."""
    view = embedded_view(farm.refs, farm.endpoint, farm.credentials, settings)
    return Located(view, embedded=True, local_token=farm.credentials.dashboard_token())


# A token guessed over the network must be out of reach: 32 characters of a random one.
MIN_TOKEN_CHARS = 32


def auth_config(
    settings: Settings, *, embedded: bool, host: str, local_token: str | None = None
) -> AuthConfig:
    """The run's own token on loopback for the embedded farm (``local_token``, or a random
    one while no farm runs: there is nothing to read then but the health); otherwise an
    operator token or OIDC, or refuse to start."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    _check_credentials(settings, token, host)
    local = embedded and is_loopback(host) and not token and not settings.oidc_issuer
    cfg = AuthConfig(
        local_token=(local_token or secrets.token_hex(16)) if local else None,
        token=token,
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        jwks_url=settings.oidc_jwks_url,
        operator_group=settings.oidc_operator_group,
    )
    if not cfg.any_method:
        raise ConfigError(
            "the API needs credentials here: set HEVCQ_API_TOKEN or HEVCQ_OIDC_ISSUER "
            "(only the embedded farm on a loopback address is served without them, to whoever "
            "shows its run's token)"
        )
    return cfg


def _check_credentials(settings: Settings, token: str | None, host: str) -> None:
    """Refuse credentials that would let in more than they should."""
    if token is not None and len(token) < MIN_TOKEN_CHARS and not is_loopback(host):
        raise ConfigError(
            f"HEVCQ_API_TOKEN must have at least {MIN_TOKEN_CHARS} characters beyond a "
            "loopback address (make one with: openssl rand -hex 32)"
        )
    if settings.oidc_issuer and not settings.oidc_audience:
        raise ConfigError(
            "HEVCQ_OIDC_AUDIENCE is not set: without it every token of the issuer would be "
            "accepted; set it to the app client id"
        )


def public_reason(located: Located, host: str) -> str:
    """Why there is no farm, as ``/api/health`` tells anyone who can reach ``host``.

    A configured farm's failure names queues, endpoints and accounts: on an address beyond
    this machine it says only that the farm is unreachable, and the server's own output
    (``hevcq serve`` prints the reason as it starts) says why, as on Lambda.
    """
    if located.farm is None and not located.embedded and not is_loopback(host):
        return UNREACHABLE_REASON
    return located.reason


def web_config(settings: Settings, located: Located, host: str) -> WebConfig:
    """Everything the app needs, from settings and the located farm."""
    auth = auth_config(
        settings, embedded=located.embedded, host=host, local_token=located.local_token
    )
    return WebConfig(
        farm=located.farm,
        auth=Authenticator(auth),
        no_farm_reason=public_reason(located, host),
        upload_max_bytes=settings.upload_max_bytes,
        upload_ttl_s=settings.upload_url_ttl_s,
    )


# A request's head (request line and headers) must arrive whole in this long, from the
# connection's start or the previous response; uvicorn itself waits for ever.
HEAD_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = guard.MAX_HEAD_BYTES  # h11 answers 400 to a longer head still arriving
KEEP_ALIVE_S = 5  # an idle connection between requests


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request head is late."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's head."""
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        """A new request's head arrived: it made the deadline."""
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:
            self._disarm()

    def on_response_complete(self) -> None:
        """Start the clock for the next request's head (a body the app left unread included)."""
        self._arm()  # first: a pipelined head that is already here disarms it at once
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """No clock for a connection that is gone."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _late(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def _uvicorn(config: WebConfig, host: str, port: int) -> uvicorn.Server:
    # uvicorn's own logging stays quiet; structlog carries the app's events.
    return uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=host,
            port=port,
            log_level="warning",
            http=TimedH11Protocol,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
    )


def serve(config: WebConfig, sock: socket.socket) -> None:
    """Serve in the foreground on ``sock`` (from ``web.listen.bind``) until interrupted."""
    host, port = sock.getsockname()[:2]
    _uvicorn(config, host, port).run(sockets=[sock])


def serve_socket(config: WebConfig, sock: socket.socket, on_started: Callable[[], None]) -> None:
    """Serve on a socket that already listens until SIGTERM; ``on_started`` once it answers."""
    server = _uvicorn(config, "127.0.0.1", 0)
    # Open requests get this long once told to stop; the dashboard polls, none last.
    server.config.timeout_graceful_shutdown = GRACEFUL_STOP_S

    def watch() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        on_started()

    threading.Thread(target=watch, name="started-watch", daemon=True).start()
    server.run(sockets=[sock])


class ServerThread:
    """The app served from a background thread; a context manager with ``url`` set."""

    def __init__(self, config: WebConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _uvicorn(config, host, port)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise ConfigError("the dashboard server did not start")
            time.sleep(0.05)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=SERVER_START_TIMEOUT_S)
