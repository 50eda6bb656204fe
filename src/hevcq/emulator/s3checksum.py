"""moto's S3 checksums computed a chunk at a time (for ``hevcq.emulator.s3disk``).

moto computes a multipart upload's checksum over whole parts held in memory (COMPOSITE)
or over a copy of the whole object (FULL_OBJECT). These give the same values from the
bytes fed in chunks: the same algorithms and the same fallbacks as ``moto.s3.utils``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
from typing import Any

try:
    import crc32c as _crc32c  # type: ignore[import-not-found]
except ImportError:  # moto falls back to CRC32 without it, and so do we
    _crc32c = None


def _utils() -> Any:
    # Imported on use: moto loads only in the endpoint process (and in tests).
    return importlib.import_module("moto.s3.utils")


class RunningChecksum:
    """moto's ``compute_checksum`` (same algorithms, same fallbacks), fed in chunks."""

    def __init__(self, algorithm: str) -> None:
        self._state = 0
        self._hash = None
        self._crc: Any = binascii.crc32
        self._width = 4
        if algorithm == "SHA1" or algorithm not in ("CRC32", "CRC32C", "CRC64NVME"):
            name = "sha1" if algorithm == "SHA1" else "sha256"  # moto's default is SHA256
            self._hash = hashlib.new(name, usedforsecurity=False)
        elif algorithm == "CRC32C" and _crc32c is not None:
            self._crc = _crc32c.crc32c
        elif algorithm == "CRC64NVME" and _utils().HAS_CRT:
            from awscrt import checksums  # type: ignore[import-not-found]  # noqa: PLC0415

            self._crc, self._width = checksums.crc64nvme, 8

    def update(self, block: bytes) -> None:
        """Fold in the next bytes."""
        if self._hash is not None:
            self._hash.update(block)
        else:
            self._state = self._crc(block, self._state)

    def digest(self) -> bytes:
        """The raw checksum of everything fed so far."""
        if self._hash is not None:
            return self._hash.digest()
        return int(self._state).to_bytes(self._width, "big")


class PartsChecksum:
    """moto's MultipartChecksumBuilder, fed part by part in chunks instead of whole parts
    (FULL_OBJECT: one checksum over every byte; COMPOSITE: the checksum of the parts')."""

    def __init__(self, algorithm: str, checksum_type: str) -> None:
        self.algorithm = algorithm
        self.full_object = checksum_type == "FULL_OBJECT"
        self._running = RunningChecksum(algorithm)
        self._part_sums = bytearray()
        self._parts = 0

    def add(self, block: bytes) -> None:
        """Fold in the next bytes of the current part."""
        self._running.update(block)

    def end_part(self) -> None:
        """The current part is complete."""
        self._parts += 1
        if not self.full_object:
            self._part_sums.extend(self._running.digest())
            self._running = RunningChecksum(self.algorithm)

    def build(self) -> tuple[str, str, int]:
        """(type, base64 checksum, parts counted), as moto's builder returns it."""
        if self.full_object:
            return "FULL_OBJECT", base64.b64encode(self._running.digest()).decode(), 1
        composite = _utils().compute_checksum(bytes(self._part_sums), self.algorithm)
        return "COMPOSITE", composite.decode(), self._parts
