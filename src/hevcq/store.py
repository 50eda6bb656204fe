"""The S3 side: source downloads and output uploads, with our metadata on outputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote, unquote

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from hevcq.aws import classify, error_code, retry_transient
from hevcq.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
# Multipart sizes: large enough to keep request counts low, small enough to bound memory
# (s3transfer holds about max_concurrency * chunk size in flight).
TRANSFER = TransferConfig(
    multipart_threshold=64 * MiB, multipart_chunksize=16 * MiB, max_concurrency=8
)

META_SOURCE_KEY = "hevcq-source-key"
META_SOURCE_ETAG = "hevcq-source-etag"
META_SETTINGS = "hevcq-settings-hash"
META_POOL = "hevcq-pool"


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD tells about an object; metadata keys are lower case, values decoded."""

    key: str
    size: int
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)


class BlobStore(Protocol):
    """What a job needs from object storage."""

    def head(self, key: str) -> ObjectInfo | None: ...
    def download(self, key: str, dest: Path) -> ObjectInfo: ...
    def upload(self, src: Path, key: str, metadata: dict[str, str]) -> ObjectInfo: ...


def encode_metadata(meta: dict[str, str]) -> dict[str, str]:
    """S3 user metadata must be ASCII: percent-encode values (keys are ours and ASCII)."""
    return {k: quote(v, safe="/:.-_~ ") for k, v in meta.items()}


def decode_metadata(meta: dict[str, str]) -> dict[str, str]:
    """Inverse of ``encode_metadata``."""
    return {k.lower(): unquote(v) for k, v in meta.items()}


class S3Store:
    """A bucket, through boto3 with managed (multipart, parallel) transfers."""

    def __init__(self, s3: S3Client, bucket: str, transfer: TransferConfig = TRANSFER) -> None:
        self._s3 = s3
        self.bucket = bucket
        self._transfer = transfer

    @retry_transient
    def head(self, key: str) -> ObjectInfo | None:
        """Object size, ETag and metadata, or None when it does not exist."""
        try:
            resp = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise classify(exc, f"head {key}") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"head {key}") from exc
        return ObjectInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=str(resp.get("ETag", "")).strip('"'),
            metadata=decode_metadata(dict(resp.get("Metadata", {}))),
        )

    @retry_transient
    def download(self, key: str, dest: Path) -> ObjectInfo:
        """Download to ``dest``; the returned info is checked before and after the transfer."""
        before = self.head(key)
        if before is None:
            raise classify(_missing(key), f"download {key}")
        try:
            self._s3.download_file(self.bucket, key, str(dest), Config=self._transfer)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise classify(exc, f"download {key}") from exc
        after = self.head(key)
        if after is None or after.etag != before.etag:
            raise RetryableError(f"{key} changed during download")
        return before

    @retry_transient
    def upload(
        self,
        src: Path,
        key: str,
        metadata: dict[str, str],
        progress: Callable[[int], None] | None = None,
    ) -> ObjectInfo:
        """Upload ``src`` to ``key`` with user metadata; ``progress`` gets bytes as they go."""
        extra = {"Metadata": encode_metadata(metadata), "ContentType": _content_type(key)}
        try:
            self._s3.upload_file(
                str(src), self.bucket, key, ExtraArgs=extra, Callback=progress,
                Config=self._transfer,
            )  # fmt: skip
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise classify(exc, f"upload {key}") from exc
        info = self.head(key)
        if info is None:
            raise classify(_missing(key), f"upload {key}")
        return info

    @retry_transient
    def read_range(self, key: str, start: int, length: int, etag: str | None = None) -> bytes:
        """``length`` bytes of ``key`` from ``start``; of that exact version when ``etag``."""
        byte_range = f"bytes={start}-{start + length - 1}"
        try:
            if etag:
                resp = self._s3.get_object(
                    Bucket=self.bucket, Key=key, Range=byte_range, IfMatch=f'"{etag}"'
                )
            else:
                resp = self._s3.get_object(Bucket=self.bucket, Key=key, Range=byte_range)
            return resp["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"read {key}") from exc

    def delete(self, key: str) -> None:
        """Delete an object (absent is fine)."""
        self._s3.delete_object(Bucket=self.bucket, Key=key)


def _missing(key: str) -> ClientError:
    return ClientError({"Error": {"Code": "NoSuchKey", "Message": key}}, "HeadObject")


def _content_type(key: str) -> str:
    low = key.lower()
    if low.endswith(".mkv"):
        return "video/x-matroska"
    if low.endswith((".mp4", ".m4v")):
        return "video/mp4"
    return "application/octet-stream"
