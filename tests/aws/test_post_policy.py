"""The endpoint refuses a browser POST its signed policy does not allow, as S3 does.

The policies are hevcq's own (``hevcq.web.uploads``), sent with a real HTTP client to a
real endpoint process.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from hevcq.aws.s3 import S3Store
from hevcq.credentials import Credentials
from hevcq.emulator.endpoint import EndpointProcess, start
from hevcq.web.uploads import UploadRecord, new_upload_id, presigned_upload, upload_key

LIMIT = 1000

CREDS = Credentials.generate()  # the key pair this module's endpoints answer to


@pytest.fixture(scope="module")
def endpoint_process() -> Iterator[EndpointProcess]:
    ep = start(credentials=CREDS)
    try:
        yield ep
    finally:
        ep.stop()


@pytest.fixture
def endpoint(endpoint_process: EndpointProcess) -> str:
    return endpoint_process.url


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in CREDS.env().items():
        monkeypatch.setenv(name, value)  # the presigning client reads the environment
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDS.access_key_id,
        aws_secret_access_key=CREDS.secret_access_key,
    )


def _ticket(
    s3: Any, ttl_s: int = 600, limit: int = LIMIT, pools: tuple[str, ...] | None = None
) -> tuple[str, str, dict[str, str]]:
    bucket = f"b{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    upload_id = new_upload_id()
    record = UploadRecord(
        id=upload_id,
        owner="alice",
        filename="clip.mp4",
        key=upload_key(upload_id, "clip.mp4"),
        created_at=datetime.now(UTC),
        pools=pools,
    )
    url, fields, _ = presigned_upload(S3Store(s3, bucket), record, limit, ttl_s)
    return bucket, url, fields


def _post(url: str, fields: dict[str, str], data: bytes) -> httpx.Response:
    return httpx.post(url, data=fields, files={"file": ("clip.mp4", data)}, timeout=30)


def _code(response: httpx.Response) -> str:
    return response.text.split("<Code>", 1)[-1].split("</Code>", 1)[0]


def _todo(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="TODO/").get("Contents", [])]


def test_an_upload_within_the_policy_is_stored_with_its_owner(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    body = bytes(range(256)) * 3 + b"end"
    sent = _post(url, fields, body)
    assert sent.status_code == 204, sent.text
    assert _todo(s3, bucket) == [fields["key"]]
    got = s3.get_object(Bucket=bucket, Key=fields["key"])
    assert got["Body"].read() == body
    assert got["Metadata"]["hevcq-owner"] == "alice"


def test_an_over_size_upload_is_refused_and_nothing_is_stored(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    sent = _post(url, fields, b"x" * (LIMIT + 1))
    assert (sent.status_code, _code(sent)) == (400, "EntityTooLarge")
    assert f"<ProposedSize>{LIMIT + 1}</ProposedSize>" in sent.text
    assert f"<MaxSizeAllowed>{LIMIT}</MaxSizeAllowed>" in sent.text
    assert _todo(s3, bucket) == []


def test_an_empty_upload_is_under_the_range(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    sent = _post(url, fields, b"")
    assert (sent.status_code, _code(sent)) == (400, "EntityTooSmall")
    assert _todo(s3, bucket) == []


def test_a_tampered_owner_is_refused(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    sent = _post(url, {**fields, "x-amz-meta-hevcq-owner": "mallory"}, b"video")
    assert (sent.status_code, _code(sent)) == (403, "AccessDenied")
    assert "Policy Condition failed" in sent.text
    assert _todo(s3, bucket) == []


def test_a_tampered_pool_choice_is_refused(s3: Any) -> None:
    bucket, url, fields = _ticket(s3, pools=("hevc",))
    assert fields["x-amz-meta-hevcq-pools"] == "hevc"
    sent = _post(url, {**fields, "x-amz-meta-hevcq-pools": "hevc,720p,1080p"}, b"video")
    assert (sent.status_code, _code(sent)) == (403, "AccessDenied")
    assert _todo(s3, bucket) == []
    dropped = {k: v for k, v in fields.items() if k != "x-amz-meta-hevcq-pools"}
    assert _post(url, dropped, b"video").status_code == 403  # leaving it out chooses nothing
    assert _todo(s3, bucket) == []


def test_a_field_the_policy_does_not_name_is_refused(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    sent = _post(url, {**fields, "x-amz-meta-extra": "1"}, b"video")
    assert (sent.status_code, _code(sent)) == (403, "AccessDenied")
    assert "Extra input fields: x-amz-meta-extra" in sent.text
    assert _todo(s3, bucket) == []


def test_an_expired_policy_is_refused(s3: Any) -> None:
    bucket, url, fields = _ticket(s3, ttl_s=-60)
    sent = _post(url, fields, b"video")
    assert (sent.status_code, _code(sent)) == (403, "AccessDenied")
    assert "Policy expired" in sent.text
    assert _todo(s3, bucket) == []


def test_a_bad_signature_is_refused(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    signature = fields["x-amz-signature"]
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    sent = _post(url, {**fields, "x-amz-signature": forged}, b"video")
    assert (sent.status_code, _code(sent)) == (403, "SignatureDoesNotMatch")
    assert _todo(s3, bucket) == []


@pytest.mark.parametrize("version", ["s3v4", "s3"])  # SigV4, and the older SigV2 form
@pytest.mark.parametrize(
    ("secret", "status", "code"),
    [("not-the-secret", 403, "SignatureDoesNotMatch"), (CREDS.secret_access_key, 204, "")],
    ids=["another-secret", "the-endpoint-s-secret"],  # the same on every xdist worker
)
def test_only_a_policy_signed_with_the_endpoint_s_secret_passes(
    s3: Any, version: str, secret: str, status: int, code: str
) -> None:
    bucket = f"b{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    signer = boto3.client(
        "s3",
        endpoint_url=s3.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=CREDS.access_key_id,
        aws_secret_access_key=secret,
        config=Config(signature_version=version),
    )
    post = signer.generate_presigned_post(bucket, "TODO/x/clip.mp4", ExpiresIn=600)
    sent = _post(post["url"], post["fields"], b"video")
    assert (sent.status_code, _code(sent) if code else "") == (status, code)
    assert _todo(s3, bucket) == ([] if code else ["TODO/x/clip.mp4"])


def test_other_requests_and_the_connection_still_work_after_a_refusal(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    with httpx.Client(timeout=30) as http:  # one keep-alive connection for both
        refused = http.post(url, data=fields, files={"file": ("c.mp4", b"x" * 50_000)})
        sent = http.post(url, data=fields, files={"file": ("c.mp4", b"y" * LIMIT)})
    assert (refused.status_code, _code(refused)) == (400, "EntityTooLarge")
    assert sent.status_code == 204, sent.text
    assert s3.get_object(Bucket=bucket, Key=fields["key"])["Body"].read() == b"y" * LIMIT


def _hwm(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(
        int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")
    )


BIG = 160 * 1024 * 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_large_upload_streams_through_the_check_to_disk(
    s3: Any, endpoint_process: EndpointProcess, tmp_path: Path
) -> None:
    bucket, url, fields = _ticket(s3, limit=BIG)
    _post(url, fields, b"warm")  # imports and threads, so the peak after it is the body's
    before = _hwm(endpoint_process.pid)
    source = tmp_path / "zeros"
    with source.open("wb") as f:
        f.truncate(BIG)  # sparse: no time to write
    with source.open("rb") as f:
        sent = httpx.post(url, data=fields, files={"file": ("clip.mp4", f)}, timeout=120)
    grown = _hwm(endpoint_process.pid) - before
    assert sent.status_code == 204, sent.text
    head = s3.head_object(Bucket=bucket, Key=fields["key"])
    assert head["ContentLength"] == BIG
    assert head["ETag"] == f'"{hashlib.md5(bytes(BIG)).hexdigest()}"'  # noqa: S324 - S3's ETag
    # Read whole (moto's way) the body would be held two or three times over.
    assert grown < 64 * 1024 * 1024, f"endpoint peak grew {grown / 2**20:.0f} MiB"


BOUNDARY = "hevcq-boundary"
FORM = f"multipart/form-data; boundary={BOUNDARY}"
Part = tuple[str, str | None, bytes]  # name, filename (a file part) or None, value


def _raw(parts: list[Part]) -> bytes:
    out = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def _send(url: str, parts: list[Part], content_type: str = FORM) -> httpx.Response:
    """A multipart body written by hand: parts in any order, any case, any number."""
    return httpx.post(url, content=_raw(parts), headers={"Content-Type": content_type}, timeout=30)


def _fields(fields: dict[str, str]) -> list[Part]:
    return [(name, None, value.encode()) for name, value in fields.items()]


def _stored(s3: Any, bucket: str) -> list[str]:
    """Every object but the upload's own record."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return [k for k in keys if not k.startswith("uploads/")]


