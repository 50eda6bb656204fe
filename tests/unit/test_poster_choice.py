"""Which sampled frame becomes the poster: the most detailed one that is neither near
black nor blown out."""

from __future__ import annotations

from hevcq.media.poster import Candidate, choose, grey_stats


def test_a_dark_fade_in_loses_to_a_lit_frame_with_less_detail() -> None:
    fade = Candidate(0.8, mean=20.0, contrast=90.0)  # the fade's noise: contrast, no light
    lit = Candidate(4.0, mean=120.0, contrast=40.0)
    assert choose([fade, lit]) == lit


def test_among_lit_frames_the_most_detailed_wins() -> None:
    flat = Candidate(2.0, mean=120.0, contrast=5.0)  # a title card
    busy = Candidate(5.0, mean=110.0, contrast=60.0)
    white = Candidate(6.0, mean=250.0, contrast=80.0)  # blown out
    assert choose([flat, white, busy]) == busy


def test_a_video_with_no_lit_frame_still_gets_its_most_detailed_one() -> None:
    night = [Candidate(1.0, 10.0, 3.0), Candidate(2.0, 12.0, 9.0)]
    assert choose(night) == night[1]
    assert choose([]) is None


def test_grey_stats() -> None:
    assert grey_stats(bytes([0, 255] * 50)) == (127.5, 127.5)
    assert grey_stats(b"") == (0.0, 0.0)
