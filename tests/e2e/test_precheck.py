"""A pool the client decided to skip confirms it from a few ranges and never downloads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hevcq.errors import RetryableError
from hevcq.ledger import JobKey
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.model import Skip
from hevcq.media.samples import make_clip
from hevcq.metadata import (
    META_CLIENT_SETTLED,
    META_CLIENT_SKIPS,
    client_settled_metadata,
    client_skips_metadata,
)
from hevcq.pools import load_farm
from hevcq.worker.precheck import SETTLED_EARLIER, confirmed_skip
from hevcq.worker.runner import JobContext, JobRunner, JobSpec
from tests.conftest import fast_pools
from tests.fakes import FakeStore

pytestmark = pytest.mark.e2e
KEY = "TODO/small.mp4"


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 640x360 source of a few MiB: too small for the 720p pool."""
    path = tmp_path_factory.mktemp("c") / "small.mp4"
    return make_clip(path, width=640, height=360, seconds=40.0, fps=25).read_bytes()


@pytest.fixture
def pools(tmp_path: Path):
    return load_farm(fast_pools(tmp_path))


def _spec(pool, size: int) -> JobSpec:
    key = JobKey(KEY, pool.name, "e1", pool.settings_hash())
    return JobSpec(key, pool, "media", f"DONE/{pool.name}/small.mp4", size)


def test_client_skips_become_metadata() -> None:
    assert client_skips_metadata(["720p", "1080p"]) == {META_CLIENT_SKIPS: "1080p,720p"}
    assert client_skips_metadata([]) == {}


def test_a_skip_decided_by_the_client_is_confirmed_without_a_download(
    tmp_path: Path, pools, small_clip: bytes
) -> None:
    assert len(small_clip) > 4 * 1024 * 1024, "the clip must span several probe blocks"
    store = FakeStore()
    store.add(KEY, etag="e1", data=small_clip, meta={META_CLIENT_SKIPS: "720p,1080p"})
    runner = JobRunner(
        store, ffmpeg=find_ffmpeg(), work_dir=tmp_path / "w", worker_id="w", stall_timeout_s=30
    )
    result = runner.run(_spec(pools["720p"], len(small_clip)), JobContext())
    assert result.outcome == "skipped"
    assert "smaller than 720p" in (result.reason or "")
    assert store.downloads == []
    assert 0 < store.range_bytes < len(small_clip) // 2


def test_without_the_client_s_word_the_worker_downloads(pools, small_clip: bytes) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=small_clip)
    assert confirmed_skip(store, KEY, "e1", pools["720p"]) is None
    assert store.range_bytes == 0


def test_a_client_skip_the_pool_does_not_share_falls_back_to_the_download(
    pools, small_clip: bytes
) -> None:
    # The hevc pool encodes 640x360: a stale or wrong client skip must not lose the job.
    store = FakeStore()
    store.add(KEY, etag="e1", data=small_clip, meta={META_CLIENT_SKIPS: "hevc"})
    assert confirmed_skip(store, KEY, "e1", pools["hevc"]) is None


def test_a_store_whose_ranged_reads_fail_is_left_to_the_download(pools, small_clip: bytes) -> None:
    store = FakeStore(fail={KEY: RetryableError("SlowDown")})
    store.add(KEY, etag="e1", data=small_clip, meta={META_CLIENT_SKIPS: "720p"})
    assert confirmed_skip(store, KEY, "e1", pools["720p"]) is None


def test_pools_settled_earlier_become_metadata() -> None:
    assert client_settled_metadata(["hevc", "1080p"]) == {META_CLIENT_SETTLED: "1080p,hevc"}
    assert client_settled_metadata([]) == {}


def test_a_pool_the_client_settled_earlier_skips_without_reading_the_source(
    tmp_path: Path, pools, small_clip: bytes
) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=small_clip, meta={META_CLIENT_SETTLED: "hevc"})
    runner = JobRunner(
        store, ffmpeg=find_ffmpeg(), work_dir=tmp_path / "w", worker_id="w", stall_timeout_s=30
    )
    result = runner.run(_spec(pools["hevc"], len(small_clip)), JobContext())
    assert result.outcome == "skipped"
    assert result.reason == SETTLED_EARLIER
    assert store.downloads == []
    assert store.range_bytes == 0


def test_the_settled_word_of_another_version_is_not_taken(pools, small_clip: bytes) -> None:
    # The job names version e0; the object now holds e1, whose metadata says "settled".
    store = FakeStore()
    store.add(KEY, etag="e1", data=small_clip, meta={META_CLIENT_SETTLED: "hevc"})
    assert confirmed_skip(store, KEY, "e0", pools["hevc"]) is None
    assert confirmed_skip(store, KEY, "e1", pools["hevc"]) == Skip(SETTLED_EARLIER)


def test_a_pool_not_named_as_settled_still_encodes(pools, small_clip: bytes) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=small_clip, meta={META_CLIENT_SETTLED: "720p"})
    assert confirmed_skip(store, KEY, "e1", pools["hevc"]) is None


@pytest.mark.parametrize("meta", [{}, {META_CLIENT_SETTLED: "hevc"}])
def test_the_head_the_worker_made_before_claiming_is_not_made_again(
    tmp_path: Path, pools, small_clip: bytes, meta: dict[str, str]
) -> None:
    store = FakeStore()
    store.add(KEY, etag="e1", data=small_clip, meta=meta)
    found = store.head(KEY)
    store.heads.clear()
    spec = dataclasses.replace(_spec(pools["hevc"], len(small_clip)), source=found)
    runner = JobRunner(
        store, ffmpeg=find_ffmpeg(), work_dir=tmp_path / "w", worker_id="w", stall_timeout_s=30
    )
    result = runner.run(spec, JobContext())
    assert result.outcome == ("skipped" if meta else "done")
    assert KEY not in store.heads  # only the output's key is headed
    assert [known for _, known in store.downloads] == ([] if meta else [found])
