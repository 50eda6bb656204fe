"""The boto3 clients, built one way for the cloud, the embedded endpoint and tests, and
``classify``, which maps botocore failures onto hevcq's errors."""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError

from hevcq.errors import FarmConfigError, HevcqError, PermanentError, RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

# botocore's "standard" retry mode already retries throttling and 5xx with back-off;
# our own tenacity policies sit above it for whole operations such as transfers.
BOTO_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 6},
    connect_timeout=10,
    read_timeout=70,  # above the 20 s long poll, with room for slow endpoints
    max_pool_connections=32,
)

# Over plain HTTP botocore hashes every S3 body with SHA-256 to sign it and, by default,
# with CRC32 for a checksum header, each a pass over the bytes before the first one is sent
# (the endpoint then checks the CRC32 again). Over TLS AWS signs UNSIGNED-PAYLOAD instead.
# On a loopback endpoint no network lies between the two ends and the endpoint's MD5 (the
# ETag) still covers the bytes, so S3 requests there carry neither: a 12 MB PUT to the
# embedded endpoint takes about 0.07 s instead of 0.10 s. The endpoint checks signatures
# and takes SigV4 only: left to itself botocore presigns S3 URLs with SigV2.
LOOPBACK_S3_CONFIG = Config(
    signature_version="s3v4",
    s3={"payload_signing_enabled": False},
    request_checksum_calculation="when_required",
    response_checksum_validation="when_required",
)

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "SlowDown",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
    }
)

# The farm's fault, not the file's: credentials refused or expired, the farm's own bucket,
# table, queue or topic missing. A source object that is gone is found by HEAD (a 404)
# before anything is classified, so NoSuchKey stays permanent.
FARM_CONFIG_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "NoSuchBucket",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "NotFound",
    }
)
HTTP_FORBIDDEN = 403  # S3 answers HEAD requests without a body, so only the status is known
_WRAPPED_CODE = re.compile(r"An error occurred \(([\w.]+)\)")
# What a boto3 call raises when AWS refuses or cannot be reached, for callers above this
# package that catch it without importing botocore.
AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError, ResponseParserError)
# What finding a configured farm may raise besides a settings mistake.
SETUP_ERRORS: tuple[type[Exception], ...] = (HevcqError, *AWS_ERRORS)
P = ParamSpec("P")
R = TypeVar("R")


def classified(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A call whose botocore failure leaves as hevcq's error for ``what`` (``classify``):
    how code outside ``aws/`` calls an adapter method without knowing botocore's errors."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except AWS_ERRORS as exc:
                raise classify(exc, what) from exc

        return call

    return wrap


@dataclass(frozen=True)
class Clients:
    """The AWS clients hevcq uses; all share one session and endpoint configuration."""

    s3: S3Client
    sqs: SQSClient
    sns: SNSClient
    dynamodb: DynamoDBClient
    sts: STSClient
    endpoint_url: str | None = None  # the one given to ``create``, if any

    @classmethod
    def create(
        cls, region: str | None = None, endpoint_url: str | None = None, retries: int | None = None
    ) -> Clients:
        """Build clients; ``endpoint_url`` overrides boto3's own endpoint configuration."""
        session = boto3.session.Session(region_name=region)
        config = BOTO_CONFIG
        if retries is not None:
            config = config.merge(Config(retries={"mode": "standard", "max_attempts": retries}))
        kw: dict[str, Any] = {"config": config}
        if endpoint_url:
            kw["endpoint_url"] = endpoint_url
        s3: S3Client = session.client("s3", **kw)
        if on_loopback(s3.meta.endpoint_url):
            s3 = session.client("s3", **{**kw, "config": config.merge(LOOPBACK_S3_CONFIG)})
        return cls(
            s3=s3,
            sqs=session.client("sqs", **kw),
            sns=session.client("sns", **kw),
            dynamodb=session.client("dynamodb", **kw),
            sts=session.client("sts", **kw),
            endpoint_url=endpoint_url,
        )

    def with_retries(self, retries: int) -> Clients:
        """The same farm's clients (region and endpoint) with another retry budget."""
        return Clients.create(region=self.region, endpoint_url=self.endpoint_url, retries=retries)

    @property
    def region(self) -> str:
        """The region the clients talk to (boto3's default chain, else us-east-1)."""
        return self.s3.meta.region_name or "us-east-1"


def on_loopback(url: str | None) -> bool:
    """Whether ``url`` is plain HTTP to this machine (the embedded farm's endpoint)."""
    if not url:
        return False
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, or an empty string."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _classify_client_error(exc: ClientError, what: str) -> Exception:
    code = error_code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in THROTTLING_CODES or status >= 500:
        return RetryableError(f"{what}: {code or status}")
    if code in FARM_CONFIG_CODES or status == HTTP_FORBIDDEN:
        return FarmConfigError(f"{what}: {code or status}: {exc}")
    return PermanentError(f"{what}: {code}: {exc}")


def classify(exc: BaseException, what: str) -> Exception:
    """Map a botocore failure to our hierarchy: transient faults are retryable, credential
    and missing-resource faults are the farm's (``FarmConfigError``), the rest permanent.

    Anything that is not a botocore failure comes back as it is.
    """
    if isinstance(exc, ClientError):
        return _classify_client_error(exc, what)
    if isinstance(exc, ConnectionError | BotoCoreError | OSError):
        return RetryableError(f"{what}: {exc}")
    if isinstance(exc, ResponseParserError):
        # A 5xx whose body is not the service's error document (a proxy's or load
        # balancer's page, a cut-off answer): botocore cannot read it, and it is a fault of
        # the path to AWS like any other 5xx. botocore's own text carries the body's start.
        return RetryableError(f"{what}: unreadable answer: {str(exc)[:300]}")
    if isinstance(exc, S3UploadFailedError):  # s3transfer wraps the ClientError in text only
        m = _WRAPPED_CODE.search(str(exc))
        if m and m.group(1) in FARM_CONFIG_CODES:
            return FarmConfigError(f"{what}: {exc}")
        return RetryableError(f"{what}: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def setup_mistake(exc: BaseException) -> FarmConfigError:
    """A configured farm a command could not reach, as one line saying what to set.

    For the commands people run; a worker waits out an unreachable endpoint instead.
    """
    if isinstance(exc, NoRegionError):
        return FarmConfigError(
            "no AWS region: set HEVCQ_REGION or AWS_DEFAULT_REGION, or a region in your AWS profile"
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return FarmConfigError(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (`aws configure` writes a profile)"
        )
    reason = classify(exc, "the farm")
    if isinstance(reason, FarmConfigError):
        return reason
    return FarmConfigError(
        f"cannot reach the farm ({reason}): check the network, HEVCQ_REGION and AWS_ENDPOINT_URL"
    )
