"""moto's S3 with object bytes in files: ranged GETs read the range, uploads stream to disk.

moto keeps each object in a SpooledTemporaryFile (in memory up to its buffer size), hands
GET the whole object as bytes and slices it for a Range header, and joins multipart
uploads in a bytearray. On the embedded farm that makes a ranged download quadratic in
the object's size and memory grow with the library. This adaptation changes four places
and nothing else, so bucket notifications, conditional requests and versioning stay
moto's own:

- every object's bytes live in an unnamed temporary file on disk (freed by the kernel when
  the object is dropped or the endpoint process dies, however it dies);
- GetObject answers with a ``FileSpan`` (length, slicing and chunked iteration read only
  what is asked), so moto's own Range handling slices a file, not bytes;
- CompleteMultipartUpload copies the parts into one file, part by part;
- an object set from a ``FileSpan`` adopts its file instead of reading it.

The adaptation is written against one moto version (``MOTO_VERSION``, pinned in
pyproject.toml); ``check_moto`` says what no longer matches when moto changes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import os
import tempfile
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import IO, Any

from hevcq.limits import MiB

MOTO_VERSION = "5.2.5"
CHUNK = MiB
# A single PutObject or UploadPart body arrives as bytes (werkzeug reads it); parts are
# bounded by the client's chunk size, so only GET and the multipart join need files.

_lazy = threading.local()

try:
    import crc32c as _crc32c  # type: ignore[import-not-found]
except ImportError:  # moto falls back to CRC32 without it, and so do we
    _crc32c = None


class FileSpan:
    """A read-only range of a file that behaves like the bytes moto expects of a body."""

    def __init__(self, file: IO[bytes], start: int = 0, length: int | None = None) -> None:
        self._file = file
        self._start = start
        size = os.fstat(file.fileno()).st_size
        self._length = size - start if length is None else length

    def __len__(self) -> int:
        return self._length

    def __bool__(self) -> bool:
        return self._length > 0

    def __getitem__(self, item: slice) -> FileSpan:
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise TypeError("FileSpan takes contiguous slices only")
        begin, end, _ = item.indices(self._length)
        return FileSpan(self._file, self._start + begin, max(0, end - begin))

    def __iter__(self) -> Iterator[bytes]:
        fd, pos, left = self._file.fileno(), self._start, self._length
        while left > 0:
            block = os.pread(fd, min(CHUNK, left), pos)
            if not block:
                return
            pos += len(block)
            left -= len(block)
            yield block

    def __bytes__(self) -> bytes:
        return b"".join(self)

    def owns_whole_file(self) -> bool:
        """True when the span is its whole file, so a key can take the file over."""
        return self._start == 0 and self._length == os.fstat(self._file.fileno()).st_size

    @property
    def file(self) -> IO[bytes]:
        """The file the span reads."""
        return self._file


def _disk_file(*_args: Any, **_kwargs: Any) -> IO[bytes]:
    # Called as moto calls SpooledTemporaryFile; the in-memory threshold no longer applies.
    return tempfile.TemporaryFile()


def _value_get(self: Any) -> bytes | FileSpan:
    with self.lock:
        if getattr(_lazy, "active", False):
            return FileSpan(_reopen(self._value_buffer))
        self._value_buffer.seek(0)
        data: bytes = self._value_buffer.read()
        return data


def _value_set(self: Any, new_value: bytes | str | FileSpan) -> None:
    if isinstance(new_value, FileSpan) and new_value.owns_whole_file():
        self._value_buffer.close()
        self._value_buffer = new_value.file
        self._value_buffer.seek(0, os.SEEK_END)
        self.contentsize = len(new_value)
        return
    self._value_buffer.seek(0)
    self._value_buffer.truncate()
    if isinstance(new_value, str):
        new_value = new_value.encode("utf-8")
    chunks = new_value if isinstance(new_value, FileSpan) else (new_value,)
    for block in chunks:
        self._value_buffer.write(block)
    self._value_buffer.flush()
    self.contentsize = len(new_value)


def _reopen(file: IO[bytes]) -> IO[bytes]:
    """A file object of its own on the same bytes: a GET still streaming keeps them readable
    when the key is overwritten or deleted meanwhile."""
    file.flush()
    return os.fdopen(os.dup(file.fileno()), "rb")


def _complete(self: Any, body: Iterator[tuple[int, str]]) -> tuple[Any, str, Any]:
    """moto's FakeMultipart.complete, joining parts in a file instead of a bytearray.

    Every part is checked first (moto's errors, in moto's order); then each is copied
    into the joined file and its own file freed at once, so the join needs the object's
    size on disk once plus a part, not twice.
    """
    models = _moto("models")
    parts = _checked_parts(self, body, models)
    checksum_algo = self.metadata.get("x-amz-checksum-algorithm")
    checksum_type = self.metadata.get("x-amz-checksum-type")
    checksums: Any = models.MultipartChecksumBuilder(checksum_algo, checksum_type)
    if checksums.checksum_type == "FULL_OBJECT":
        checksums = FullObjectChecksum(checksums.checksum_algorithm)
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the new key takes the file over
    md5s = bytearray()
    for part in parts:
        md5s.extend(bytes.fromhex(part.etag.replace('"', "")))
        value = part.value  # one part in memory at a time: bounded by the part size
        out.write(value)
        checksums.addPart(value)
        part.dispose()
    out.flush()
    self.parts.clear()
    full_etag = models.md5_hash()
    full_etag.update(bytes(md5s))
    return FileSpan(out), f"{full_etag.hexdigest()}-{len(parts)}", checksums.build()


def _checked_parts(self: Any, body: Iterator[tuple[int, str]], models: Any) -> list[Any]:
    parts: list[Any] = []
    for pn, etag in body:
        part = self.parts.get(pn)
        if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
            raise models.InvalidPart()
        if parts and parts[-1].contentsize < models.S3_UPLOAD_PART_MIN_SIZE:
            raise models.EntityTooSmall()
        parts.append(part)
    if not parts:
        raise models.MalformedXML
    return parts


class FullObjectChecksum:
    """moto's whole-object multipart checksum, computed part by part instead of over a
    copy of the whole object (the same algorithms and fallbacks as moto.s3.utils)."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self._state = 0
        self._hash = None
        self._width = 4
        if algorithm in ("SHA1", "SHA256"):
            self._hash = hashlib.new(algorithm.lower(), usedforsecurity=False)
        elif algorithm == "CRC64NVME" and _moto("utils").HAS_CRT:
            self._width = 8

    def addPart(self, part: bytes) -> None:  # moto's method name
        """Fold one part into the running checksum."""
        if self._hash is not None:
            self._hash.update(part)
        elif self._width == 8:
            from awscrt import checksums  # type: ignore[import-not-found]  # noqa: PLC0415

            self._state = checksums.crc64nvme(part, self._state)
        elif self.algorithm == "CRC32C" and _crc32c is not None:
            self._state = _crc32c.crc32c(part, self._state)
        else:
            self._state = binascii.crc32(part, self._state)

    def build(self) -> tuple[str, str, int]:
        """(type, base64 checksum, 1), as moto's builder returns it."""
        if self._hash is not None:
            digest = self._hash.digest()
        else:
            digest = self._state.to_bytes(self._width, "big")
        return "FULL_OBJECT", base64.b64encode(digest).decode(), 1


