"""The Lambda handler over a moto farm: settings from the environment, built once per container."""

from __future__ import annotations

import json

import pytest

from hevcq.web import lambda_handler
from hevcq.web.server import UNREACHABLE_REASON
from tests.aws.conftest import MotoFarm
from tests.unit.test_lambda_handler import TOKEN, Context, _json, http_api_event


@pytest.fixture
def function_env(moto_farm: MotoFarm, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment modules/api gives the function (Cognito off: the token guards)."""
    refs = moto_farm.refs
    env = {
        "HEVCQ_BUCKET": refs.bucket,
        "HEVCQ_NAME_PREFIX": refs.names.prefix,
        "HEVCQ_REGION": "us-east-1",
        "HEVCQ_UPLOADS_TOPIC_ARN": refs.uploads_topic_arn,
        "HEVCQ_EVENTS_TOPIC_ARN": refs.events_topic_arn,
        "HEVCQ_RESULTS_QUEUE_URL": refs.results_queue_url,
        "HEVCQ_LEDGER_TABLE": refs.ledger_table,
        "HEVCQ_API_TOKEN": TOKEN,
        "HEVCQ_LOG_FORMAT": "json",
        "HEVCQ_RAW": "keep",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(lambda_handler, "_CONTAINER", {})
    return env


@pytest.mark.usefixtures("function_env")
def test_the_handler_serves_the_configured_farm(moto_farm: MotoFarm) -> None:
    health = lambda_handler.handler(http_api_event("GET", "/api/health"), Context())
    assert (health["statusCode"], _json(health)["status"]) == (200, "ok")
    auth = {"authorization": f"Bearer {TOKEN}"}
    pools = lambda_handler.handler(http_api_event("GET", "/api/pools", auth), Context())
    assert pools["statusCode"] == 200
    assert sorted(p["pool"] for p in _json(pools)) == sorted(moto_farm.pools)


@pytest.mark.usefixtures("function_env")
def test_the_app_is_built_once_per_container() -> None:
    lambda_handler.handler(http_api_event("GET", "/api/health"), Context())
    first = lambda_handler._CONTAINER["app"]
    lambda_handler.handler(http_api_event("GET", "/api/health"), Context())
    assert lambda_handler._CONTAINER["app"] is first


def test_an_unreachable_farm_is_looked_up_again(
    function_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HEVCQ_NAME_PREFIX", "missing")  # no such queues
    response = lambda_handler.handler(http_api_event("GET", "/api/health"), Context())
    # The handler configures logging itself (JSON lines on stderr, as on Lambda).
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert _json(response) == {
        "status": "no farm",
        "detail": UNREACHABLE_REASON,
        "farm": None,
    }
    [event] = [e for e in logged if e["event"] == "farm_not_located"]
    assert "missing-" in event["reason"], "the log names what is missing, the answer does not"
    assert "app" not in lambda_handler._CONTAINER
    monkeypatch.setenv("HEVCQ_NAME_PREFIX", function_env["HEVCQ_NAME_PREFIX"])
    response = lambda_handler.handler(http_api_event("GET", "/api/health"), Context())
    assert _json(response)["status"] == "ok"
    assert "app" in lambda_handler._CONTAINER
