"""The app with no farm behind it: credentials first, pages and /docs with no network, and
the events topic's message in the OpenAPI document."""

from __future__ import annotations

import re
import socket

import pytest
from fastapi.testclient import TestClient

from hevcq.aws.clients import Clients
from hevcq.farm.client import Farm
from hevcq.messages import JobResult
from hevcq.topology import FarmRefs, Names, PoolRefs
from hevcq.web.app import CSRF_HEADER, WebConfig, create_app
from hevcq.web.auth import AuthConfig, Authenticator
from hevcq.web.view import FarmView
from tests.apiroutes import credentialed_routes

TOKEN = "t" * 40
LOCAL = "http://127.0.0.1"  # the local server answers its loopback name only
LOCAL_TOKEN = "l" * 32  # the run's token the embedded farm's server asks for
# Every src= and href= of a page, and every url(...) of a stylesheet.
REFERENCE = re.compile(r"""(?:src|href)=["']([^"']+)["']|url\(["']?([^"')]+)["']?\)""")


def _client(auth: AuthConfig) -> TestClient:
    """A client of the app; of the local server, one that shows the run's token."""
    token = {"Authorization": f"Bearer {auth.local_token}"} if auth.local_token else {}
    app = create_app(WebConfig(None, Authenticator(auth)))
    return TestClient(app, base_url=LOCAL, headers=token)


@pytest.mark.parametrize(("method", "path"), credentialed_routes())
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


def _local_references(c: TestClient, path: str) -> list[str]:
    """The assets a page or stylesheet loads; fails on any that is not on this server."""
    r = c.get(path)
    assert r.status_code == 200, path
    found = [a or b for a, b in REFERENCE.findall(r.text)]
    remote = [u for u in found if "//" in u and not u.startswith("data:")]
    assert remote == [], f"{path} loads from elsewhere"
    return [u for u in found if u.startswith("/")]


@pytest.mark.parametrize("page", ["/", "/jobs/x", "/docs"])
def test_pages_and_docs_load_only_assets_the_server_holds(page: str) -> None:
    c = _client(AuthConfig(local_token=LOCAL_TOKEN))
    assets = _local_references(c, page)
    assert any(a.endswith(".js") for a in assets)
    assert any(a.endswith(".css") for a in assets)
    for asset in assets:
        served = c.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 100, asset
        if asset.endswith(".css"):
            _local_references(c, asset)
    if page == "/docs":
        assert c.get("/openapi.json").status_code == 200


def test_the_events_topic_message_is_documented_from_its_model() -> None:
    doc = _client(AuthConfig(local_token=LOCAL_TOKEN)).get("/openapi.json").json()
    body = doc["webhooks"]["job-result"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    schema = doc["components"]["schemas"][ref]
    assert ref == "JobResult"
    assert set(schema["properties"]) == set(JobResult.model_fields)
    required = {n for n, f in JobResult.model_fields.items() if f.is_required()}
    assert set(schema["required"]) == required
    assert schema["properties"]["outcome"]["enum"] == ["done", "skipped", "failed"]
    assert "events topic" in doc["info"]["description"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_farm_that_stops_answering_is_reported_and_the_server_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The embedded farm a `hevcq serve` found has ended: every read says so, none raises."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    refs = FarmRefs(
        names=Names.build("hevcq", "hevcq-local", ["hevc"]),
        uploads_topic_arn="arn:aws:sns:us-east-1:123456789012:hevcq-uploads",
        events_topic_arn="arn:aws:sns:us-east-1:123456789012:hevcq-events",
        results_queue_url=f"{endpoint}/123456789012/hevcq-results",
        ledger_table="hevcq-ledger",
        pools={"hevc": PoolRefs(f"{endpoint}/1/hevc", f"{endpoint}/1/hevc-dlq")},
    )
    clients = Clients.create(region="us-east-1", endpoint_url=endpoint, retries=1)
    view = FarmView(Farm(clients, refs, label="gone"))
    # The test client re-raises anything the app does not handle: a crash fails here.
    app = create_app(WebConfig(view, Authenticator(AuthConfig(local_token=LOCAL_TOKEN))))
    c = TestClient(app, base_url=LOCAL, headers={"Authorization": f"Bearer {LOCAL_TOKEN}"})
    assert c.get("/api/health").json() == {
        "status": "farm unreachable",
        "farm": None,
        "detail": None,
    }
    for path in ("/api/dashboard", "/api/pools", "/api/jobs", "/api/deadletters", "/api/videos"):
        r = c.get(path)
        assert (r.status_code, r.json()) == (503, {"detail": "farm unreachable"}), path
    post = c.post("/api/uploads", json={"filename": "a.mov"}, headers={CSRF_HEADER: "1"})
    assert (post.status_code, post.json()) == (503, {"detail": "farm unreachable"})
    assert c.get("/").status_code == 200
