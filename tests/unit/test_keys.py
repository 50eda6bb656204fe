"""Key mapping between the library, TODO/ and DONE/<pool>/."""

from __future__ import annotations

import pytest

from hevcq.errors import PermanentError
from hevcq.keys import done_key, output_extension, source_relative, todo_key


@pytest.mark.parametrize(
    ("rel", "pool", "suffix", "expected"),
    [
        ("a.mp4", "hevc", "", "DONE/hevc/a.mp4"),
        ("trip/IMG_0042.MOV", "hevc", "", "DONE/hevc/trip/IMG_0042.mp4"),
        ("trip/IMG_0042.MOV", "720p", ".720p", "DONE/720p/trip/IMG_0042.720p.mp4"),
        ("films/movie.mkv", "hevc", "", "DONE/hevc/films/movie.mkv"),
        ("films/Movie.MKV", "1080p", ".1080p", "DONE/1080p/films/Movie.1080p.mkv"),
        ("été 🎥/my clip #1 & 100%.m4v", "hevc", "", "DONE/hevc/été 🎥/my clip #1 & 100%.mp4"),
        ("-dash.avi", "hevc", "", "DONE/hevc/-dash.mp4"),
        ("archive.tar.ts", "hevc", "", "DONE/hevc/archive.tar.mp4"),
    ],
)
def test_done_key(rel: str, pool: str, suffix: str, expected: str) -> None:
    assert done_key(todo_key(rel), pool, suffix) == expected


def test_round_trip_of_relative_paths() -> None:
    assert source_relative(todo_key("a/b/c.mp4")) == "a/b/c.mp4"
    assert todo_key("./a//b/./c.mp4") == "TODO/a/b/c.mp4"
    assert todo_key("a\\b.mp4") == "TODO/a/b.mp4"


@pytest.mark.parametrize(
    "rel", ["", "..", "../etc/passwd", "a/../../b.mp4", "a/\x00.mp4", "x" * 1100]
)
def test_unusable_paths_are_refused(rel: str) -> None:
    with pytest.raises(PermanentError):
        todo_key(rel)


@pytest.mark.parametrize("key", ["DONE/hevc/a.mp4", "a.mp4", "TODO/", "TODO/dir/", "TODO/../x.mp4"])
def test_keys_outside_todo_are_refused(key: str) -> None:
    with pytest.raises(PermanentError):
        done_key(key, "hevc")


@pytest.mark.parametrize(
    ("name", "ext"), [("a.mkv", ".mkv"), ("a.WEBM", ".mkv"), ("a.mov", ".mp4")]
)
def test_output_extension(name: str, ext: str) -> None:
    assert output_extension(name) == ext
