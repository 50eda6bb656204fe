"""Objects in the bucket as hevcq sees them: what HEAD tells, our metadata, the one protocol.

``hevcq.aws.s3.S3Store`` implements ``ObjectStore`` on S3; ``tests.fakes.FakeStore`` in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD tells about an object; metadata keys are lower case, values decoded."""

    key: str
    size: int
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    """The bucket as every part of hevcq sees it (``S3Store``; ``tests.fakes.FakeStore``)."""

    def head(self, key: str) -> ObjectInfo | None: ...
    def download(
        self,
        key: str,
        dest: Path,
        *,
        etag: str | None = None,
        version_id: str | None = None,
        known: ObjectInfo | None = None,
    ) -> ObjectInfo: ...
    def read_range(self, key: str, start: int, length: int, etag: str | None = None) -> bytes: ...
    def upload(
        self,
        src: Path,
        key: str,
        metadata: dict[str, str],
        progress: Callable[[int], None] | None = None,
    ) -> ObjectInfo: ...
    def put_if(
        self, src: Path, key: str, metadata: dict[str, str], *, expect: str | None
    ) -> ObjectInfo: ...
    def copy_if(
        self,
        source: str,
        source_etag: str,
        key: str,
        metadata: dict[str, str],
        *,
        expect: str | None,
    ) -> ObjectInfo: ...
    def delete_if(self, key: str, etag: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list_keys(self, prefix: str) -> list[str]: ...
