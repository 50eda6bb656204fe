"""ECS task scale-in protection through the ECS agent's local endpoint.

While a task is protected, ECS service scale-in will not stop it, so a busy worker is
never killed mid-encode by autoscaling. Outside ECS (no ``ECS_AGENT_URI``) nothing happens.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Protocol

import structlog

log = structlog.get_logger()

PROTECTION_PATH = "/task-protection/v1/state"
# ECS caps ExpiresInMinutes at 2880 (48 h); we renew well before our own expiry.
DEFAULT_EXPIRES_MIN = 60


class TaskProtection(Protocol):
    """Protect the task while it may hold work."""

    def acquire(self) -> bool: ...
    def renew(self) -> None: ...
    def release(self) -> None: ...


class NoProtection:
    """Outside ECS: always succeeds."""

    def acquire(self) -> bool:
        """Nothing to protect."""
        return True

    def renew(self) -> None:
        """Nothing to renew."""

    def release(self) -> None:
        """Nothing to release."""


class EcsAgentProtection:
    """Sets and clears protection via ``$ECS_AGENT_URI/task-protection/v1/state``."""

    def __init__(
        self,
        agent_uri: str,
        expires_min: int = DEFAULT_EXPIRES_MIN,
        timeout_s: float = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = agent_uri.rstrip("/") + PROTECTION_PATH
        self._expires_min = expires_min
        self._timeout_s = timeout_s
        self._clock = clock
        self._set_at: float | None = None

    def _put(self, enabled: bool) -> bool:
        body: dict[str, object] = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self._expires_min
        req = urllib.request.Request(  # noqa: S310 - the agent URI is a local http endpoint
            self._url,
            data=json.dumps(body).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:  # noqa: S310
                doc = json.loads(resp.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("task_protection_failed", enabled=enabled, error=str(exc))
            return False
        if "failure" in doc or "error" in doc:
            log.warning("task_protection_refused", enabled=enabled, response=doc)
            return False
        return True

    def acquire(self) -> bool:
        """Enable protection; False means the worker must not take work."""
        ok = self._put(True)
        self._set_at = self._clock() if ok else None
        return ok

    def renew(self) -> None:
        """Push the expiry forward during a long job, once half of it has passed."""
        if self._set_at is not None and self._clock() - self._set_at >= self._expires_min * 30:
            self.acquire()

    def release(self) -> None:
        """Disable protection (best effort: it also expires on its own)."""
        self._set_at = None
        self._put(False)
