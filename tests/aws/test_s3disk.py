"""moto's S3 with bytes on disk: ranged GETs read the range, multipart joins on disk."""

from __future__ import annotations

import errno
import gc
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from moto.core.request import Request
from moto.server import ThreadedMotoServer

from hevcq.aws.s3 import S3Store
from hevcq.credentials import Credentials
from hevcq.emulator import s3disk, s3files
from hevcq.emulator.endpoint import start
from hevcq.emulator.s3checksum import PartsChecksum
from hevcq.errors import HevcqError
from hevcq.limits import MiB

PART = 5 * MiB  # S3's smallest part but the last

CREDS = Credentials.generate()  # the key pair this module's endpoints answer to


def uninstall_s3disk() -> None:
    """Undo ``s3disk.install``, so that the other tests meet moto as it ships."""
    while s3disk._installed:
        owner, name, old = s3disk._installed.pop()
        if old is None:  # inherited before: remove ours and the base's shows again
            delattr(owner, name)
        else:
            setattr(owner, name, old)


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]  # the stubs want a literal service name
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDS.access_key_id,
        aws_secret_access_key=CREDS.secret_access_key,
    )


@pytest.fixture
def endpoint() -> Iterator[str]:
    """moto's server in this process with the adaptation, undone afterwards."""
    s3disk.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        uninstall_s3disk()


def _bucket(endpoint: str) -> tuple[object, str]:
    s3 = _client("s3", endpoint)
    name = f"b{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return s3, name


def _rchar() -> int:
    with Path("/proc/self/io").open() as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar"))


def test_the_adaptation_matches_the_installed_moto() -> None:
    # Fails when moto is upgraded or changes what the adaptation replaces: re-check
    # hevcq/emulator/s3disk.py against the new moto, then move MOTO_VERSION and the pin together.
    assert s3disk.check_moto() == []
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert f'"moto[server]=={s3disk.MOTO_VERSION}"' in pyproject


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_a_ranged_get_reads_the_range_not_the_object(endpoint: str) -> None:
    s3, bucket = _bucket(endpoint)
    body = os.urandom(48 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=body)  # type: ignore[attr-defined]
    begin, end = 20 * MiB + 7, 21 * MiB + 6
    before = _rchar()
    got = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={begin}-{end}")  # type: ignore[attr-defined]
    data = got["Body"].read()
    read = _rchar() - before
    assert data == body[begin : end + 1]
    assert got["ContentRange"] == f"bytes {begin}-{end}/{len(body)}"
    # The server reads the 1 MiB range and the client reads it from the socket: far
    # from the 48 MiB that reading the whole object for one range costs.
    assert read < 4 * MiB


def test_whole_gets_and_conditional_gets_still_answer(endpoint: str) -> None:
    s3, bucket = _bucket(endpoint)
    body = os.urandom(3 * MiB + 5)
    etag = s3.put_object(Bucket=bucket, Key="k", Body=body)["ETag"]  # type: ignore[attr-defined]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body  # type: ignore[attr-defined]
    got = s3.get_object(Bucket=bucket, Key="k", IfMatch=etag)  # type: ignore[attr-defined]
    assert got["Body"].read() == body
    with pytest.raises(Exception, match="PreconditionFailed"):
        s3.get_object(Bucket=bucket, Key="k", IfMatch='"0000"')  # type: ignore[attr-defined]
    assert s3.get_object(Bucket=bucket, Key="k", Range="bytes=-5")["Body"].read() == body[-5:]  # type: ignore[attr-defined]


