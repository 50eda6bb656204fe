"""AWS failures mapped to our hierarchy, and whole operations retried when transient."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.parsers import ResponseParserError

from hevcq.aws.clients import classify
from hevcq.aws.s3 import S3Store
from hevcq.aws.sns import SnsPublisher
from hevcq.errors import FarmConfigError, PermanentError, RetryableError
from hevcq.messages import JobResult

# What botocore raises for a 5xx whose body is not the service's error document (a load
# balancer's HTML page, a truncated answer).
UNPARSABLE_5XX = ResponseParserError(
    "Unable to parse response (syntax error: line 1, column 0), invalid XML received. "
    "Further retries may succeed:\nb'<html><body>502 Bad Gateway</body></html>'"
)


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        cast(
            Any,
            {
                "Error": {"Code": code, "Message": "x"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
        ),
        "Op",
    )


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (client_error("SlowDown", 503), RetryableError),
        (client_error("ThrottlingException", 400), RetryableError),
        (client_error("InternalError", 500), RetryableError),
        (EndpointConnectionError(endpoint_url="http://x"), RetryableError),
        (S3UploadFailedError("Failed to upload: 503"), RetryableError),
        (UNPARSABLE_5XX, RetryableError),
        (client_error("NoSuchKey", 404), PermanentError),
        (client_error("ValidationException", 400), PermanentError),
        (client_error("AccessDenied", 403), FarmConfigError),
        (client_error("403", 403), FarmConfigError),  # HEAD: no body, only the status
        (client_error("ExpiredToken", 400), FarmConfigError),
        (client_error("InvalidAccessKeyId", 403), FarmConfigError),
        (client_error("SignatureDoesNotMatch", 403), FarmConfigError),
        (client_error("UnrecognizedClientException", 400), FarmConfigError),
        (client_error("NoSuchBucket", 404), FarmConfigError),
        (client_error("ResourceNotFoundException", 400), FarmConfigError),
        (client_error("AWS.SimpleQueueService.NonExistentQueue", 400), FarmConfigError),
        (client_error("QueueDoesNotExist", 400), FarmConfigError),
        (client_error("NotFound", 404), FarmConfigError),
        (
            S3UploadFailedError("Failed: An error occurred (AccessDenied) when calling PutObject"),
            FarmConfigError,
        ),
    ],
)
def test_classify(exc: Exception, kind: type) -> None:
    assert isinstance(classify(exc, "op"), kind)


class FlakyS3:
    """An S3 client whose upload fails with 503 a given number of times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.uploads = 0

    def upload_file(self, *args: object, **kw: object) -> None:
        self.uploads += 1
        if self.uploads <= self.failures:
            raise client_error("SlowDown", 503)

    def head_object(self, Bucket: str, Key: str) -> dict:
        return {"ContentLength": 3, "ETag": '"e"', "Metadata": {}}


def test_transient_upload_failures_are_retried(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _s: None)  # tenacity's back-off
    src = tmp_path / "f"
    src.write_bytes(b"abc")
    s3 = FlakyS3(failures=2)
    info = S3Store(s3, "b").upload(src, "DONE/hevc/f.mp4", {})  # type: ignore[arg-type]
    assert s3.uploads == 3
    assert info.etag == "e"


def test_persistent_failures_surface_as_retryable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _s: None)
    src = tmp_path / "f"
    src.write_bytes(b"abc")
    s3 = FlakyS3(failures=100)
    with pytest.raises(RetryableError):
        S3Store(s3, "b").upload(src, "DONE/hevc/f.mp4", {})  # type: ignore[arg-type]
    assert s3.uploads == 4


class GarbledSns:
    """An SNS client whose answers cannot be parsed a given number of times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def publish(self, **kw: object) -> dict[str, str]:
        self.calls += 1
        if self.calls <= self.failures:
            raise UNPARSABLE_5XX
        return {"MessageId": "m"}


def test_a_publish_answered_by_an_unparsable_5xx_is_retried(monkeypatch) -> None:
    monkeypatch.setattr("time.sleep", lambda _s: None)
    sns = GarbledSns(failures=2)
    result = JobResult(
        job_id="j",
        pool="hevc",
        bucket="b",
        source_key="TODO/a.mp4",
        outcome="skipped",
        settings_hash="h",
        worker="w",
    )
    SnsPublisher(sns, "arn:topic").publish(result)  # type: ignore[arg-type]
    assert sns.calls == 3
