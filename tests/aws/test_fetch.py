"""fetch against moto: the real results queue, bucket and ledger table."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.s3 import S3Store
from hevcq.aws.sqs import SqsInbox
from hevcq.library.catalog import Catalog, library_id
from hevcq.library.fetch import Fetcher, FetchOptions, fetch_library
from hevcq.library.scan import scan
from hevcq.library.upload import recorder, to_upload, upload_all
from hevcq.media.model import AudioStream, MediaInfo, VideoStream
from hevcq.messages import JobResult
from tests.aws.conftest import MotoFarm

OUTPUT = b"an hevc output " * 20


def probe_any(path: Path) -> MediaInfo:
    video = (VideoStream(0, "h264", 1920, 1080, "yuv420p", 8),)
    return MediaInfo("mov,mp4", 3.0, path.stat().st_size, video, (AudioStream(1, "aac"),))


def accept(candidate: Path, original: Path, allow_larger: bool) -> None:
    """Byte-level stand-in for the media verifier (which has its own tests with real clips)."""


@pytest.fixture
def uploaded(moto_farm: MotoFarm, tmp_path: Path):
    """A one-file library scanned and uploaded to the moto bucket."""
    root = tmp_path / "lib"
    root.mkdir()
    (root / "clip.mp4").write_bytes(b"h264 source " * 50)
    store = S3Store(moto_farm.clients.s3, moto_farm.refs.bucket)
    with Catalog(tmp_path / "state.sqlite3") as state:
        # As an ingest naming no pools: the pools on by default (the hls pool is not).
        pools = [p for p in moto_farm.pools.values() if p.default]
        report = scan(root, pools, state, probe_fn=probe_any)
        [up] = upload_all(store, root, to_upload(report), library_id(root), on_done=recorder(state))
        yield root, state, store, up.key


def _out_key(pool: str) -> str:
    return f"DONE/{pool}/clip{'' if pool == 'hevc' else '.' + pool}.mp4"


def _ledger(farm: MotoFarm, key: str, pool: str, state: str, etag: str) -> None:
    """A ledger item as a worker leaves it; a done one names its committed output."""
    out = _out_key(pool)
    item = {
        "pk": {"S": key},
        "sk": {"S": pool},
        "state": {"S": state},
        "etag": {"S": etag},
        "output_key": {"S": out},
    }
    listed = farm.clients.s3.list_objects_v2(Bucket=farm.refs.bucket, Prefix=out)
    for obj in listed.get("Contents", []) if state == "done" else []:
        item["output_etag"] = {"S": obj["ETag"].strip('"')}
        item["output_bytes"] = {"N": str(obj["Size"])}
    farm.clients.dynamodb.put_item(TableName=farm.refs.ledger_table, Item=item)


def _publish(farm: MotoFarm, result: JobResult) -> None:
    farm.clients.sqs.send_message(
        QueueUrl=farm.refs.results_queue_url, MessageBody=result.model_dump_json()
    )


def _result(pool: str, key: str, etag: str, outcome: str = "done") -> JobResult:
    out = _out_key(pool)
    return JobResult(
        job_id="j",
        pool=pool,
        bucket="b",
        source_key=key,
        source_etag=etag,
        outcome=outcome,
        output_key=out if outcome == "done" else None,
    )


def _fetch(
    farm: MotoFarm, root: Path, state: Catalog, store: S3Store, *, pools: set[str], out: Path
) -> list:
    ledger = DynamoLedger(farm.clients.dynamodb, farm.refs.ledger_table)
    opts = FetchOptions(pools=frozenset(pools), out_dir=out)
    fetcher = Fetcher(
        root,
        state,
        store,
        ledger,
        opts,
        all_pools=sorted(farm.pools),
        library=library_id(root),
        verify=accept,
    )
    inbox = SqsInbox(farm.clients.sqs, farm.refs.results_queue_url)
    return fetch_library(inbox, fetcher, follow=False, stop=threading.Event())


def _visible(farm: MotoFarm) -> list[str]:
    resp = farm.clients.sqs.receive_message(
        QueueUrl=farm.refs.results_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return sorted(JobResult.model_validate_json(m["Body"]).pool for m in resp.get("Messages", []))


def test_fetch_takes_its_pool_leaves_others_and_cleans_up_in_order(
    moto_farm: MotoFarm, uploaded, tmp_path: Path
) -> None:
    root, state, store, key = uploaded
    s3, bucket = moto_farm.clients.s3, moto_farm.refs.bucket
    etag = store.head(key).etag
    for pool in ("hevc", "720p"):
        out = _result(pool, key, etag).output_key
        assert out is not None
        s3.put_object(Bucket=bucket, Key=out, Body=OUTPUT)
    _ledger(moto_farm, key, "1080p", "skipped", etag)
    _ledger(moto_farm, key, "hevc", "done", etag)
    _ledger(moto_farm, key, "720p", "running", etag)
    _publish(moto_farm, _result("hevc", key, etag))
    _publish(moto_farm, _result("720p", key, etag))
    # Another library's result for the same pool: its source carries another library id.
    s3.put_object(
        Bucket=bucket, Key="TODO/theirs.mp4", Body=b"x", Metadata={"hevcq-library": "someone-else"}
    )
    _publish(moto_farm, _result("hevc", "TODO/theirs.mp4", "e"))

    out_dir = tmp_path / "out"
    got = _fetch(moto_farm, root, state, store, pools={"hevc"}, out=out_dir)
    assert [(f.pool, f.action) for f in got] == [("hevc", "placed")]
    assert (out_dir / "hevc/clip.mp4").read_bytes() == OUTPUT
    assert store.head("DONE/hevc/clip.mp4") is None
    assert store.head(key) is not None  # 720p is still running: the source stays
    assert _visible(moto_farm) == ["720p", "hevc"]  # left for their owners, visible at once

    _ledger(moto_farm, key, "720p", "done", etag)
    got = _fetch(moto_farm, root, state, store, pools={"720p"}, out=out_dir)
    assert [(f.pool, f.action, f.source_deleted) for f in got] == [("720p", "placed", True)]
    assert store.head(key) is None
    assert store.head("DONE/720p/clip.720p.mp4") is None
    assert _visible(moto_farm) == ["hevc"]  # only the other library's result is left


def test_a_failed_job_keeps_the_source_in_the_bucket(moto_farm: MotoFarm, uploaded, tmp_path):
    root, state, store, key = uploaded
    etag = store.head(key).etag
    moto_farm.clients.s3.put_object(
        Bucket=moto_farm.refs.bucket, Key="DONE/hevc/clip.mp4", Body=OUTPUT
    )
    _ledger(moto_farm, key, "1080p", "done", etag)
    _ledger(moto_farm, key, "720p", "failed", etag)
    _ledger(moto_farm, key, "hevc", "done", etag)
    _publish(moto_farm, _result("720p", key, etag, "failed"))
    _publish(moto_farm, _result("hevc", key, etag))
    got = _fetch(moto_farm, root, state, store, pools={"hevc", "720p"}, out=tmp_path / "out")
    assert sorted((f.pool, f.action) for f in got) == [("720p", "failed"), ("hevc", "placed")]
    assert store.head(key) is not None
    assert state.decisions("clip.mp4")["720p"].outcome == "failed"


def test_uploads_are_multipart_with_metadata_and_resume_by_head(moto_farm: MotoFarm, tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    big = root / "big.mp4"
    big.write_bytes(b"\0" * (11 << 20) + b"tail")
    small = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    store = S3Store(moto_farm.clients.s3, moto_farm.refs.bucket, small)
    seen: list[int] = []

    class Count:
        def begin(self, files: int, total_bytes: int) -> None: ...
        def advance(self, nbytes: int) -> None:
            seen.append(nbytes)

        def file_done(self, up) -> None: ...
        def end(self) -> None: ...

    with Catalog(tmp_path / "s.sqlite3") as state:
        # As an ingest naming no pools: the pools on by default (the hls pool is not).
        pools = [p for p in moto_farm.pools.values() if p.default]
        report = scan(root, pools, state, probe_fn=probe_any)
        [up] = upload_all(store, root, to_upload(report), "lib", progress=Count())
        assert up.sent
        head = moto_farm.clients.s3.head_object(Bucket=moto_farm.refs.bucket, Key="TODO/big.mp4")
        assert head["ETag"].strip('"').endswith("-3")  # three parts
        assert head["Metadata"]["hevcq-rel-path"] == "big.mp4"
        assert head["Metadata"]["hevcq-size"] == str(big.stat().st_size)
        assert head["Metadata"]["hevcq-content-hash"] == report.entries[0].fingerprint
        assert sum(seen) == big.stat().st_size
        [again] = upload_all(store, root, to_upload(report), "lib")
        assert not again.sent


def test_an_output_appended_to_after_its_commit_is_refused_not_placed(
    moto_farm: MotoFarm, uploaded, tmp_path: Path
) -> None:
    root, state, store, key = uploaded
    s3, bucket = moto_farm.clients.s3, moto_farm.refs.bucket
    etag = store.head(key).etag
    s3.put_object(Bucket=bucket, Key="DONE/hevc/clip.mp4", Body=OUTPUT)
    _ledger(moto_farm, key, "hevc", "done", etag)
    # Whoever may write DONE/hevc/ puts a payload behind the committed video, then
    # publishes a result that names no ETag (or the committed one).
    s3.put_object(Bucket=bucket, Key="DONE/hevc/clip.mp4", Body=OUTPUT + b"ssh-ed25519 AAAA x\n")
    _publish(moto_farm, _result("hevc", key, etag))
    out_dir = tmp_path / "out"
    got = _fetch(moto_farm, root, state, store, pools={"hevc"}, out=out_dir)
    assert [(f.pool, f.action) for f in got] == [("hevc", "refused")]
    assert "differs from the one the ledger committed" in got[0].reason
    assert not out_dir.exists()
