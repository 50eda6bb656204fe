"""A file pool that stores posters (``poster: true``), through a real worker process: each
output is committed with its poster as one, and a new version leaves only its own."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import av
import pytest
import yaml

from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.s3 import S3Store
from hevcq.bundle import POSTER, parts_prefix, token_of
from hevcq.ledger import LedgerItem
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.samples import make_clip
from hevcq.metadata import META_SOURCE_ETAG
from tests.e2e.farmkit import WorkerProc, committed, pool_dir, stack, wait_for

pytestmark = pytest.mark.e2e

KEY = "TODO/trips/beach.mp4"
OUT = "DONE/hevc/trips/beach.mp4"


def poster_pool(tmp: Path) -> Path:
    workers = pool_dir(tmp, ("hevc",), visibility_timeout_s=20)
    doc = yaml.safe_load((workers / "hevc.yaml").read_text())
    doc["poster"] = True
    (workers / "hevc.yaml").write_text(yaml.safe_dump(doc))
    return workers


def item_of(farm) -> LedgerItem | None:
    return DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table).get(KEY, "hevc")


def done_with(farm, etag: str) -> bool:
    item = item_of(farm)
    return item is not None and (item.state, item.etag) == ("done", etag)


def put(farm, body: bytes) -> str:
    resp = farm.clients.s3.put_object(Bucket=farm.refs.bucket, Key=KEY, Body=body)
    return str(resp["ETag"]).strip('"')


def committed_poster(farm, tmp: Path, name: str) -> tuple[str, Path]:
    """The committed output's poster, checked as a reader would: the ledger names the
    output, the output names its attempt and manifest, the manifest the poster's ETag."""
    found = committed(farm, KEY, "hevc", OUT)
    store, token, prefix, manifest = found.store, found.token, found.prefix, found.manifest
    assert [p.path for p in manifest.parts] == [POSTER]
    dest = tmp / f"{name}.jpg"
    store.download(prefix + POSTER, dest, etag=manifest.parts[0].etag)
    head = farm.clients.s3.head_object(Bucket=farm.refs.bucket, Key=prefix + POSTER)
    assert head["ContentType"] == "image/jpeg"
    return token, dest


def item_state(farm, etag: str) -> str | None:
    item = item_of(farm)
    return item.state if item is not None and item.etag == etag else None


def sound_only(path: Path) -> bytes:
    """An MP4 with an audio track and no video."""
    args = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(path)]
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=60,
    )
    return path.read_bytes()


def picture_size(jpeg: Path) -> tuple[int, int]:
    with av.open(str(jpeg)) as c:
        frame = next(c.decode(video=0))
        return frame.width, frame.height


def test_a_poster_pool_commits_each_output_with_its_own_poster(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    v1 = make_clip(clips / "v1.mp4", width=320, height=180, seconds=2.0, fps=24).read_bytes()
    v2 = make_clip(clips / "v2.mp4", width=180, height=320, seconds=1.5, fps=24).read_bytes()
    with stack(tmp_path, poster_pool(tmp_path)) as farm:
        # What a worker killed half-way through its upload left behind.
        crashed = f"{parts_prefix(OUT)}{'0' * 16}/{POSTER}"
        farm.clients.s3.put_object(Bucket=farm.refs.bucket, Key=crashed, Body=b"half")
        worker = WorkerProc(farm, "hevc", tmp_path / "w.log")
        try:
            e1 = put(farm, v1)
            assert wait_for(lambda: done_with(farm, e1), 120), worker.log.read_text()[-3000:]
            first, jpeg = committed_poster(farm, tmp_path, "one")
            assert jpeg.read_bytes()[:2] == b"\xff\xd8"
            assert picture_size(jpeg) == (320, 180)  # the output's own picture
            store = S3Store(farm.clients.s3, farm.refs.bucket)
            assert {token_of(k, OUT) for k in store.list_keys(parts_prefix(OUT))} == {first}

            e2 = put(farm, v2)  # a new version: a new output, a new poster, nothing older
            assert wait_for(lambda: done_with(farm, e2), 120), worker.log.read_text()[-3000:]
            second, jpeg = committed_poster(farm, tmp_path, "two")
            assert picture_size(jpeg) == (180, 320)
            assert second != first
            assert {token_of(k, OUT) for k in store.list_keys(parts_prefix(OUT))} == {second}
            out = store.head(OUT)
            assert out is not None
            assert out.metadata[META_SOURCE_ETAG] == e2

            # The newest version has no video: no output stands, and no poster either.
            e3 = put(farm, sound_only(clips / "v3.mp4"))
            assert wait_for(lambda: item_state(farm, e3) == "skipped", 120)
            assert store.head(OUT) is None
            assert store.list_keys(parts_prefix(OUT)) == []
        finally:
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.proc.wait(60) == 0, worker.log.read_text()[-2000:]