def test_multipart_is_joined_on_disk_with_moto_s_etag_and_event(endpoint: str) -> None:
    s3, bucket = _bucket(endpoint)
    sqs = _client("sqs", endpoint)
    queue = sqs.create_queue(QueueName=f"q{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(  # type: ignore[attr-defined]
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    parts = [os.urandom(PART) for _ in range(8)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]  # type: ignore[attr-defined]
    done = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(  # type: ignore[attr-defined]
                Bucket=bucket, Key="mp", UploadId=up, PartNumber=n, Body=p
            )["ETag"],
        }
        for n, p in enumerate(parts, start=1)
    ]
    tracemalloc.start()
    try:
        s3.complete_multipart_upload(  # type: ignore[attr-defined]
            Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={"Parts": done}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # moto's own join holds the 40 MiB object two or three times; on disk, about a part.
    assert peak < 3 * PART
    whole = b"".join(parts)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == whole  # type: ignore[attr-defined]
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)  # noqa: S324 - S3's ETag
    expected = f'"{hashlib.md5(md5s).hexdigest()}-{len(parts)}"'  # noqa: S324
    assert s3.head_object(Bucket=bucket, Key="mp")["ETag"] == expected  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    events: list[str] = []
    while time.monotonic() < deadline and "ObjectCreated:CompleteMultipartUpload" not in events:
        for m in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []):
            records = json.loads(m["Body"]).get("Records", [])
            events += [r["eventName"] for r in records if r["s3"]["object"]["key"] == "mp"]
    # moto's put_object also raises ObjectCreated:Put here, as it does without the adaptation.
    assert "ObjectCreated:CompleteMultipartUpload" in events


def test_the_endpoint_process_dies_with_its_parent(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from hevcq.emulator.endpoint import start\n"
        "ep = start()\n"
        "print(ep.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.1)
        assert not _alive(child)
    finally:
        if parent.poll() is None:
            parent.kill()


def test_the_endpoint_process_stops_on_request() -> None:
    ep = start(credentials=CREDS)
    s3, bucket = _bucket(ep.url)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")  # type: ignore[attr-defined]
    ep.stop()
    assert ep.proc.returncode == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped by its dead parent yet) no longer runs.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def test_the_store_reads_a_range_of_one_exact_version(endpoint: str) -> None:
    s3, bucket = _bucket(endpoint)
    body = os.urandom(2 * MiB)
    etag = s3.put_object(Bucket=bucket, Key="k", Body=body)["ETag"].strip('"')  # type: ignore[attr-defined]
    store = S3Store(s3, bucket)  # type: ignore[arg-type]
    assert store.read_range("k", MiB, 10, etag) == body[MiB : MiB + 10]
    assert store.read_range("k", 0, 4) == body[:4]
    s3.put_object(Bucket=bucket, Key="k", Body=b"replaced")  # type: ignore[attr-defined]
    with pytest.raises(HevcqError):
        store.read_range("k", 0, 4, etag)


def test_a_bad_part_list_is_refused_and_the_upload_still_completes(endpoint: str) -> None:
    s3, bucket = _bucket(endpoint)
    parts = [os.urandom(PART), b"tail"]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]  # type: ignore[attr-defined]
    done = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(  # type: ignore[attr-defined]
                Bucket=bucket, Key="mp", UploadId=up, PartNumber=n, Body=p
            )["ETag"],
        }
        for n, p in enumerate(parts, start=1)
    ]
    wrong = [done[0], {"PartNumber": 2, "ETag": '"00000000000000000000000000000000"'}]
    with pytest.raises(Exception, match="InvalidPart"):
        s3.complete_multipart_upload(  # type: ignore[attr-defined]
            Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={"Parts": wrong}
        )
    s3.complete_multipart_upload(  # type: ignore[attr-defined]
        Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={"Parts": done}
    )
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(parts)  # type: ignore[attr-defined]


S3_AUTH = "AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/s3/aws4_request, Signature=x"


