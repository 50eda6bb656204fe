"""ECS task scale-in protection, against a local fake of the ECS agent endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from hevcq.worker.protection import PROTECTION_PATH, EcsAgentProtection, NoProtection


class FakeAgent:
    """Answers PUT /task-protection/v1/state like the ECS agent, or fails on demand."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.fail = False
        agent = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                agent.calls.append({"path": self.path, **body})
                if agent.fail:
                    doc = {"failure": {"Arn": "task", "Reason": "TASK_NOT_FOUND"}}
                else:
                    doc = {"protection": {"ProtectionEnabled": body["ProtectionEnabled"]}}
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def agent() -> Iterator[FakeAgent]:
    a = FakeAgent()
    yield a
    a.server.shutdown()


def test_acquire_and_release_set_and_clear_protection(agent: FakeAgent) -> None:
    p = EcsAgentProtection(agent.uri, expires_min=30)
    assert p.acquire() is True
    p.release()
    assert agent.calls == [
        {"path": "/v1" + PROTECTION_PATH, "ProtectionEnabled": True, "ExpiresInMinutes": 30},
        {"path": "/v1" + PROTECTION_PATH, "ProtectionEnabled": False},
    ]


def test_refusal_by_the_agent_is_reported(agent: FakeAgent) -> None:
    agent.fail = True
    assert EcsAgentProtection(agent.uri).acquire() is False


def test_unreachable_agent_is_reported() -> None:
    assert EcsAgentProtection("http://127.0.0.1:9", timeout_s=0.5).acquire() is False


def test_outside_ecs_protection_always_succeeds() -> None:
    assert NoProtection().acquire() is True


def test_protection_is_renewed_during_long_jobs(agent: FakeAgent) -> None:
    now = [0.0]
    p = EcsAgentProtection(agent.uri, expires_min=60, clock=lambda: now[0])
    assert p.acquire()
    now[0] = 20 * 60
    p.renew()
    assert len(agent.calls) == 1  # a third of the way: nothing to do yet
    now[0] = 31 * 60
    p.renew()
    assert [c["ProtectionEnabled"] for c in agent.calls] == [True, True]
    p.release()
    now[0] = 200 * 60
    p.renew()  # released: nothing to renew
    assert len(agent.calls) == 3
