"""The tunables of one worker."""

from __future__ import annotations

from dataclasses import dataclass

from hevcq.limits import MAX_WAIT_TIME_S


@dataclass(frozen=True)
class WorkerConfig:
    """Tunables of one worker."""

    worker_id: str
    bucket: str
    poll_wait_s: int = MAX_WAIT_TIME_S
    lease_s: int = 240
    shutdown_grace_s: float = 60.0
    max_jobs: int | None = None
    idle_exit_s: float | None = None  # burst mode: exit after this long with no message
    heartbeat_max_sleep_s: float = 5.0
    # A running job's progress reaches the ledger with each lease renewal; renewing at least
    # this often keeps the figures that `status`, the live view and the dashboard show fresh.
    progress_every_s: float = 10.0
