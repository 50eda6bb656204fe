"""The dashboard server over an embedded stack, for the API and browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hevcq.farm.embedded import EmbeddedFarm
from hevcq.settings import Settings
from hevcq.web.app import WebConfig
from hevcq.web.auth import AuthConfig, Authenticator
from hevcq.web.server import ServerThread, embedded_view


@contextmanager
def served(farm: EmbeddedFarm, max_bytes: int = 50_000_000, raw: str = "keep") -> Iterator[str]:
    """The app for ``farm`` on 127.0.0.1 (no credentials, as for the embedded farm); its URL."""
    assert farm.refs is not None
    settings = Settings(workers_dir=farm.settings.workers_dir, raw=raw)
    view = embedded_view(farm.refs, farm.endpoint, farm.credentials, settings)
    config = WebConfig(view, Authenticator(AuthConfig(open_local=True)), upload_max_bytes=max_bytes)
    with ServerThread(config) as server:
        yield server.url
