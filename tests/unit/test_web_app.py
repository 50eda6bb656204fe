"""The app with no farm behind it: credentials are checked before anything else."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hevcq.web.app import CSRF_HEADER, WebConfig, create_app
from hevcq.web.auth import AuthConfig, Authenticator

TOKEN = "t" * 40
ULID = "01KAAAAAAAAAAAAAAAAAAAAAAA"


def _client(auth: AuthConfig) -> TestClient:
    return TestClient(create_app(WebConfig(None, Authenticator(auth))))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/status"),
        ("GET", "/api/dashboard"),
        ("GET", "/api/pools"),
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{ULID}"),
        ("GET", "/api/deadletters"),
        ("GET", "/api/videos"),
        ("GET", f"/api/videos/{ULID}"),
        ("POST", "/api/uploads"),
        ("POST", "/api/redrive"),
    ],
)
@pytest.mark.parametrize("headers", [{}, {CSRF_HEADER: "1"}, {"Authorization": "Bearer nope"}])
def test_without_credentials_every_call_is_a_bare_401_before_anything_else(
    method: str, path: str, headers: dict[str, str]
) -> None:
    """Neither the missing farm (503) nor the missing cross-site header (403) shows first."""
    c = _client(AuthConfig(token=TOKEN))
    r = c.request(method, path, headers=headers, json={"filename": "a.mov", "pool": "hevc"})
    assert r.status_code == 401
    assert r.json() == {"detail": "unauthorized"}
    assert r.headers["www-authenticate"] == "Bearer"
    ok = c.request(method, path, headers={"Authorization": f"Bearer {TOKEN}", CSRF_HEADER: "1"})
    assert ok.status_code in (503, 422), ok.text  # past the guard: no farm, or no body
