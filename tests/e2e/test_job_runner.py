"""The job runner with a fake store and the real ffmpeg: outputs, metadata, scratch hygiene."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import av
import pytest
from structlog.testing import capture_logs

from hevcq.errors import InterruptedJob, PermanentError, WorkerCannotRun
from hevcq.ledger import PHASES, JobKey
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.samples import make_clip
from hevcq.metadata import META_SETTINGS, META_SOURCE_ETAG, META_SOURCE_KEY
from hevcq.pools import load_farm
from hevcq.worker.runner import JobContext, JobRunner, JobSpec, check_scratch
from tests.conftest import fast_pools
from tests.fakes import FakeStore

pytestmark = pytest.mark.e2e
KEY = "TODO/a.mp4"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("c") / "clip.mp4"
    return make_clip(path, width=160, height=90, seconds=0.5, fps=10).read_bytes()


@pytest.fixture
def pool(tmp_path: Path):
    return load_farm(fast_pools(tmp_path))["hevc"]


def spec_for(pool, size: int, etag: str = "e1") -> JobSpec:
    return JobSpec(
        JobKey(KEY, "hevc", etag, pool.settings_hash()), pool, "media", "DONE/hevc/a.mp4", size
    )


def runner(store: FakeStore, work: Path) -> JobRunner:
    return JobRunner(store, ffmpeg=find_ffmpeg(), work_dir=work, worker_id="w", stall_timeout_s=30)


def test_done_job_uploads_with_source_and_settings_metadata(tmp_path, pool, clip) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=clip)
    ctx = JobContext()
    result = runner(store, tmp_path / "work").run(spec_for(pool, len(clip)), ctx)
    assert result.outcome == "done"
    assert list(ctx.timings) == list(PHASES)  # every step timed, for the job's ledger item
    assert all(v >= 0 for v in ctx.timings.values())
    meta = store.objects["DONE/hevc/a.mp4"].metadata
    assert meta[META_SOURCE_KEY] == KEY
    assert meta[META_SOURCE_ETAG] == "e1"
    assert meta[META_SETTINGS] == pool.settings_hash()
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize("during", [True, False])
def test_both_ways_of_verifying_give_the_same_output(tmp_path, pool, clip, during) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=clip)
    r = JobRunner(
        store,
        ffmpeg=find_ffmpeg(),
        work_dir=tmp_path / "work",
        worker_id="w",
        stall_timeout_s=30,
        decode_during_encode=during,
    )
    with capture_logs() as logs:
        assert r.run(spec_for(pool, len(clip)), JobContext()).outcome == "done"
    finished = [e for e in logs if e["event"] == "transcode_finished"]
    assert [e["teed"] for e in finished] == [during]
    assert store.objects["DONE/hevc/a.mp4"].size > 0
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize(
    ("policy", "how"),
    [("stream", "stream, first frames; file, ends"), ("full", "stream, every frame")],
)
def test_the_pools_verify_policy_decides_what_is_decoded(tmp_path, pool, clip, policy, how):
    store = FakeStore()
    store.add(KEY, etag="e1", data=clip)
    checked = pool.model_copy(update={"verify": policy})
    with capture_logs() as logs:
        result = runner(store, tmp_path / "work").run(spec_for(checked, len(clip)), JobContext())
    assert result.outcome == "done"
    assert [e["how"] for e in logs if e["event"] == "output_decoded"] == [how]


def test_existing_current_output_means_no_new_encode(tmp_path, pool, clip) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=clip)
    r = runner(store, tmp_path / "work")
    r.run(spec_for(pool, len(clip)), JobContext())
    again = r.run(spec_for(pool, len(clip)), JobContext())
    assert store.uploads == ["DONE/hevc/a.mp4"]
    assert again.reason == "output already up to date"


def test_output_of_another_source_is_never_overwritten(tmp_path, pool, clip) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=clip)
    store.add("DONE/hevc/a.mp4", meta={META_SOURCE_KEY: "TODO/a.mov"})
    with pytest.raises(PermanentError, match=r"already holds the output of TODO/a\.mov"):
        runner(store, tmp_path / "work").run(spec_for(pool, len(clip)), JobContext())
    assert store.uploads == []


@pytest.mark.parametrize("data", [b"", b"not a video at all" * 100])
def test_scratch_is_removed_when_a_job_fails(tmp_path, pool, data) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=data)
    with pytest.raises(PermanentError):
        runner(store, tmp_path / "work").run(spec_for(pool, len(data)), JobContext())
    assert list((tmp_path / "work").iterdir()) == []


def test_scratch_is_removed_and_nothing_uploaded_when_cancelled(tmp_path, pool, clip) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=clip)
    ctx = JobContext(cancel=threading.Event())
    ctx.cancel.set()
    with pytest.raises(InterruptedJob):
        runner(store, tmp_path / "work").run(spec_for(pool, len(clip)), ctx)
    assert store.uploads == []
    assert list((tmp_path / "work").iterdir()) == []


def test_not_enough_scratch_space_is_retryable(tmp_path) -> None:
    with pytest.raises(WorkerCannotRun, match="not enough scratch space"):
        check_scratch(tmp_path, source_size=10**18)
    check_scratch(tmp_path, source_size=1000)  # a small job fits


def with_cover(clip: Path, dest: Path, picture: Path) -> Path:
    """``clip`` with ``picture`` as its cover: an attached picture in MP4, an image
    attachment (``cover.png``) in Matroska."""
    args = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(clip)]
    if dest.suffix == ".mkv":
        args += ["-map", "0", "-c", "copy", "-attach", str(picture)]
        args += ["-metadata:s:t:0", "mimetype=image/png", "-metadata:s:t:0", "filename=cover.png"]
    else:
        args += ["-i", str(picture), "-map", "0", "-map", "1", "-c", "copy"]
        args += ["-disposition:v:1", "attached_pic"]
    subprocess.run([*args, str(dest)], check=True)
    return dest


def covers(path: Path) -> list[tuple[bytes, str]]:
    """Each cover picture of a file: its bytes and the name it is attached under."""
    found = []
    with av.open(str(path)) as container:
        for stream in container.streams.video:
            if stream.disposition & av.stream.Disposition.attached_pic:
                name = {k.lower(): v for k, v in stream.metadata.items()}.get("filename", "")
                found.append((bytes(next(container.demux(stream))), name))
    return found


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_cover_art_is_kept_byte_for_byte(tmp_path, pool, suffix) -> None:
    """A library's files with cover art (an MP4's cover, a Matroska ``cover.png``) keep
    it when their HEVC copy replaces them."""
    picture = tmp_path / "cover.png"
    run = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=64x64"]
    subprocess.run([*run, "-frames:v", "1", str(picture)], check=True)
    plain = make_clip(tmp_path / f"plain{suffix}", width=160, height=90, seconds=0.5, fps=10)
    source = with_cover(plain, tmp_path / f"a{suffix}", picture)
    assert covers(source) == [(picture.read_bytes(), "cover.png" if suffix == ".mkv" else "")]
    store = FakeStore()
    key, output_key = f"TODO/a{suffix}", f"DONE/hevc/a{suffix}"
    store.add(key, etag="e1", data=source.read_bytes())
    job = JobKey(key, "hevc", "e1", pool.settings_hash())
    spec = JobSpec(job, pool, "media", output_key, source.stat().st_size)
    result = runner(store, tmp_path / "work").run(spec, JobContext())
    assert result.outcome == "done", result.reason
    output = tmp_path / f"output{suffix}"
    output.write_bytes(store.data[output_key])
    assert covers(output) == covers(source)
    assert list((tmp_path / "work").iterdir()) == []
