"""SigV4 checked on a received request: botocore's own signatures pass, any change fails;
and the read deadlines that cut off a half-sent request."""

from __future__ import annotations

import hashlib
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from hevcq.emulator import sigv4
from hevcq.emulator.postpolicy import Refusal
from hevcq.emulator.readtimes import DeadlineReader, ReadBounds

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
HOST = "127.0.0.1:4566"


def _environ(request: AWSRequest) -> dict[str, Any]:
    """What werkzeug makes of the request botocore sends."""
    url = urlsplit(str(request.url))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "REQUEST_URI": url.path + (f"?{url.query}" if url.query else ""),
        "QUERY_STRING": url.query,
        "HTTP_HOST": url.netloc,
    }
    for name, value in request.headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = value
    return environ


def _check(environ: dict[str, Any], secret: str = SECRET, body: bytes = b"") -> bool:
    signed = sigv4.parse(environ)
    assert isinstance(signed, sigv4.Signed), signed
    digest = None
    if sigv4.needs_body_hash(environ, signed):
        digest = hashlib.sha256(body).hexdigest()
    return sigv4.verify(environ, signed, secret, digest)


S3_KEYS = ["TODO/clip.mp4", "TODO/a dir/ünï+c=o&de~x(1).mp4", "TODO/50% off/[x]!*'.mov"]


@pytest.mark.parametrize("key", S3_KEYS)
def test_a_boto_signed_s3_request_passes_and_any_change_fails(key: str) -> None:
    url = f"http://{HOST}/bucket/{quote(key, safe='/~')}?tagging=&versionId=a%2Bb"
    request = AWSRequest("PUT", url, data=b"body", headers={"X-Amz-Meta-My_Key": "v  a"})
    request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    S3SigV4Auth(BotoCredentials(KEY, SECRET), "s3", "us-east-1").add_auth(request)
    environ = _environ(request)
    assert _check(environ)
    assert not _check(environ, secret="not-the-secret")
    assert not _check({**environ, "REQUEST_URI": environ["REQUEST_URI"].replace("bucket", "other")})
    assert not _check({**environ, "REQUEST_METHOD": "DELETE"})
    assert not _check({**environ, "HTTP_X_AMZ_CONTENT_SHA256": sigv4.EMPTY_SHA256})


def test_a_body_without_a_declared_hash_is_hashed_and_checked() -> None:
    body = b'{"QueueNamePrefix": "hevcq"}'
    request = AWSRequest(
        "POST",
        f"http://{HOST}/",
        data=body,
        headers={
            "X-Amz-Target": "AmazonSQS.ListQueues",
            "Content-Type": "application/x-amz-json-1.0",
        },
    )
    SigV4Auth(BotoCredentials(KEY, SECRET), "sqs", "us-east-1").add_auth(request)
    environ = _environ(request)
    assert _check(environ, body=body)
    assert not _check(environ, body=b'{"QueueNamePrefix": "other"}')


def test_a_presigned_url_passes_and_a_changed_one_fails() -> None:
    request = AWSRequest("GET", f"http://{HOST}/bucket/TODO/a%20b.mp4")
    request.context["is_presign_request"] = True
    S3SigV4QueryAuth(BotoCredentials(KEY, SECRET), "s3", "us-east-1", expires=60).add_auth(request)
    environ = _environ(request)
    assert _check(environ)
    assert not _check({**environ, "REQUEST_URI": environ["REQUEST_URI"].replace("a%20b", "c")})
    longer = environ["REQUEST_URI"].replace("X-Amz-Expires=60", "X-Amz-Expires=6000")
    assert not _check({**environ, "REQUEST_URI": longer, "QUERY_STRING": urlsplit(longer).query})


def _signed(at: datetime, expires: int | None = None) -> sigv4.Signed:
    return sigv4.Signed(
        KEY,
        [at.strftime("%Y%m%d"), "us-east-1", "s3", "aws4_request"],
        at.strftime(sigv4.AMZ_DATE_FORMAT),
        ["host"],
        "0" * 64,
        expires,
    )


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("signed_at", "expires", "code"),
    [
        (NOW - timedelta(minutes=14), None, None),
        (NOW + timedelta(minutes=14), None, None),
        (NOW - timedelta(minutes=16), None, "RequestTimeTooSkewed"),
        (NOW + timedelta(minutes=16), None, "RequestTimeTooSkewed"),
        (NOW - timedelta(seconds=59), 60, None),
        (NOW - timedelta(seconds=61), 60, "AccessDenied"),  # expired
        (NOW + timedelta(minutes=16), 3600, "AccessDenied"),  # not valid yet
    ],
)
def test_the_signing_time_and_a_presigned_url_s_expiry_are_checked(
    signed_at: datetime, expires: int | None, code: str | None
) -> None:
    refusal = sigv4.check_time(_signed(signed_at, expires), NOW)
    assert (refusal.code if refusal else None) == code


@pytest.mark.parametrize(
    "header",
    [
        "AWS AKIDEXAMPLE:c2lnbmF0dXJl",  # SigV2
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261123/us-east-1/s3, Signature=ab",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=ab",
    ],
)
def test_a_malformed_or_older_authorization_is_refused(header: str) -> None:
    refusal = sigv4.parse({"HTTP_AUTHORIZATION": header, "HTTP_X_AMZ_DATE": "20261123T120000Z"})
    assert isinstance(refusal, Refusal)
    assert refusal.status == 403


def test_a_presigned_url_may_live_seven_days_at_most() -> None:
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261123%2Fus-east-1"
        "%2Fs3%2Faws4_request&X-Amz-Date=20261123T120000Z&X-Amz-Expires=604801"
        "&X-Amz-SignedHeaders=host&X-Amz-Signature=ab"
    )
    refusal = sigv4.parse({"QUERY_STRING": query, "REQUEST_URI": f"/b/k?{query}"})
    assert isinstance(refusal, Refusal)
    assert refusal.code == "AuthorizationQueryParametersError"


# --- read deadlines -------------------------------------------------------------------


def test_data_already_waiting_is_read_after_the_deadline_and_silence_is_cut_off() -> None:
    server, client = socket.socketpair()
    with server, client:
        reader = DeadlineReader(server, ReadBounds(header_s=0.05))
        client.sendall(b"GET / HTTP/1.1\r\n")
        time.sleep(0.1)  # a busy server comes to the socket late: the data is there
        buf = bytearray(64)
        assert reader.readinto(buf) == 16
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            reader.readinto(buf)
        assert time.monotonic() - started < 1


def test_the_body_s_allowance_grows_with_what_arrived() -> None:
    now = [100.0]
    server, client = socket.socketpair()
    with server, client:
        bounds = ReadBounds(header_s=5, body_grace_s=10, min_body_rate=1000)
        reader = DeadlineReader(server, bounds, clock=lambda: now[0])
        assert reader.deadline() == 105
        reader.start_body()
        assert reader.deadline() == 110
        client.sendall(b"x" * 2000)
        assert reader.readinto(bytearray(4096)) == 2000
        assert reader.deadline() == 112  # 2000 bytes at 1000 B/s bought two more seconds