def _lazy_get_object(original: Any) -> Any:
    def get_object(self: Any) -> Any:
        _lazy.active = True
        try:
            return original(self)
        finally:
            _lazy.active = False

    get_object.__wrapped__ = original  # type: ignore[attr-defined]
    return get_object


def check_moto() -> list[str]:
    """What this adaptation relies on that the installed moto no longer has (empty: all)."""
    import moto  # noqa: PLC0415

    models, responses = _moto("models"), _moto("responses")
    problems = []
    if moto.__version__ != MOTO_VERSION:
        problems.append(f"moto {moto.__version__} is installed, written for {MOTO_VERSION}")
    key_init = models.FakeKey.__init__.__code__.co_names
    needs = {
        "FakeKey.__init__ makes _value_buffer with tempfile.SpooledTemporaryFile": (
            "SpooledTemporaryFile" in key_init and "_value_buffer" in key_init
        ),
        "FakeKey.value is a property": isinstance(models.FakeKey.__dict__.get("value"), property),
        "S3Response.get_object returns key.value": "value"
        in responses.S3Response.get_object.__code__.co_names,
        "FakeMultipart.complete and set_part exist": hasattr(models.FakeMultipart, "complete")
        and hasattr(models.FakeMultipart, "set_part"),
        "MultipartChecksumBuilder.addPart exists": hasattr(
            models.MultipartChecksumBuilder, "addPart"
        ),
        "moto.s3.models has InvalidPart, EntityTooSmall, MalformedXML, md5_hash": all(
            hasattr(models, n)
            for n in ("InvalidPart", "EntityTooSmall", "MalformedXML", "md5_hash")
        ),
        "_handle_range_header slices response_content": "response_content"
        in responses.S3Response._handle_range_header.__code__.co_varnames,
    }
    problems += [what for what, ok in needs.items() if not ok]
    return problems


def _moto(name: str) -> Any:
    # Imported on use: moto loads only in the endpoint process (and in tests).
    return importlib.import_module(f"moto.s3.{name}")


def _patches() -> list[tuple[Any, str, Any]]:
    models, responses = _moto("models"), _moto("responses")
    return [
        (models, "tempfile", SimpleNamespace(SpooledTemporaryFile=_disk_file)),
        (models.FakeKey, "value", property(_value_get, _value_set)),
        (models.FakeMultipart, "complete", _complete),
        (responses.S3Response, "get_object", _lazy_get_object(responses.S3Response.get_object)),
    ]


_installed: list[tuple[Any, str, Any]] = []


def install() -> None:
    """Apply the adaptation to the imported moto (idempotent)."""
    if _installed:
        return
    for owner, name, new in _patches():
        _installed.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, new)


def uninstall() -> None:
    """Undo ``install`` (tests)."""
    while _installed:
        owner, name, old = _installed.pop()
        setattr(owner, name, old)
