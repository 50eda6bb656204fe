"""Time left at the pace so far: the one estimate behind every "about N left" hevcq shows
(a running job, an ingest's whole library) and the worker's shutdown grace."""

from __future__ import annotations

MIN_PERCENT = 1.0  # below this, the pace says nothing yet


def time_left_s(elapsed_s: float, percent: float) -> float | None:
    """Seconds left of work ``percent`` done in ``elapsed_s``; None before 1% or after 100%."""
    if percent < MIN_PERCENT or percent >= 100:
        return None
    return elapsed_s * (100 - percent) / percent
