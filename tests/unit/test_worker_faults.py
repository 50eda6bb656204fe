"""The worker loop under endpoint faults and a misconfigured farm, with fakes (the ledger's
own rules over an in-memory table)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from structlog.testing import capture_logs

from hevcq.aws.clients import classify
from hevcq.errors import FarmConfigError
from hevcq.ledger import State
from hevcq.worker.outage import Outage, until_reachable
from tests.fakes import FakeQueue
from tests.unit.test_worker import event, make_rig, ok


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hevcq.worker.outage.MIN_WAIT_S", 0.0)
    monkeypatch.setattr("hevcq.worker.outage.retry_delay", lambda n, **kw: 0)
    monkeypatch.setattr("time.sleep", lambda _s: None)  # tenacity's back-off on settles


def refused() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


def denied(code: str = "AccessDenied") -> ClientError:
    return ClientError(
        cast(
            Any,
            {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        ),
        "Op",
    )


class FlakyReceive(FakeQueue):
    """Receives fail ``failures`` times before the inbox is served."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures, self.error = failures, error

    def receive(self, wait_s: int):
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        return super().receive(wait_s)


def names(logs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [e["event"] for e in logs]


def test_failed_receives_are_waited_out_with_one_line_per_change_of_state(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok, max_jobs=1, queue=FlakyReceive(5, refused()))
    msg = rig.queue.put(event())
    with capture_logs() as logs:
        assert rig.worker.run() == 1
    assert rig.queue.settled(msg) == "deleted"
    assert names(logs).count("endpoint_unreachable") == 1
    assert names(logs).count("endpoint_recovered") == 1


def test_refused_credentials_on_receive_stop_the_loop(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok, queue=FlakyReceive(1, denied()))
    with pytest.raises(FarmConfigError):
        rig.worker.run()


def test_refused_credentials_on_the_source_release_the_message_untouched(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok)

    def head(key: str):
        raise FarmConfigError("head: 403")

    rig.store.head = head  # type: ignore[method-assign]
    msg = rig.queue.put(event())
    with pytest.raises(FarmConfigError):
        rig.worker.run()
    assert rig.queue.released == [(msg.message_id, 0)]
    assert rig.queue.dead == []
    assert rig.runner.calls == []


def test_a_job_stopped_by_refused_credentials_is_released_not_dead_lettered(ledger, farm) -> None:
    def upload_denied(spec, ctx):
        raise FarmConfigError("upload: AccessDenied")

    rig = make_rig(ledger, farm, upload_denied)
    msg = rig.queue.put(event())
    with pytest.raises(FarmConfigError):
        rig.worker.run()
    assert rig.queue.released == [(msg.message_id, 0)]
    assert rig.queue.dead == []
    assert rig.publisher.results == []
    assert rig.item().state == State.INTERRUPTED.value


class FailingDelete(FakeQueue):
    def delete(self, msg) -> None:
        raise refused()


def test_a_failed_acknowledgement_is_logged_and_the_worker_carries_on(ledger, farm) -> None:
    rig = make_rig(ledger, farm, ok, max_jobs=1, queue=FailingDelete())
    rig.queue.put(event())
    with capture_logs() as logs:
        assert rig.worker.run() == 1
    (failed,) = [e for e in logs if e["event"] == "settle_failed"]
    assert failed["verdict"] == "ack"
    assert "message_settled" not in names(logs)


def test_a_ledger_outage_while_claiming_defers_the_message_without_a_traceback(
    ledger, farm
) -> None:
    rig = make_rig(ledger, farm, ok, max_jobs=1)

    def claim(*a, **kw):
        raise ClientError(
            cast(
                Any,
                {
                    "Error": {"Code": "InternalServerError"},
                    "ResponseMetadata": {"HTTPStatusCode": 500},
                },
            ),
            "UpdateItem",
        )

    rig.ledger.claim = claim  # type: ignore[method-assign]
    msg = rig.queue.put(event())
    with capture_logs() as logs:
        assert rig.worker.run() == 1
    assert rig.queue.settled(msg) == "released"
    assert "message_deferred" in names(logs)
    assert "message_handling_crashed" not in names(logs)


def test_until_reachable_retries_transient_faults_and_not_configuration_faults() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise refused()
        return "farm"

    with capture_logs() as logs:
        assert until_reachable(flaky, threading.Event(), "resolving", classify) == "farm"
    assert names(logs) == ["endpoint_unreachable", "endpoint_recovered"]

    def broken() -> str:
        raise denied("InvalidAccessKeyId")

    with pytest.raises(FarmConfigError):
        until_reachable(broken, threading.Event(), "resolving", classify)
    stopped = threading.Event()
    stopped.set()
    assert until_reachable(flaky, stopped, "resolving", classify) is None


def test_an_outage_logs_once_however_many_failures() -> None:
    o = Outage("receive", clock=iter([0.0, 42.0]).__next__)
    with capture_logs() as logs:
        for _ in range(10):
            o.failed(refused())
        o.recovered()
        o.recovered()
    assert names(logs) == ["endpoint_unreachable", "endpoint_recovered"]
    assert logs[1]["down_s"] == 42.0
