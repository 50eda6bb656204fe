"""The S3 adapter against moto: exact-version downloads and compare-and-swap commits.

Includes the fence itself: a holder that was paused between its last lease check and its
write (a zombie) cannot make its bytes the current output once the new holder committed,
and cannot keep them current if it wrote first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from moto import mock_aws

from hevcq.aws.clients import Clients
from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.provision import _create_ledger
from hevcq.aws.s3 import S3Store
from hevcq.errors import CopySourceChanged, FarmConfigError, SupersededJob, WriteConflict
from hevcq.ledger import Claimed, JobKey, State
from hevcq.metadata import META_ATTEMPT
from tests.fakes import present

BUCKET = "media"
KiB = 1024


@pytest.fixture
def clients() -> Iterator[Clients]:
    with mock_aws():
        c = Clients.create(region="us-east-1")
        c.s3.create_bucket(Bucket=BUCKET)
        _create_ledger(c, "ledger")
        yield c


def put(c: Clients, key: str, data: bytes) -> str:
    return c.s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"].strip('"')


@pytest.mark.parametrize("headed", [False, True])
@pytest.mark.parametrize("threshold", [64 * 1024 * KiB, 5 * 1024 * KiB])
def test_download_gets_exactly_the_version_asked_for(
    clients: Clients, tmp_path: Path, threshold: int, headed: bool
) -> None:
    # Both paths: one GET, and ranged GETs through s3transfer (multipart threshold 5 MiB);
    # with and without what the caller already knows of the version (``known``).
    config = TransferConfig(multipart_threshold=threshold, multipart_chunksize=5 * 1024 * KiB)
    store = S3Store(clients.s3, BUCKET, config)
    v1 = b"1" * (6 * 1024 * KiB)
    e1 = put(clients, "TODO/a.mp4", v1)
    known = store.head("TODO/a.mp4") if headed else None
    heads: list[str] = []
    clients.s3.meta.events.register(
        "provide-client-params.s3.HeadObject", lambda params, **_: heads.append(params["Key"])
    )
    got = store.download("TODO/a.mp4", tmp_path / "a", etag=e1, known=known)
    assert (got.etag, (tmp_path / "a").read_bytes() == v1) == (e1, True)
    # A known version fetched by one GET is not headed again; ranged GETs are sized from
    # a HEAD of their own, never from what a caller believes (a result could be wrong).
    assert heads == ([] if headed and len(v1) < threshold else ["TODO/a.mp4"])
    put(clients, "TODO/a.mp4", b"2" * (6 * 1024 * KiB))  # replaced since
    with pytest.raises(SupersededJob):
        store.download("TODO/a.mp4", tmp_path / "b", etag=e1, known=known)
    clients.s3.delete_object(Bucket=BUCKET, Key="TODO/a.mp4")  # gone since
    with pytest.raises(SupersededJob):
        store.download("TODO/a.mp4", tmp_path / "c", etag=e1, known=known)


def test_conditional_put_is_a_compare_and_swap(clients: Clients, tmp_path: Path) -> None:
    store = S3Store(clients.s3, BUCKET)
    f = tmp_path / "out"
    f.write_bytes(b"first")
    first = store.put_if(f, "DONE/hevc/a.mp4", {"hevcq-pool": "hevc"}, expect=None)
    with pytest.raises(WriteConflict):
        store.put_if(f, "DONE/hevc/a.mp4", {}, expect=None)  # not absent any more
    f.write_bytes(b"second")
    second = store.put_if(f, "DONE/hevc/a.mp4", {}, expect=first.etag)
    with pytest.raises(WriteConflict):
        store.put_if(f, "DONE/hevc/a.mp4", {}, expect=first.etag)  # a stale expectation
    assert store.head("DONE/hevc/a.mp4").etag == second.etag
    assert store.delete_if("DONE/hevc/a.mp4", first.etag) is False
    assert store.delete_if("DONE/hevc/a.mp4", second.etag) is True


def test_a_commit_over_an_output_deleted_since_is_a_conflict_not_a_failure(
    clients: Clients, tmp_path: Path
) -> None:
    # fetch deletes outputs it brought home; the ledger still names the old one.
    store = S3Store(clients.s3, BUCKET)
    f = tmp_path / "out"
    f.write_bytes(b"v1")
    old = store.put_if(f, "DONE/hevc/a.mp4", {}, expect=None)
    clients.s3.delete_object(Bucket=BUCKET, Key="DONE/hevc/a.mp4")
    with pytest.raises(WriteConflict):
        store.put_if(f, "DONE/hevc/a.mp4", {}, expect=old.etag)
    assert store.put_if(f, "DONE/hevc/a.mp4", {}, expect=None).etag


def test_a_zombie_cannot_replace_the_new_holders_committed_output(
    clients: Clients, tmp_path: Path
) -> None:
    ledger, store = DynamoLedger(clients.dynamodb, "ledger"), S3Store(clients.s3, BUCKET)
    job = JobKey("TODO/a.mp4", "hevc", "e1", "h")
    zombie = ledger.claim(job, "zombie", "m", 60)
    assert isinstance(zombie, Claimed)
    expect = zombie.lease.output_etag  # what the zombie read before it was paused
    # While it is paused, its lease goes stale and another worker takes over and commits.
    taker = ledger.take_over(job, "taker", "m", 60, present(ledger.get(job.key, job.pool)))
    assert taker is not None
    out = tmp_path / "taker.mp4"
    out.write_bytes(b"taker's output")
    committed = store.put_if(out, "DONE/hevc/a.mp4", {META_ATTEMPT: "taker"}, expect=expect)
    ledger.finish(taker.lease, State.DONE, {"output_etag": committed.etag})
    # The zombie resumes right after its last lease check and writes: refused.
    stale = tmp_path / "zombie.mp4"
    stale.write_bytes(b"zombie's output")
    with pytest.raises(WriteConflict):
        store.put_if(stale, "DONE/hevc/a.mp4", {META_ATTEMPT: "zombie"}, expect=expect)
    current = store.head("DONE/hevc/a.mp4")
    assert current.etag == committed.etag == ledger.get(job.key, job.pool).output_etag


def test_a_missing_farm_bucket_is_a_configuration_fault_not_a_missing_source(
    clients: Clients,
) -> None:
    store = S3Store(clients.s3, BUCKET)
    assert store.head("TODO/none.mp4") is None  # a missing key in an existing bucket
    with pytest.raises(FarmConfigError):
        S3Store(clients.s3, "no-such-bucket").head("TODO/a.mp4")


def test_small_records_round_trip_and_list_by_prefix(clients: Clients) -> None:
    store = S3Store(clients.s3, BUCKET)
    assert store.get_bytes("uploads/x/1.json") is None
    store.put_bytes("uploads/x/1.json", b'{"a": 1}', "application/json")
    store.put_bytes("uploads/x/2.json", b"{}", "application/json")
    store.put_bytes("uploads/y/3.json", b"{}", "application/json")
    assert store.get_bytes("uploads/x/1.json") == b'{"a": 1}'
    assert store.list_keys("uploads/x/") == ["uploads/x/1.json", "uploads/x/2.json"]
    assert store.reachable()
    assert not S3Store(clients.s3, "no-such-bucket").reachable()


def test_presigned_urls_name_the_bucket_key_and_signature(clients: Clients) -> None:
    store = S3Store(clients.s3, BUCKET)
    link = urlsplit(store.presign_get("DONE/hevc/a.mp4", 60))
    assert BUCKET in link.netloc + link.path
    assert link.path.endswith("/DONE/hevc/a.mp4")
    assert {"Signature", "Expires"} <= set(parse_qs(link.query))
    fields = {"x-amz-meta-hevcq-owner": "alice"}
    url, signed = store.presign_post("TODO/u/a.mov", fields, [fields], 60)
    assert BUCKET in url
    assert signed["key"] == "TODO/u/a.mov"
    assert signed["x-amz-meta-hevcq-owner"] == "alice"
    assert signed["x-amz-algorithm"] == "AWS4-HMAC-SHA256"


def test_a_copy_is_made_server_side_with_the_new_outputs_own_metadata(clients: Clients) -> None:
    store = S3Store(clients.s3, BUCKET)
    etag = put(clients, "DONE/hevc/a.mp4", b"encoded once")
    clients.s3.put_object(
        Bucket=BUCKET, Key="DONE/hevc/b.mp4", Body=b"x", Metadata={"hevcq-pool": "hevc"}
    )
    out = store.copy_if(
        "DONE/hevc/a.mp4",
        etag,
        "DONE/1080p/a.1080p.mp4",
        {"hevcq-pool": "1080p", "hevcq-copied-from": "DONE/hevc/a.mp4"},
        expect=None,
    )
    got = clients.s3.get_object(Bucket=BUCKET, Key="DONE/1080p/a.1080p.mp4")
    assert got["Body"].read() == b"encoded once"
    assert got["Metadata"] == {"hevcq-pool": "1080p", "hevcq-copied-from": "DONE/hevc/a.mp4"}
    assert got["ContentType"] == "video/mp4"
    assert out.etag == got["ETag"].strip('"')
    assert out.size == len(b"encoded once")


def test_a_copy_from_a_source_gone_or_changed_is_refused_before_it_starts(
    clients: Clients,
) -> None:
    store = S3Store(clients.s3, BUCKET)
    etag = put(clients, "DONE/hevc/a.mp4", b"encoded once")
    put(clients, "DONE/hevc/a.mp4", b"encoded again")
    with pytest.raises(CopySourceChanged):
        store.copy_if("DONE/hevc/a.mp4", etag, "DONE/1080p/a.mp4", {}, expect=None)
    clients.s3.delete_object(Bucket=BUCKET, Key="DONE/hevc/a.mp4")
    with pytest.raises(CopySourceChanged):
        store.copy_if("DONE/hevc/a.mp4", etag, "DONE/1080p/a.mp4", {}, expect=None)
    assert "Contents" not in clients.s3.list_objects_v2(Bucket=BUCKET, Prefix="DONE/1080p/")


def test_a_copy_larger_than_one_copy_request_goes_in_parts(clients: Clients) -> None:
    config = TransferConfig(multipart_chunksize=5 * 1024 * KiB)
    store = S3Store(clients.s3, BUCKET, config)
    store.max_copy_bytes = 5 * 1024 * KiB  # S3's is 5 GiB
    data = bytes(range(256)) * (11 * 1024 * 4)  # 11 MiB: three parts
    etag = put(clients, "DONE/hevc/a.mp4", data)
    out = store.copy_if(
        "DONE/hevc/a.mp4", etag, "DONE/1080p/a.mp4", {"hevcq-pool": "1080p"}, expect=None
    )
    got = clients.s3.get_object(Bucket=BUCKET, Key="DONE/1080p/a.mp4")
    assert got["Body"].read() == data
    assert got["Metadata"] == {"hevcq-pool": "1080p"}
    assert out.etag == got["ETag"].strip('"')
    assert out.etag.endswith("-3")


def test_an_output_larger_than_one_put_goes_in_parts(clients: Clients, tmp_path: Path) -> None:
    config = TransferConfig(multipart_chunksize=5 * 1024 * KiB)
    store = S3Store(clients.s3, BUCKET, config)
    store.max_put_bytes = 5 * 1024 * KiB  # S3's is 5 GiB
    src = tmp_path / "out.mp4"
    src.write_bytes(bytes(range(256)) * (11 * 1024 * 4))  # 11 MiB: three parts
    out = store.put_if(src, "DONE/hevc/big.mp4", {"hevcq-pool": "hevc"}, expect=None)
    got = clients.s3.get_object(Bucket=BUCKET, Key="DONE/hevc/big.mp4")
    assert got["Body"].read() == src.read_bytes()
    assert got["Metadata"] == {"hevcq-pool": "hevc"}
    assert out.etag == got["ETag"].strip('"')
    assert out.etag.endswith("-3")


def test_moto_does_not_enforce_the_conditions_of_a_copy(clients: Clients) -> None:
    """moto 5.2.5's CopyObject ignores ``x-amz-copy-source-if-match`` and the destination's
    ``If-Match`` / ``If-None-Match``; S3 enforces all three. The conditional copy is
    therefore tested with ``tests.fakes.FakeStore`` and with an S3 client that answers as S3
    does (below). When this test fails, moto enforces them: test them here instead."""
    etag = put(clients, "a", b"one")
    put(clients, "a", b"two")
    put(clients, "b", b"taken")
    clients.s3.copy_object(
        Bucket=BUCKET,
        Key="b",
        CopySource={"Bucket": BUCKET, "Key": "a"},
        CopySourceIfMatch=f'"{etag}"',
        IfNoneMatch="*",
    )
    assert clients.s3.get_object(Bucket=BUCKET, Key="b")["Body"].read() == b"two"


class _S3AnsweringPreconditionFailed:
    """An S3 client whose CopyObject fails its preconditions as S3 does (HTTP 412)."""

    def __init__(self, source_etag: str) -> None:
        self.source_etag = source_etag  # what HEAD of the copy source shows now

    def head_object(self, **kw: str) -> dict[str, object]:
        if kw.get("IfMatch") not in (None, f'"{self.source_etag}"'):
            raise ClientError({"Error": {"Code": "412"}}, "HeadObject")
        return {"ContentLength": 3, "ETag": f'"{self.source_etag}"', "Metadata": {}}

    def copy_object(self, **kw: object) -> dict[str, object]:
        raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "CopyObject")


def test_a_failed_copy_precondition_names_the_side_that_changed() -> None:
    # The source is still the ETag asked for: the destination changed (a compare-and-swap).
    store = S3Store(_S3AnsweringPreconditionFailed("e1"), BUCKET)  # type: ignore[arg-type]
    with pytest.raises(WriteConflict):
        store.copy_if("src", "e1", "dst", {}, expect="old-output")

    class SourceChangesMidway(_S3AnsweringPreconditionFailed):
        def copy_object(self, **kw: object) -> dict[str, object]:
            self.source_etag = "e2"  # overwritten between the HEAD and the copy
            return super().copy_object(**kw)

    store = S3Store(SourceChangesMidway("e1"), BUCKET)  # type: ignore[arg-type]
    with pytest.raises(CopySourceChanged):
        store.copy_if("src", "e1", "dst", {}, expect=None)
