"""Retry delays, as pure functions."""

from __future__ import annotations

import random

from hevcq.limits import MAX_VISIBILITY_TIMEOUT_S


def retry_delay(
    receive_count: int,
    *,
    base_s: float = 30.0,
    cap_s: float = 900.0,
    jitter: float = 0.2,
    rand: random.Random | None = None,
) -> int:
    """Seconds to keep a failed message hidden before its next try: doubling, capped, jittered.

    Jitter spreads retries of many jobs that failed together (a throttled endpoint).
    """
    n = max(1, receive_count)
    delay = min(cap_s, base_s * 2 ** (n - 1))
    r = (rand or random).uniform(1 - jitter, 1 + jitter)
    return int(max(0, min(MAX_VISIBILITY_TIMEOUT_S, delay * r)))
