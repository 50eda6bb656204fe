"""What every request passes first: the Host of a credential-free server, the body's size,
and the security headers; on the app's test client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from hevcq.web.app import CSRF_HEADER, WebConfig, create_app
from hevcq.web.auth import AuthConfig, Authenticator
from hevcq.web.guard import CONTENT_SECURITY_POLICY, MAX_BODY_BYTES, host_allowed

TOKEN = "t" * 40
LOCAL = "http://127.0.0.1"
LOCAL_TOKEN = "l" * 32  # the run's token the embedded farm's server asks for


def _client(auth: AuthConfig) -> TestClient:
    """A client of the app; of the local server, one that shows the run's token."""
    token = {"Authorization": f"Bearer {auth.local_token}"} if auth.local_token else {}
    app = create_app(WebConfig(None, Authenticator(auth)))
    return TestClient(app, base_url=LOCAL, headers=token)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8765", True),
        ("localhost:8765", True),
        ("LOCALHOST:8765", True),
        ("[::1]:8765", True),
        ("evil.test:8765", False),  # DNS rebinding: the attacker's name, our address
        ("127.0.0.1.evil.test:8765", False),
        ("127.0.0.1:8766", False),
        ("127.0.0.1", False),
        ("[::1]", False),
        ("", False),
        (None, False),
    ],
)
def test_a_credential_free_server_answers_its_loopback_names_and_port_only(
    host: str | None, allowed: bool
) -> None:
    assert host_allowed(host, 8765) is allowed


def test_host_without_a_port_is_the_default_port() -> None:
    assert host_allowed("127.0.0.1", 80)
    assert host_allowed("[::1]", 80)


@pytest.mark.parametrize("path", ["/api/dashboard", "/api/health", "/", "/api/videos"])
def test_a_rebound_name_reads_nothing_from_the_local_dashboard(path: str) -> None:
    c = _client(AuthConfig(local_token=LOCAL_TOKEN))
    r = c.get(path, headers={"Host": "evil.test"})
    assert r.status_code == 421
    assert "unknown host" in r.json()["detail"]
    assert c.get(path).status_code in (200, 503)


def test_a_rebound_name_posts_nothing_to_the_local_dashboard() -> None:
    """The Origin check compares with the Host: a rebound page has both the same."""
    c = _client(AuthConfig(local_token=LOCAL_TOKEN))
    evil = {"Host": "evil.test", "Origin": "http://evil.test", CSRF_HEADER: "1"}
    r = c.post("/api/redrive", json={"pool": "hevc"}, headers=evil)
    assert r.status_code == 421


def test_a_server_with_credentials_answers_any_host() -> None:
    """Behind a load balancer the name is the operator's business; credentials guard it."""
    c = _client(AuthConfig(token=TOKEN))
    r = c.get(
        "/api/pools", headers={"Host": "api.example.test", "Authorization": f"Bearer {TOKEN}"}
    )
    assert r.status_code == 503  # past every guard: no farm


@pytest.mark.parametrize("path", ["/api/uploads", "/api/redrive", "/api/videos"])
def test_an_oversized_body_is_refused_from_its_headers_before_credentials(path: str) -> None:
    c = _client(AuthConfig(token=TOKEN))
    body = b"x" * (MAX_BODY_BYTES + 1)
    r = c.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.headers["connection"] == "close"


def test_an_oversized_body_without_a_length_is_refused_while_it_streams() -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(1000):
            yield b"x" * 4096

    c = _client(AuthConfig(token=TOKEN))
    r = c.post("/api/uploads", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "content-length" not in r.request.headers  # chunked: counted as it comes


def test_a_small_body_still_reaches_the_app() -> None:
    c = _client(AuthConfig(token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}", CSRF_HEADER: "1"}
    r = c.post("/api/uploads", json={"filename": "a" * 200 + ".mov"}, headers=auth)
    assert r.status_code == 503  # no farm: the body went through


@pytest.mark.parametrize(
    ("path", "auth"),
    [
        ("/", {}),
        ("/jobs/x", {}),
        ("/docs", {}),
        ("/static/app.js", {}),
        ("/api/health", {}),
        ("/api/pools", {}),  # a 401
        ("/api/pools", {"Authorization": f"Bearer {TOKEN}"}),  # a 503
        ("/openapi.json", {}),
    ],
)
def test_every_answer_carries_the_security_headers(path: str, auth: dict[str, str]) -> None:
    r = _client(AuthConfig(token=TOKEN)).get(path, headers=auth)
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    policy = dict(p.strip().split(" ", 1) for p in CONTENT_SECURITY_POLICY.split(";"))
    assert policy["frame-ancestors"] == "'none'"
    assert policy["script-src"] == "'self'"  # no inline script
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("page", ["/", "/jobs/x", "/docs"])
def test_pages_carry_no_inline_script_or_style(page: str) -> None:
    html = _client(AuthConfig(local_token=LOCAL_TOKEN)).get(page).text
    assert "<script>" not in html
    assert "<style" not in html
    assert " style=" not in html
    assert " on" + "load=" not in html
