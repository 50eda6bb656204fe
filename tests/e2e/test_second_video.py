"""A source with a second picture: a dual dashcam's recording, the road and the cabin as
two video tracks of one MP4. The worker's output keeps the cabin's track, copied as it
is, so the output may stand in for the original; a rendition leaves it out."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import av
import pytest

from hevcq.keys import done_key
from hevcq.ledger import JobKey
from hevcq.library.quarantine import verify_replacement
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.pools import Pool, load_farm
from hevcq.worker.runner import JobContext, JobRunner, JobSpec
from tests.fakes import FakeStore

pytestmark = pytest.mark.e2e

KEY = "TODO/2026_0101_120000_FR.MP4"


def _recorded(dest: Path, road: str) -> Path:
    """4 s: the road at ``road``, the cabin at 320x180 (both H.264), and sound."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error"]
    args += ["-f", "lavfi", "-i", f"testsrc2=size={road}:rate=30:duration=4"]
    args += ["-f", "lavfi", "-i", "smptebars=size=320x180:rate=30:duration=4"]
    args += ["-f", "lavfi", "-i", "sine=duration=4", "-map", "0", "-map", "1", "-map", "2"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(dest)]
    subprocess.run(args, check=True)
    return dest


@pytest.fixture(scope="module")
def dashcam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _recorded(tmp_path_factory.mktemp("cam") / "trip.mp4", "640x360")


def _encoded(tmp_path: Path, src: Path, name: str) -> Path:
    pool: Pool = load_farm()[name]
    pool = pool.model_copy(
        update={"encode": pool.encode.model_copy(update={"preset": "ultrafast"})}
    )
    data = src.read_bytes()
    store = FakeStore()
    store.add(KEY, etag="e1", data=data)
    out_key = done_key(KEY, name, pool.output_suffix, extension=pool.fixed_extension)
    spec = JobSpec(JobKey(KEY, name, "e1", pool.settings_hash()), pool, "media", out_key,
                   len(data))  # fmt: skip
    runner = JobRunner(
        store, ffmpeg=find_ffmpeg(), work_dir=tmp_path / "w", worker_id="w", stall_timeout_s=60
    )
    result = runner.run(spec, JobContext())
    assert result.outcome == "done", result.reason
    out = tmp_path / f"{name}.mp4"
    out.write_bytes(store.data[out_key])
    return out


def _pictures(path: Path) -> list[tuple[str, int]]:
    with av.open(str(path)) as f:
        return [(s.codec_context.name, s.codec_context.width) for s in f.streams.video]


def _packets(path: Path, index: int) -> str:
    digest = hashlib.sha256()
    with av.open(str(path)) as f:
        for packet in f.demux(f.streams.video[index]):
            digest.update(bytes(packet))
    return digest.hexdigest()


def test_the_cabins_picture_is_kept_as_it_is_and_the_output_may_replace_the_original(
    tmp_path: Path, dashcam: Path
) -> None:
    # It was left out: the output held the road alone, and `fetch --replace` refused it
    # for good ("stream counts differ: (video, audio) (1, 1) vs original (2, 1)").
    out = _encoded(tmp_path, dashcam, "hevc")
    assert _pictures(out) == [("hevc", 640), ("h264", 320)]
    assert _packets(out, 1) == _packets(dashcam, 1)  # copied, not encoded again
    verify_replacement(out, dashcam, allow_larger=True)


def test_a_rendition_plays_the_main_picture_alone(tmp_path: Path) -> None:
    src = _recorded(tmp_path / "trip.mp4", "1920x1080")
    out = _encoded(tmp_path, src, "720p")
    assert _pictures(out) == [("hevc", 1280)]