VIDEO: Part = ("file", "clip.mp4", b"video")


def test_a_raw_form_within_the_policy_is_stored(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    sent = _send(url, [*_fields(fields), VIDEO])
    assert sent.status_code == 204, sent.text
    assert _stored(s3, bucket) == [fields["key"]]


@pytest.mark.parametrize("name", ["KEY", "Key"])
def test_a_key_field_in_other_case_cannot_pick_another_key(s3: Any, name: str) -> None:
    bucket, url, fields = _ticket(s3)
    signed = fields.pop("key")
    sent = _send(
        url,
        [(name, None, signed.encode()), *_fields(fields), ("key", None, b"DONE/evil.mp4"), VIDEO],
    )
    assert sent.status_code == 400, sent.text
    assert _stored(s3, bucket) == []


def test_a_key_field_moto_would_not_read_is_refused_not_an_error(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    signed = fields.pop("key")
    sent = _send(url, [("Key", None, signed.encode()), *_fields(fields), VIDEO])
    assert (sent.status_code, _code(sent)) == (400, "InvalidArgument")
    assert _stored(s3, bucket) == []


@pytest.mark.parametrize(
    "after",
    [
        [("x-amz-meta-hevcq-extra", None, b"1")],
        [("acl", None, b"public-read"), ("Content-Type", None, b"text/html")],
        [("key", None, b"DONE/evil.mp4")],
    ],
)
def test_fields_after_the_file_are_refused(s3: Any, after: list[Part]) -> None:
    bucket, url, fields = _ticket(s3)
    sent = _send(url, [*_fields(fields), VIDEO, *after])
    assert (sent.status_code, _code(sent)) == (400, "MalformedPOSTRequest")
    assert _stored(s3, bucket) == []


@pytest.mark.parametrize(
    "files",
    [
        [VIDEO, ("file", "big.mp4", b"x" * (5 * LIMIT))],
        [VIDEO, ("other", "big.mp4", b"x" * (5 * LIMIT))],
        [("x-ignore-a", "big.mp4", b"x" * (5 * LIMIT)), VIDEO],
    ],
)
def test_a_second_file_part_is_refused(s3: Any, files: list[Part]) -> None:
    bucket, url, fields = _ticket(s3)
    sent = _send(url, [*_fields(fields), *files])
    assert (sent.status_code, _code(sent)) == (400, "IncorrectNumberOfFilesInPostRequest")
    assert _stored(s3, bucket) == []


@pytest.mark.parametrize(
    "content_type",
    [
        f"Multipart/Form-Data; boundary={BOUNDARY}",
        f"MULTIPART/FORM-DATA; BOUNDARY={BOUNDARY}",
        f"multipart/form-data; Boundary={BOUNDARY}; charset=UTF-8",
    ],
)
def test_a_form_in_any_case_is_checked(s3: Any, content_type: str) -> None:
    bucket, url, _ = _ticket(s3)
    sent = _send(url, [("key", None, b"DONE/evil.mp4"), VIDEO], content_type)
    assert (sent.status_code, _code(sent)) == (403, "AccessDenied")
    assert _stored(s3, bucket) == []


def test_a_field_sent_twice_is_refused(s3: Any) -> None:
    bucket, url, fields = _ticket(s3)
    owner = ("x-amz-meta-hevcq-owner", None, b"mallory")
    sent = _send(url, [*_fields(fields), owner, VIDEO])
    assert (sent.status_code, _code(sent)) == (400, "InvalidArgument")
    assert _stored(s3, bucket) == []


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "application/x-www-form-urlencoded"],
)
def test_a_post_body_that_is_not_a_checkable_form_is_refused(s3: Any, content_type: str) -> None:
    bucket, url, fields = _ticket(s3)
    if content_type.startswith("application"):
        body = b"key=DONE%2Fevil.mp4&file=evil"
    else:
        body = _raw([*_fields(fields), VIDEO])
    sent = httpx.post(url, content=body, headers={"Content-Type": content_type}, timeout=30)
    # An unsigned form-encoded POST is no browser upload: the endpoint refuses it as
    # unsigned before the policy gate would (which answers S3's 412, tests/unit).
    assert (sent.status_code, _code(sent)) in {
        (400, "MalformedPOSTRequest"),
        (412, "PreconditionFailed"),
        (403, "AccessDenied"),
    }, sent.text
    assert _stored(s3, bucket) == []


def test_form_encoded_requests_of_other_services_still_pass(endpoint: str) -> None:
    sns = boto3.client(
        "sns",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDS.access_key_id,
        aws_secret_access_key=CREDS.secret_access_key,
    )
    topic = sns.create_topic(Name=f"t{uuid.uuid4().hex[:10]}")["TopicArn"]  # a form POST
    assert sns.publish(TopicArn=topic, Message="hello")["MessageId"]


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_an_object_of_a_form_content_type_still_uploads_in_parts(
    s3: Any, content_type: str
) -> None:
    bucket = f"b{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    # CreateMultipartUpload is a POST to the key carrying the object's content type.
    up = s3.create_multipart_upload(Bucket=bucket, Key="TODO/f", ContentType=content_type)
    etag = s3.upload_part(
        Bucket=bucket, Key="TODO/f", UploadId=up["UploadId"], PartNumber=1, Body=b"form"
    )["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="TODO/f",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    got = s3.get_object(Bucket=bucket, Key="TODO/f")
    assert (got["Body"].read(), got["ContentType"]) == (b"form", content_type)
