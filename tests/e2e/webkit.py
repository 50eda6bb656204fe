"""The dashboard server over an embedded stack, for the API and browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hevcq.farm.embedded import EmbeddedFarm
from hevcq.settings import Settings
from hevcq.web.app import WebConfig
from hevcq.web.auth import AuthConfig, Authenticator
from hevcq.web.listen import signed_in_address
from hevcq.web.server import ServerThread, embedded_view

# The run's token the servers here ask for, as the embedded farm's does.
LOCAL_TOKEN = "l" * 32
AUTH = {"Authorization": f"Bearer {LOCAL_TOKEN}"}


def signed_in(url: str, path: str = "/") -> str:
    """The address of a page with the run's token in its fragment, as hevcq prints it."""
    return signed_in_address(f"{url}{path}", LOCAL_TOKEN)


@contextmanager
def served(farm: EmbeddedFarm, max_bytes: int = 50_000_000, raw: str = "keep") -> Iterator[str]:
    """The app for ``farm`` on 127.0.0.1 (asking for ``LOCAL_TOKEN``, as the embedded
    farm's asks for its run's); its URL."""
    assert farm.refs is not None
    settings = Settings(workers_dir=farm.settings.workers_dir, raw=raw)
    view = embedded_view(farm.refs, farm.endpoint, farm.credentials, settings)
    auth = Authenticator(AuthConfig(local_token=LOCAL_TOKEN))
    config = WebConfig(view, auth, upload_max_bytes=max_bytes)
    with ServerThread(config) as server:
        yield server.url