@pytest.mark.parametrize(
    ("method", "length", "headers", "spools"),
    [
        ("PUT", 8 * MiB, {"Authorization": S3_AUTH}, True),
        (
            "PUT",
            8 * MiB,
            {
                "Authorization": S3_AUTH,
                "x-amz-sdk-checksum-algorithm": "CRC32",
                "x-amz-checksum-crc32": "AAAAAA==",
            },
            True,
        ),
        ("PUT", 8 * MiB, {"Authorization": S3_AUTH.replace("/s3/", "/sqs/")}, False),
        ("PUT", 8 * MiB, {}, False),  # unsigned: moto's own path
        ("PUT", 100, {"Authorization": S3_AUTH}, False),
        ("POST", 8 * MiB, {"Authorization": S3_AUTH}, False),
        (
            "PUT",
            8 * MiB,
            {
                "Authorization": S3_AUTH,
                "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            },
            False,
        ),
        ("PUT", 8 * MiB, {"Authorization": S3_AUTH, "Content-Encoding": "aws-chunked"}, False),
        (
            "PUT",
            8 * MiB,
            {"Authorization": S3_AUTH, "x-amz-sdk-checksum-algorithm": "CRC32"},
            False,
        ),  # moto computes the checksum over the body itself
        (
            "PUT",
            8 * MiB,
            {"Authorization": S3_AUTH, "Content-Type": "application/x-www-form-urlencoded"},
            False,
        ),
    ],
)
def test_which_bodies_stream_to_disk(
    method: str, length: int, headers: dict[str, str], spools: bool
) -> None:
    request = Request.from_values(path="/b/k", method=method, headers=headers)
    request.environ["CONTENT_LENGTH"] = str(length)  # the body itself is not needed here
    assert s3disk._spools(request) is spools


def _hwm(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(
        int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")
    )


UPLOAD_PART = 16 * MiB  # the farm's part size
UPLOAD_PARTS = 24


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_uploads_stream_to_disk_so_the_endpoint_s_memory_stays_flat(tmp_path: Path) -> None:
    ep = start(credentials=CREDS)
    try:
        s3, bucket = _bucket(ep.url)
        # Warm the paths (imports, request threads) so the peak after it is the bodies'.
        s3.put_object(Bucket=bucket, Key="warm", Body=os.urandom(2 * MiB))  # type: ignore[attr-defined]
        before = _hwm(ep.pid)
        source = tmp_path / "zeros"
        with source.open("wb") as f:
            f.truncate(UPLOAD_PART * UPLOAD_PARTS)  # sparse: no time to write
        config = TransferConfig(
            multipart_threshold=UPLOAD_PART, multipart_chunksize=UPLOAD_PART, max_concurrency=10
        )
        s3.upload_file(  # type: ignore[attr-defined]
            str(source), bucket, "big", Config=config, ExtraArgs={"ContentType": "video/mp4"}
        )
        with source.open("rb") as f:
            one = s3.put_object(  # type: ignore[attr-defined]
                Bucket=bucket, Key="one", Body=f.read(48 * MiB), ContentType="video/mp4"
            )
        grown = _hwm(ep.pid) - before
        zero_part = hashlib.md5(bytes(UPLOAD_PART)).digest()  # noqa: S324 - S3's ETag
        md5s = zero_part * UPLOAD_PARTS
        expected = f'"{hashlib.md5(md5s).hexdigest()}-{UPLOAD_PARTS}"'  # noqa: S324
        assert s3.head_object(Bucket=bucket, Key="big")["ETag"] == expected  # type: ignore[attr-defined]
        assert one["ETag"] == f'"{hashlib.md5(bytes(48 * MiB)).hexdigest()}"'  # noqa: S324
        got = s3.get_object(Bucket=bucket, Key="big")["Body"]  # type: ignore[attr-defined]
        size, nonzero = 0, 0
        for chunk in got.iter_chunks(MiB):
            size += len(chunk)
            nonzero += len(chunk.strip(b"\0"))
        assert (size, nonzero) == (UPLOAD_PART * UPLOAD_PARTS, 0)
        # Bodies read whole would hold 10 parts in flight, each about twice (> 300 MiB);
        # streamed, the endpoint holds about one part for the join and a chunk per request.
        assert grown < 96 * MiB, f"endpoint peak grew {grown / MiB:.0f} MiB"
    finally:
        ep.stop()


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME", None])
@pytest.mark.parametrize("checksum_type", ["COMPOSITE", "FULL_OBJECT", None])
def test_the_chunked_multipart_checksum_is_moto_s(
    algorithm: str | None, checksum_type: str | None
) -> None:
    from moto.s3.models import MultipartChecksumBuilder  # noqa: PLC0415

    parts = [os.urandom(3 * MiB + 11), os.urandom(2 * MiB), b"tail"]
    moto_s = MultipartChecksumBuilder(algorithm, checksum_type)
    ours = PartsChecksum(moto_s.checksum_algorithm, moto_s.checksum_type)
    for part in parts:
        moto_s.addPart(part)
        for at in range(0, len(part), MiB):
            ours.add(part[at : at + MiB])
        ours.end_part()
    assert ours.build() == moto_s.build()


def test_the_server_lists_moto_s_services_from_disk_once(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = _client("s3", endpoint)
    s3.create_bucket(Bucket=(bucket := f"b{uuid.uuid4().hex[:10]}"))
    listed = []
    real_listdir = os.listdir

    def listdir(path: str) -> list[str]:
        listed.append(path)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    for _ in range(5):
        s3.head_bucket(Bucket=bucket)
    moto_dir = str(Path(moto.__file__).parent)
    assert listed.count(moto_dir) <= 1  # moto itself lists it for every request


def test_a_spooled_body_is_the_bytes_sent_with_their_md5() -> None:
    body = os.urandom(5 * MiB + 123)
    span = s3disk._spool(io.BytesIO(body))
    assert (bytes(span), span.md5) == (body, hashlib.md5(body, usedforsecurity=False).hexdigest())


def test_a_full_disk_while_spooling_is_the_request_s_error_and_nothing_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[bool] = []

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(s3files.ObjectFile, "new", lambda: (s3files.ObjectFile(), Full()))
    with pytest.raises(OSError, match="No space left"):
        s3disk._spool(io.BytesIO(os.urandom(10 * MiB)))
    assert closed == [True]
    assert s3disk._spool_budget._value == s3disk.SPOOL_BUDGET


def test_a_client_that_fails_mid_body_gives_back_the_room_it_took() -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            if self.tell() >= 3 * s3disk.CHUNK:
                raise ConnectionResetError("client went away")
            return super().read(size)

    with pytest.raises(ConnectionResetError):
        s3disk._spool(Broken(os.urandom(10 * s3disk.CHUNK)))
    assert s3disk._spool_budget._value == s3disk.SPOOL_BUDGET


def test_bodies_arriving_at_once_share_one_bound_on_the_chunks_they_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Chunks read and not yet written, over all requests, stay within the budget plus the
    one chunk each request is reading, however many bodies arrive and however slow the disk."""
    bodies, chunks_each = 24, 3 * s3disk.SPOOL_AHEAD
    lock = threading.Lock()
    held = [0, 0]  # now, most

    class Counted(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            block = super().read(size)
            if block:
                with lock:
                    held[0] += 1
                    held[1] = max(held[1], held[0])
            return block

    backing = tempfile.TemporaryFile()  # noqa: SIM115 - closed below; the span looks at it

    class SlowDisk:
        def write(self, data: bytes) -> int:
            time.sleep(0.001)
            with lock:
                held[0] -= 1
            return len(data)

        def fileno(self) -> int:
            return backing.fileno()

        def flush(self) -> None: ...

        def close(self) -> None: ...

    monkeypatch.setattr(s3files.ObjectFile, "new", lambda: (s3files.ObjectFile(), SlowDisk()))
    body = os.urandom(chunks_each * s3disk.CHUNK)
    threads = [threading.Thread(target=s3disk._spool, args=(Counted(body),)) for _ in range(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    backing.close()
    assert held[0] == 0
    assert held[1] <= s3disk.SPOOL_BUDGET + bodies
    assert bodies * s3disk.SPOOL_AHEAD > s3disk.SPOOL_BUDGET + bodies  # the bound binds
    assert s3disk._spool_budget._value == s3disk.SPOOL_BUDGET


def _instances(cls: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is cls)


def test_moto_keeps_no_model_instance_the_farm_is_done_with(endpoint: str) -> None:
    # The farm's steady traffic: ledger writes and reads, objects put and deleted, messages
    # sent, received and deleted. moto as shipped keeps every model instance it ever made
    # (each DynamoDB update copies the item twice), so the endpoint grew with the run.
    from moto.dynamodb.models.dynamo_type import Item  # noqa: PLC0415
    from moto.s3.models import FakeBucket, FakeKey  # noqa: PLC0415
    from moto.sqs.models import Message  # noqa: PLC0415

    ddb, sqs = _client("dynamodb", endpoint), _client("sqs", endpoint)
    table = f"t{uuid.uuid4().hex[:10]}"
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    s3: Any
    s3, bucket = _bucket(endpoint)
    queue = sqs.create_queue(QueueName=f"q{uuid.uuid4().hex[:10]}")["QueueUrl"]
    before: dict[type, int] = {cls: _instances(cls) for cls in (Item, FakeKey, Message)}
    for i in range(100):
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": "job"}},
            UpdateExpression="SET progress = :p",
            ExpressionAttributeValues={":p": {"N": str(i)}},
        )
        ddb.get_item(TableName=table, Key={"pk": {"S": "job"}}, ConsistentRead=True)
        s3.put_object(Bucket=bucket, Key=f"TODO/{i}", Body=b"x")
        s3.delete_object(Bucket=bucket, Key=f"TODO/{i}")
        sqs.send_message(QueueUrl=queue, MessageBody=str(i))
        for m in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    grown = {cls.__name__: _instances(cls) - n for cls, n in before.items()}
    assert all(n <= 5 for n in grown.values()), grown  # the one item; not one per request
    # moto's own registry (its dashboard, its reset) still lists what lives.
    assert bucket in {b.name for b in FakeBucket.instances_tracked}  # type: ignore[attr-defined]


def test_a_changed_model_constructor_in_moto_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.common_models import BaseModel  # noqa: PLC0415

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)  # a moto that tracks its instances some other way

    monkeypatch.setattr(BaseModel, "__new__", staticmethod(__new__))
    assert any("BaseModel.__new__" in problem for problem in s3disk.check_moto())


MANY_OBJECTS = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.s3.models import s3_backends
from werkzeug.test import Client
from hevcq.emulator import s3disk
s3disk.install()
backend, n = s3_backends["123456789012"]["aws"], int(sys.argv[1])
backend.create_bucket("many", "us-east-1")
for i in range(n):
    backend.put_object("many", f"k{i}", f"v{i}".encode())
assert all(backend.get_object("many", f"k{i}").value == f"v{i}".encode() for i in range(n))
# GetObject reads through a handle of its own: 400 of them, each closed when answered.
client = Client(DomainDispatcherApplication(create_backend_app))
for i in range(0, n, n // 400):
    got = client.get(f"/many/k{i}", headers={"Authorization": sys.argv[2]})
    assert got.data == f"v{i}".encode(), got.status
print("stored and read", n)
"""


def test_ten_thousand_objects_fit_under_a_descriptor_limit_of_256(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", MANY_OBJECTS, "10000", S3_AUTH],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "stored and read 10000"
    assert list(tmp_path.iterdir()) == []  # the objects' directory went with the process


def _open_descriptors() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
def test_objects_stored_every_way_hold_no_descriptor(endpoint: str) -> None:
    s3, bucket = _bucket(endpoint)
    s3.put_object(Bucket=bucket, Key="warm", Body=b"x")  # type: ignore[attr-defined]
    before = _open_descriptors()
    for i in range(12):  # small (moto's path) and large (spooled) PUTs
        s3.put_object(Bucket=bucket, Key=f"s{i}", Body=b"small")  # type: ignore[attr-defined]
        s3.put_object(Bucket=bucket, Key=f"l{i}", Body=bytes(MiB + i))  # type: ignore[attr-defined]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]  # type: ignore[attr-defined]
    done = [
        {
            "PartNumber": n,
            "ETag": s3.upload_part(  # type: ignore[attr-defined]
                Bucket=bucket, Key="mp", UploadId=up, PartNumber=n, Body=p
            )["ETag"],
        }
        for n, p in enumerate([bytes(PART), b"tail"], start=1)
    ]
    s3.complete_multipart_upload(  # type: ignore[attr-defined]
        Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={"Parts": done}
    )
    for i in range(12):
        got = s3.get_object(Bucket=bucket, Key=f"l{i}", Range="bytes=0-9")  # type: ignore[attr-defined]
        assert got["Body"].read() == bytes(10)
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == bytes(PART) + b"tail"  # type: ignore[attr-defined]
    gc.collect()
    # 25 objects; a descriptor each would be 25 more. A few: the server's sockets.
    assert _open_descriptors() - before < 8


def _once(_: object, bucket: str, endpoint: str) -> tuple[Any, str]:
    """A client that sends each request once: the server's answer, not a retry's."""
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDS.access_key_id,
        aws_secret_access_key=CREDS.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}),
    )
    return s3, bucket


def test_a_get_that_finds_its_key_replaced_before_reading_answers_the_new_bytes(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.s3.responses import S3Response  # noqa: PLC0415

    s3, bucket = _once(*_bucket(endpoint), endpoint)
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    real_get_key = S3Response._get_key
    looked_up: list[bytes] = []

    def get_key_then_overwrite(self: Any, *args: Any, **kwargs: Any) -> Any:
        key, not_modified = real_get_key(self, *args, **kwargs)
        looked_up.append(bytes(key.value))
        if len(looked_up) == 1:  # overwritten between the GET's lookup and its read
            self.backend.put_object(bucket, "k", b"new")
        return key, not_modified

    monkeypatch.setattr(S3Response, "_get_key", get_key_then_overwrite)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"new"
    assert looked_up == [b"old", b"new"]


def test_a_get_that_keeps_finding_its_key_removed_is_no_such_key(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.s3.responses import S3Response  # noqa: PLC0415

    s3, bucket = _once(*_bucket(endpoint), endpoint)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    real_get_key = S3Response._get_key

    def get_key_then_remove(self: Any, *args: Any, **kwargs: Any) -> Any:
        key, not_modified = real_get_key(self, *args, **kwargs)
        key._value_buffer.close()
        return key, not_modified

    monkeypatch.setattr(S3Response, "_get_key", get_key_then_remove)
    with pytest.raises(Exception, match="NoSuchKey"):
        s3.get_object(Bucket=bucket, Key="k")


def test_a_reader_keeps_the_bytes_of_a_removed_object_and_a_dropped_one_leaves_no_file() -> None:
    obj, handle = s3files.ObjectFile.new()
    with handle:
        handle.write(b"bytes")
    reader = obj.open()
    path = Path(reader.name)
    obj.close()
    assert not path.exists()
    assert reader.read() == b"bytes"
    reader.close()
    with pytest.raises(FileNotFoundError):
        obj.open()
    dropped, handle = s3files.ObjectFile.new()
    handle.close()
    with dropped.open() as reading:
        path = Path(reading.name)
    del dropped
    assert not path.exists()


STORE_OWNER = """
import sys
from hevcq.emulator import s3files
print(s3files.store().path, flush=True)
sys.stdin.read()
"""


def test_a_store_left_by_a_killed_process_is_removed_by_the_next_one(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    owner = subprocess.Popen(
        [sys.executable, "-c", STORE_OWNER],
        env=env,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert owner.stdout is not None
        directory = Path(owner.stdout.readline().strip())
        assert directory.parent == tmp_path
        (tmp_path / f"{s3files.PREFIX}not-a-store").write_text("kept")
        assert s3files.sweep(tmp_path) == []  # its owner lives
        owner.kill()
        owner.wait(timeout=10)
        assert directory.exists()
        assert s3files.sweep(tmp_path) == [directory]
        assert not directory.exists()
        assert (tmp_path / f"{s3files.PREFIX}not-a-store").exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
