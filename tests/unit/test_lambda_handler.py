"""The Lambda handler: API Gateway HTTP API (payload 2.0) events through Mangum to the app."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest
from mangum import Mangum

from hevcq.errors import ConfigError
from hevcq.web import lambda_handler
from hevcq.web.app import WebConfig
from hevcq.web.auth import AuthConfig, Authenticator

TOKEN = "t" * 32
HOST = "abc123.execute-api.eu-west-1.amazonaws.com"


@dataclass
class Context:
    """The fields of Lambda's context object that an adapter may read."""

    function_name: str = "hevcq-api"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:hevcq-api"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "req-1"
    log_group_name: str = "/aws/lambda/hevcq-api"
    log_stream_name: str = "stream"
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def http_api_event(
    method: str, path: str, headers: dict[str, str] | None = None, body: str | None = None
) -> dict[str, Any]:
    """An API Gateway HTTP API event (payload format 2.0), as the $default stage sends it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": HOST, "user-agent": "test", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": HOST,
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "test",
            },
            "requestId": "req-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:07:30:00 +0000",
            "timeEpoch": 1795419000000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _json(response: dict[str, Any]) -> Any:
    body = response["body"]
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    return json.loads(raw)


@pytest.fixture
def handler() -> Mangum:
    auth = Authenticator(AuthConfig(token=TOKEN))
    return lambda_handler.adapter(WebConfig(None, auth, no_farm_reason="not yet"))


def test_health_reaches_the_app_and_returns_its_json(handler: Mangum) -> None:
    response = handler(http_api_event("GET", "/api/health"), Context())
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    assert _json(response) == {"status": "no farm", "detail": "not yet", "farm": None}


def test_the_bearer_token_is_checked_behind_the_gateway(handler: Mangum) -> None:
    bare = handler(http_api_event("GET", "/api/status"), Context())
    assert bare["statusCode"] == 401
    assert _json(bare) == {"detail": "unauthorized"}
    auth = {"authorization": f"Bearer {TOKEN}"}
    passed = handler(http_api_event("GET", "/api/status", auth), Context())
    # Past the token check: this app has no farm, and says so.
    assert passed["statusCode"] == 503
    assert _json(passed)["detail"] == "no farm: not yet"


def test_a_post_from_another_site_is_refused(handler: Mangum) -> None:
    headers = {"origin": "https://evil.example", "content-type": "application/json"}
    body = json.dumps({"filename": "a.mp4"})
    bare = handler(http_api_event("POST", "/api/uploads", headers, body=body), Context())
    assert bare["statusCode"] == 401  # credentials first
    signed = {**headers, "authorization": f"Bearer {TOKEN}"}
    response = handler(http_api_event("POST", "/api/uploads", signed, body=body), Context())
    assert response["statusCode"] == 403
    assert _json(response) == {"detail": "cross-site request refused"}


def test_the_dashboard_page_is_served(handler: Mangum) -> None:
    response = handler(http_api_event("GET", "/"), Context())
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/html")
    assert "<html" in response["body"].lower()


def test_build_refuses_without_a_farm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEVCQ_API_TOKEN", TOKEN)
    with pytest.raises(ConfigError, match="HEVCQ_BUCKET"):
        lambda_handler.build({"HEVCQ_API_TOKEN": TOKEN})


def test_build_refuses_without_a_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    # Raised before any AWS call: there is no endpoint in this test.
    monkeypatch.setenv("HEVCQ_BUCKET", "media")
    with pytest.raises(ConfigError, match="HEVCQ_API_TOKEN or HEVCQ_OIDC_ISSUER"):
        lambda_handler.build({"HEVCQ_BUCKET": "media"})
