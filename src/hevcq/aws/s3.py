"""The bucket on S3 (``S3Store``): exact-version downloads, fenced commits and copies, ranged
reads, small records and presigned URLs."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import S3DownloadFailedError
from s3transfer.subscribers import BaseSubscriber

from hevcq.aws.clients import classify, error_code
from hevcq.backoff import retry_transient
from hevcq.errors import CopySourceChanged, FarmConfigError, SupersededJob, WriteConflict
from hevcq.formats import content_type
from hevcq.limits import MAX_COPY_BYTES, MAX_PUT_BYTES, MiB
from hevcq.objects import ObjectInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Multipart sizes: large enough to keep request counts low, small enough to bound memory
# (s3transfer holds about max_concurrency * chunk size in flight).
TRANSFER = TransferConfig(
    multipart_threshold=64 * MiB, multipart_chunksize=16 * MiB, max_concurrency=8
)


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
        return self._head(key)

    @retry_transient
    def download(
        self,
        key: str,
        dest: Path,
        *,
        etag: str | None = None,
        version_id: str | None = None,
        known: ObjectInfo | None = None,
    ) -> ObjectInfo:
        """Download to ``dest``; with ``etag``, exactly that version or SupersededJob.

        Every GET carries ``If-Match`` (and ``VersionId`` where given), so the bytes written
        are the version asked for even if the object is overwritten during the transfer.
        ``known`` is what is already known of this version (a worker heads every source
        before it claims the job; a result names its output's size and ETag): an object
        that one GET fetches is then not headed again, and a version gone since shows as
        the GET's own 404 or 412. Larger objects are read in ranges sized from a HEAD, so
        a wrong size in ``known`` cannot shape the transfer.
        """
        small = known is not None and known.size < self._transfer.multipart_threshold
        before = known if known is not None and etag and known.etag == etag and small else None
        if before is None:
            before = self._head(key, etag=etag, version_id=version_id)
        if before is None:
            if etag:
                raise SupersededJob(f"{key} is no longer version {etag}")
            raise classify(_missing(key), f"download {key}")
        extra: dict[str, str] = {"IfMatch": f'"{before.etag}"'}
        if version_id:
            extra["VersionId"] = version_id
        try:
            if before.size < self._transfer.multipart_threshold:
                self._get_to_file(key, dest, extra)
            else:
                self._ranged_download(key, dest, before, extra)
        except (ClientError, S3DownloadFailedError, BotoCoreError, OSError) as exc:
            raise _download_error(exc, key, etag) from exc
        return before

    def _get_to_file(self, key: str, dest: Path, extra: dict[str, str]) -> None:
        resp = self._s3.get_object(Bucket=self.bucket, Key=key, **extra)  # type: ignore[arg-type]
        with dest.open("wb") as out:
            for chunk in resp["Body"].iter_chunks(MiB):
                out.write(chunk)

    def _ranged_download(
        self, key: str, dest: Path, info: ObjectInfo, extra: dict[str, str]
    ) -> None:
        # s3transfer puts the ETag it is given on every ranged GET as If-Match.
        version = {k: v for k, v in extra.items() if k == "VersionId"}
        with create_transfer_manager(self._s3, self._transfer) as manager:
            future = manager.download(
                self.bucket,
                key,
                str(dest),
                extra_args=version,
                subscribers=[_Known(info.size, f'"{info.etag}"')],
            )
            future.result()

    def _head(
        self, key: str, *, etag: str | None = None, version_id: str | None = None
    ) -> ObjectInfo | None:
        kw: dict[str, str] = {}
        if etag:
            kw["IfMatch"] = f'"{etag}"'
        if version_id:
            kw["VersionId"] = version_id
        try:
            resp = self._s3.head_object(Bucket=self.bucket, Key=key, **kw)  # type: ignore[arg-type]
        except ClientError as exc:
            if _precondition_failed(exc):
                return None
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                # HEAD answers a bare 404 for a missing key and a missing bucket alike; a
                # missing farm bucket must stop the worker, not drop the backlog as gone.
                self._bucket_exists()
                return None
            raise classify(exc, f"head {key}") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"head {key}") from exc
        return _info(key, resp)

    def _bucket_exists(self) -> None:
        """Raise FarmConfigError when the farm's bucket itself is missing."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise FarmConfigError(f"the farm's bucket {self.bucket!r} does not exist") from exc
            raise classify(exc, f"head bucket {self.bucket}") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"head bucket {self.bucket}") from exc

    @retry_transient
    def put_if(
        self, src: Path, key: str, metadata: dict[str, str], *, expect: str | None
    ) -> ObjectInfo:
        """Write ``src`` to ``key`` only if the object is still ``expect`` (None: absent).

        S3 conditional writes (``If-Match`` / ``If-None-Match: *``) make this a
        compare-and-swap: a writer that read a stale ``expect`` gets WriteConflict.
        """
        cond: dict[str, Any] = {"IfNoneMatch": "*"}
        if expect:
            cond = {"IfMatch": f'"{expect}"'}
        extra: dict[str, Any] = {
            "Metadata": encode_metadata(metadata),
            "ContentType": _content_type(key),
        }
        try:
            if src.stat().st_size <= self.max_put_bytes:
                with src.open("rb") as body:
                    kw: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": body}
                    resp = self._s3.put_object(**kw, **extra, **cond)
                etag = str(resp.get("ETag", "")).strip('"')
            else:
                etag = self._multipart_put(src, key, extra, cond)
        except ClientError as exc:
            # If-Match on an object deleted since (fetch cleans up what it brought home)
            # answers 404: for a compare-and-swap that is a change like any other.
            gone = expect is not None and error_code(exc) in ("NoSuchKey", "404")
            if gone or _precondition_failed(exc) or error_code(exc) == "ConditionalRequestConflict":
                raise WriteConflict(f"{key} changed since it was read") from exc
            raise classify(exc, f"upload {key}") from exc
        except (BotoCoreError, OSError) as exc:
            raise classify(exc, f"upload {key}") from exc
        return ObjectInfo(key=key, size=src.stat().st_size, etag=etag, metadata=dict(metadata))

    max_put_bytes = MAX_PUT_BYTES  # larger outputs are uploaded in parts

    def _multipart_put(
        self, src: Path, key: str, extra: dict[str, Any], cond: dict[str, Any]
    ) -> str:
        """A multipart upload whose completion is the conditional write (objects > 5 GiB)."""
        part_size = max(self._transfer.multipart_chunksize, -(-src.stat().st_size // 10_000))

        def upload_parts(upload_id: str) -> list[Any]:
            parts: list[Any] = []
            with src.open("rb") as f:
                for number in itertools.count(1):
                    chunk = f.read(part_size)
                    if not chunk:
                        break
                    resp = self._s3.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    parts.append({"PartNumber": number, "ETag": resp["ETag"]})
            return parts

        return self._multipart(key, extra, cond, upload_parts)

    @retry_transient
    def copy_if(
        self,
        source: str,
        source_etag: str,
        key: str,
        metadata: dict[str, str],
        *,
        expect: str | None,
    ) -> ObjectInfo:
        """A server-side copy of ``source`` (exactly ``source_etag``) to ``key`` with our own
        metadata, written only if ``key`` is still ``expect`` (None: absent), as ``put_if``.

        ``x-amz-copy-source-if-match`` pins the bytes copied; a source gone or changed is
        CopySourceChanged, a destination changed is WriteConflict. Sources over 5 GiB are
        copied in parts (UploadPartCopy), and the completion carries the condition.
        """
        head = self._head(source, etag=source_etag)
        if head is None:
            raise CopySourceChanged(f"{source} is gone or no longer {source_etag}")
        cond: dict[str, Any] = {"IfMatch": f'"{expect}"'} if expect else {"IfNoneMatch": "*"}
        extra: dict[str, Any] = {
            "Metadata": encode_metadata(metadata),
            "ContentType": _content_type(key),
        }
        copy_source = {"Bucket": self.bucket, "Key": source}
        pinned = f'"{source_etag}"'
        try:
            if head.size <= self.max_copy_bytes:
                resp = self._s3.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource=copy_source,  # type: ignore[arg-type]
                    CopySourceIfMatch=pinned,
                    MetadataDirective="REPLACE",
                    **extra,
                    **cond,
                )
                etag = str(resp.get("CopyObjectResult", {}).get("ETag", "")).strip('"')
            else:
                etag = self._multipart_copy(
                    source, head.size, key, pinned=pinned, extra=extra, cond=cond
                )
        except ClientError as exc:
            if _precondition_failed(exc) or error_code(exc) in ("NoSuchKey", "404"):
                # Which condition failed: the source's, or the destination's.
                if self._head(source, etag=source_etag) is None:
                    raise CopySourceChanged(f"{source} changed during the copy") from exc
                raise WriteConflict(f"{key} changed since it was read") from exc
            if error_code(exc) == "ConditionalRequestConflict":
                raise WriteConflict(f"{key} changed since it was read") from exc
            raise classify(exc, f"copy {source} to {key}") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"copy {source} to {key}") from exc
        return ObjectInfo(key=key, size=head.size, etag=etag, metadata=dict(metadata))

    max_copy_bytes = MAX_COPY_BYTES  # larger sources are copied in parts

    def _multipart_copy(
        self,
        source: str,
        size: int,
        key: str,
        *,
        pinned: str,
        extra: dict[str, Any],
        cond: dict[str, Any],
    ) -> str:
        """A copy in parts, each pinned to the source's ETag; the completion is conditional."""
        part_size = max(self._transfer.multipart_chunksize, -(-size // 10_000))
        part_size = min(part_size, self.max_copy_bytes)

        def copy_parts(upload_id: str) -> list[Any]:
            parts: list[Any] = []
            for number, start in enumerate(range(0, size, part_size), start=1):
                end = min(start + part_size, size) - 1
                resp = self._s3.upload_part_copy(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    CopySourceIfMatch=pinned,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]})
            return parts

        return self._multipart(key, extra, cond, copy_parts)

    def _multipart(
        self,
        key: str,
        extra: dict[str, Any],
        cond: dict[str, Any],
        add_parts: Callable[[str], list[Any]],
    ) -> str:
        """One multipart upload: ``add_parts`` fills it, the completion is the conditional
        write, and any failure on the way aborts it (no orphaned parts are billed)."""
        upload_id = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)[
            "UploadId"
        ]
        try:
            done = self._s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": add_parts(upload_id)},
                **cond,
            )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return str(done.get("ETag", "")).strip('"')

    def delete_if(self, key: str, etag: str) -> bool:
        """Delete ``key`` only while it is still ``etag``; False when it changed or is gone."""
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=f'"{etag}"')
        except ClientError as exc:
            if _precondition_failed(exc) or error_code(exc) in ("404", "NoSuchKey"):
                return False
            raise classify(exc, f"delete {key}") from exc
        return True

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
                str(src),
                self.bucket,
                key,
                ExtraArgs=extra,
                Callback=progress,
                Config=self._transfer,
            )
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
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"delete {key}") from exc

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        """Write a small object (a record) in one PUT."""
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"write {key}") from exc

    def get_bytes(self, key: str) -> bytes | None:
        """A small object's bytes, or None when it does not exist."""
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise classify(exc, f"read {key}") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"read {key}") from exc

    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, in S3's (lexicographic) order."""
        keys: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                keys.extend(o["Key"] for o in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"list {prefix}") from exc
        return keys

    def list_page(self, prefix: str, *, start_after: str | None, max_keys: int) -> list[str]:
        """At most ``max_keys`` (up to 1,000) keys under ``prefix`` after ``start_after``, in
        S3's order: one request, however many keys the prefix holds."""
        try:
            if start_after:
                page = self._s3.list_objects_v2(
                    Bucket=self.bucket, Prefix=prefix, MaxKeys=max_keys, StartAfter=start_after
                )
            else:
                page = self._s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=max_keys)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"list {prefix}") from exc
        return [o["Key"] for o in page.get("Contents", [])]

    def reachable(self) -> bool:
        """Whether the bucket answers (a HEAD of the bucket)."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError):
            return False
        return True

    def presign_get(self, key: str, ttl_s: int) -> str:
        """A URL that downloads ``key`` for ``ttl_s`` seconds."""
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_s
        )

    def presign_post(
        self, key: str, fields: dict[str, str], conditions: list[Any], ttl_s: int
    ) -> tuple[str, dict[str, str]]:
        """A SigV4 presigned POST of ``key``: (url, form fields); boto3 adds the bucket and
        key conditions itself.

        Only for one exact key: for a key ending in ``${filename}`` boto3 signs a
        ``starts-with`` condition instead, which lets the form write any key under it."""
        if key.endswith("${filename}"):
            raise ValueError(f"a presigned POST names one key, not a placeholder: {key!r}")
        post = _sigv4(self._s3).generate_presigned_post(
            self.bucket, key, Fields=fields, Conditions=conditions, ExpiresIn=ttl_s
        )
        return str(post["url"]), {k: str(v) for k, v in post["fields"].items()}


def _sigv4(s3: S3Client) -> S3Client:
    """A client like ``s3`` that signs with SigV4 (what S3 requires of new buckets)."""
    config = s3.meta.config.merge(Config(signature_version="s3v4"))
    return boto3.session.Session().client(
        "s3", region_name=s3.meta.region_name, endpoint_url=s3.meta.endpoint_url, config=config
    )


def _info(key: str, resp: Mapping[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=int(resp.get("ContentLength", 0)),
        etag=str(resp.get("ETag", "")).strip('"'),
        metadata=decode_metadata(dict(resp.get("Metadata", {}))),
    )


def _download_error(exc: Exception, key: str, etag: str | None) -> Exception:
    """What a failed GET of ``key`` (pinned to ``etag``) means for the job."""
    if isinstance(exc, S3DownloadFailedError):
        # s3transfer's ranged GETs carry the ETag as If-Match and turn a 412 into this.
        return SupersededJob(f"{key} changed during download")
    if isinstance(exc, ClientError):
        if _precondition_failed(exc):
            return SupersededJob(f"{key} changed during download")
        if etag and error_code(exc) in ("404", "NoSuchKey"):
            return SupersededJob(f"{key} is no longer version {etag}")
    return classify(exc, f"download {key}")


def _precondition_failed(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(exc) in ("PreconditionFailed", "412") or status == 412


class _Known(BaseSubscriber):
    """Tells s3transfer the size and ETag we already know, so its GETs carry If-Match."""

    def __init__(self, size: int, etag: str) -> None:
        self._size, self._etag = size, etag

    def on_queued(self, future: Any, **kwargs: Any) -> None:  # noqa: ARG002 - its signature
        future.meta.provide_transfer_size(self._size)
        future.meta.provide_object_etag(self._etag)


def _missing(key: str) -> ClientError:
    return ClientError({"Error": {"Code": "NoSuchKey", "Message": key}}, "HeadObject")


def _content_type(key: str) -> str:
    return content_type(key)
