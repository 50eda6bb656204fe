"""An MPEG-TS recording whose programme map changes partway: at a programme boundary the
broadcaster moves the picture and sound to other PIDs, and the file lists streams it did
not list at its start. PyAV raised ``IndexError`` at the end of every read of such a file
(``internal error`` on every try), and no encode reads the new streams: ffmpeg maps
streams when it opens a file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hevcq.errors import PermanentError
from hevcq.library.quarantine import ReplaceRefused, verify_replacement
from hevcq.media.demuxers import open_input
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.probe import probe
from hevcq.media.soundshape import changing_sound
from hevcq.media.splice import moved_picture, refuse_moved_picture, spliced_video_span
from hevcq.media.verify import decode_video, sound_seconds
from hevcq.pools import Pool
from tests.e2e.test_crfsearch import run_job

pytestmark = pytest.mark.e2e


def _part(path: Path, at: float, *pids: str) -> bytes:
    subprocess.run(
        [
            *(find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"),
            *("-f", "lavfi", "-i", "sine=duration=4"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"),
            *("-output_ts_offset", str(at), *pids, "-f", "mpegts", str(path)),
        ],
        check=True,
    )
    return path.read_bytes()


NEW_MAP = ("-mpegts_start_pid", "0x200", "-mpegts_pmt_start_pid", "0x1100")
NEW_PIDS = ("-mpegts_start_pid", "0x200")


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s on the default PIDs, then 4 s on others under another programme map."""
    folder = tmp_path_factory.mktemp("moved")
    recording = folder / "recording.ts"
    recording.write_bytes(_part(folder / "a.ts", 0) + _part(folder / "b.ts", 4, *NEW_MAP))
    return recording


@pytest.mark.parametrize("order", ["first, then second", "second, then first"])
def test_a_picture_that_moves_to_a_listed_stream_is_refused(tmp_path: Path, order: str) -> None:
    """The same programme map, new PIDs: a file of two picture streams, each for half of
    it. An encode reads the first listed, and its output lacked the other half."""
    first, second = _part(tmp_path / "a.ts", 0), _part(tmp_path / "b.ts", 4, *NEW_PIDS)
    recording = tmp_path / "recording.ts"
    recording.write_bytes(first + second if order == "first, then second" else second + first)
    assert len(probe(recording).video) == 2
    with pytest.raises(PermanentError, match=r"its streams change partway"):
        refuse_moved_picture(recording)


def test_every_read_of_a_file_whose_streams_grow_ends_cleanly(moved: Path) -> None:
    info = probe(moved)
    assert [v.index for v in info.video] + [a.index for a in info.audio] == [0, 1]  # listed
    assert spliced_video_span(moved, 0) is None
    assert changing_sound(moved, info) == info
    assert sound_seconds(moved)[1] == pytest.approx(4.0, abs=0.1)
    assert decode_video(moved).frames == 100
    with open_input(str(moved)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 100


def test_a_recording_whose_streams_move_partway_fails_with_the_reason(
    tmp_path: Path, moved: Path
) -> None:
    """Its encode would end where the programme map changed, and verify, against a header
    that lists only the first streams: a "done" output of half the recording."""
    pool = Pool.model_validate(
        {"name": "q", "applies": {"source_codecs": ["h264"]}, "encode": {"preset": "ultrafast"}}
    )
    with pytest.raises(
        PermanentError,
        match=r"its streams change partway: 0\.\d MiB of it hold its picture in other",
    ):
        run_job(tmp_path, moved, pool)


def test_an_output_of_its_first_streams_may_not_replace_it(tmp_path: Path, moved: Path) -> None:
    first = tmp_path / "first.mp4"
    encode = ("-c:v", "libx265", "-preset", "ultrafast", "-c:a", "copy", str(first))
    subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(moved), *encode], check=True)
    with pytest.raises(ReplaceRefused, match=r"the original: its streams change partway"):
        verify_replacement(first, moved, allow_larger=True)


def test_a_recording_that_keeps_its_streams_is_not_refused(tmp_path: Path) -> None:
    whole = tmp_path / "whole.ts"
    whole.write_bytes(_part(tmp_path / "a.ts", 0) + _part(tmp_path / "b.ts", 4))
    assert moved_picture(whole) < 4096
    refuse_moved_picture(whole)
    # Two pictures side by side throughout (a second angle, a signer): nothing moves.
    both = tmp_path / "both.ts"
    subprocess.run(
        [
            *(find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"),
            *("-f", "lavfi", "-i", "testsrc=size=160x90:rate=25:duration=4"),
            *("-map", "0", "-map", "1", "-c:v", "libx264", "-preset", "ultrafast", str(both)),
        ],
        check=True,
    )
    assert len(probe(both).video) == 2
    refuse_moved_picture(both)
