"""Retry delays as pure functions, and the retry policy for whole operations."""

from __future__ import annotations

import random

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from hevcq.errors import RetryableError
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


# Whole operations (a transfer, a publish) retried on top of botocore's per-request retries:
# a multipart upload that dies half-way is restarted as a whole.
retry_transient = retry(
    retry=retry_if_exception_type(RetryableError),
    wait=wait_exponential_jitter(initial=1, max=20),
    stop=stop_after_attempt(4),
    reraise=True,
)
