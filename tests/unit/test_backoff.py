"""Retry delays."""

from __future__ import annotations

import random

import pytest

from hevcq.backoff import retry_delay


@pytest.mark.parametrize(("count", "expected"), [(1, 30), (2, 60), (3, 120), (4, 240), (10, 900)])
def test_doubles_and_caps_without_jitter(count: int, expected: int) -> None:
    assert retry_delay(count, jitter=0) == expected


def test_jitter_stays_within_bounds() -> None:
    rnd = random.Random(7)
    delays = {retry_delay(3, rand=rnd) for _ in range(200)}
    assert min(delays) >= 96
    assert max(delays) <= 144
    assert len(delays) > 10
