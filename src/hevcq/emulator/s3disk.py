"""moto's S3 with object bytes in files: ranged GETs read the range, uploads stream to disk.

moto keeps each object in a SpooledTemporaryFile (in memory up to its buffer size), hands
GET the whole object as bytes and slices it for a Range header, joins multipart uploads
in a bytearray, and reads every request body whole (werkzeug's ``Request.data``). On the
embedded farm that makes a ranged download quadratic in the object's size and memory grow
with the library and with the bodies in flight. This adaptation changes five places and
nothing else, so bucket notifications, checksums, ETags, conditional requests and
versioning stay moto's own:

- every object's bytes live in a file on disk, open only while it is read or written, so
  the number of objects is not bounded by the process's descriptor limit
  (``hevcq.emulator.s3files``: removed when the object is dropped or the process ends);
- a large plain S3 PUT body (PutObject, UploadPart) is copied from the socket into such a
  file a chunk at a time, and moto gets a ``FileSpan`` of it as the request's data; so is
  the file of a browser POST that ``hevcq.emulator.postpolicy`` checked;
- GetObject answers with a ``FileSpan`` (length, slicing and chunked iteration read only
  what is asked), so moto's own Range handling slices a file, not bytes;
- CompleteMultipartUpload copies the parts into one file, part by part;
- an object set from a ``FileSpan`` adopts its file instead of reading it.

Two more changes serve every service the endpoint answers (``hevcq.emulator.motoserver``):
moto's service list is read once, and moto's registry of model instances holds them
weakly, so what moto drops is freed.

The adaptation is written against one moto version (``MOTO_VERSION``, pinned in
pyproject.toml); ``check_moto`` says what no longer matches when moto changes.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import IO, Any

from hevcq.emulator import motoserver
from hevcq.emulator.postpolicy import CHECKED
from hevcq.emulator.s3checksum import PartsChecksum
from hevcq.emulator.s3files import FileSpan, ObjectFile
from hevcq.limits import BODY_CHUNK, MiB

MOTO_VERSION = "5.2.5"
CHUNK = BODY_CHUNK
# Smaller bodies (bucket settings, tags, small objects) keep moto's own path as bytes.
SPOOL_MIN_BYTES = MiB
SPOOL_AHEAD = 16  # 1 MiB: chunks of one body read from the socket and not yet written
# Chunks read and not yet written, over all the bodies arriving at once: the endpoint's
# memory for bodies stays flat however many PUTs a farm has in flight (each also holds the
# one chunk it is reading).
SPOOL_BUDGET = 128  # 8 MiB
# A GET looks its key up again when the key's file was removed between the lookup and the
# read (the key overwritten or deleted meanwhile): S3 answers the new object, or NoSuchKey.
VANISHED_LOOKUPS = 3
_spool_budget = threading.BoundedSemaphore(SPOOL_BUDGET)
_FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")

_lazy = threading.local()


def _disk_file(*_args: Any, **_kwargs: Any) -> ObjectFile:
    # Called as moto calls SpooledTemporaryFile; the in-memory threshold no longer applies.
    return ObjectFile()


class _Vanished(Exception):
    """The key's file was removed between the key's lookup and its read."""


def _value_get(self: Any) -> bytes | FileSpan:
    with self.lock:
        if getattr(_lazy, "active", False):
            try:
                return FileSpan(_read_handle(self._value_buffer))
            except FileNotFoundError as exc:
                raise _Vanished from exc
        self._value_buffer.seek(0)
        data: bytes = self._value_buffer.read()
        return data


def _value_set(self: Any, new_value: bytes | str | FileSpan) -> None:
    owned = new_value.take() if isinstance(new_value, FileSpan) else None
    if owned is not None:
        self._value_buffer.close()
        self._value_buffer = owned
        self.contentsize = len(new_value)
        if new_value.md5 is not None:  # type: ignore[union-attr]  # a FileSpan here
            self._etag = new_value.md5  # type: ignore[union-attr]
        return
    if isinstance(new_value, str):
        new_value = new_value.encode("utf-8")
    self._value_buffer.seek(0)
    self._value_buffer.truncate()
    self._value_buffer.writelines(new_value if isinstance(new_value, FileSpan) else (new_value,))
    self._value_buffer.flush()
    self.contentsize = len(new_value)


def _read_handle(buffer: Any) -> IO[bytes]:
    """A read handle of its own on a key's bytes: a GET still streaming keeps them readable
    when the key is overwritten or deleted meanwhile."""
    if isinstance(buffer, ObjectFile):
        return buffer.open()
    return _reopen(buffer)  # a key moto made before the adaptation was installed


def _reopen(file: IO[bytes]) -> IO[bytes]:
    file.flush()
    return os.fdopen(os.dup(file.fileno()), "rb")


def _spools(request: Any) -> bool:
    """True for a body moto would only store: a large, plain, signed S3 PUT.

    Anything moto parses or decodes itself keeps moto's path: aws-chunked or streaming
    SigV4 payloads (moto strips their framing), form bodies, a checksum algorithm named
    without its value (moto computes it over the body), unsigned requests and other
    services' PUTs.
    """
    length = request.content_length
    if request.method != "PUT" or length is None or length < SPOOL_MIN_BYTES:
        return False
    headers = request.headers
    signed_by = headers.get("Authorization", "") + request.args.get("X-Amz-Credential", "")
    algorithm = headers.get("x-amz-sdk-checksum-algorithm", "")
    return (
        "/s3/aws4_request" in signed_by
        and not headers.get("x-amz-content-sha256", "").startswith("STREAMING-")
        and "aws-chunked" not in headers.get("Content-Encoding", "")
        and request.mimetype not in _FORM_TYPES
        and (not algorithm or f"x-amz-checksum-{algorithm.lower()}" in headers)
    )


def _spool(stream: IO[bytes]) -> FileSpan:
    """Copy a request body into a new object file a chunk at a time, hashing it on the way
    (moto's ETag would otherwise read the file back in 16 MiB blocks).

    The socket is read in this thread while another hashes and writes what was read:
    both release the GIL for the bulk of their work, so a body costs about the longer
    of the two rather than their sum. At most ``SPOOL_AHEAD`` chunks wait between them,
    and at most ``SPOOL_BUDGET`` over all bodies: a chunk read waits for room before it
    is queued. Only writers free room, and they wait on the disk, never on a client, so a
    stalled client holds no room that others need.
    """
    owner, out = ObjectFile.new()  # the new key or part takes the file over
    md5 = _moto("models").md5_hash()
    blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=SPOOL_AHEAD)
    failed: list[BaseException] = []

    def sink() -> None:
        while (block := blocks.get()) is not None:
            try:
                if not failed:  # else drain: the reader must never block on a full queue
                    out.write(block)
                    md5.update(block)
            except BaseException as exc:  # disk full: raised by the reader below
                failed.append(exc)
            finally:
                _spool_budget.release()

    writer = threading.Thread(target=sink, name="spool-writer", daemon=True)
    writer.start()
    try:
        while not failed and (block := stream.read(CHUNK)):
            _spool_budget.acquire()
            blocks.put(block)
    except BaseException:
        out.close()
        owner.close()
        raise
    finally:
        blocks.put(None)
        writer.join()
    if failed:
        out.close()
        owner.close()
        raise failed[0]
    out.flush()
    span = FileSpan(out, owner=owner)
    span.md5 = md5.hexdigest()
    return span


def _spooled_get_data(original: Any) -> Any:
    def get_data(
        self: Any, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> Any:
        if as_text or getattr(self, "_cached_data", None) is not None or not _spools(self):
            return original(self, cache=cache, as_text=as_text, parse_form_data=parse_form_data)
        if parse_form_data:
            # As werkzeug does first: settles ``form`` (empty: not a form type) from the
            # stream, so a later ``request.form`` never re-reads the cached data as bytes.
            self._load_form_data()
        span = _spool(self.stream)
        if cache:
            self._cached_data = span
        return span

    get_data.__wrapped__ = original  # type: ignore[attr-defined]
    return get_data


class _SpanFile:
    """Where werkzeug's form parser writes a POST's file: a new object file whose whole read
    (moto's ``uploaded.stream.read()``) is a ``FileSpan`` instead of bytes."""

    def __init__(self) -> None:
        # The handle is closed with the request; the object file goes with its last holder.
        self._owner: ObjectFile | None
        self._owner, self._file = ObjectFile.new()

    def write(self, data: bytes) -> int:
        """Append bytes (the parser)."""
        return self._file.write(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move in the file (the parser rewinds it)."""
        return self._file.seek(offset, whence)

    def read(self, size: int = -1) -> bytes | FileSpan:
        """The rest of the file: a span of it when read whole."""
        if size >= 0:
            return self._file.read(size)
        self._file.flush()
        start = self._file.tell()
        owner, self._owner = (self._owner, None) if start == 0 else (None, self._owner)
        span = FileSpan(_reopen(self._file), start, owner=owner)
        self._file.seek(0, os.SEEK_END)
        return span

    def close(self) -> None:
        """Close this handle (a span read from it keeps its own)."""
        self._file.close()


def _form_file_on_disk(original: Any) -> Any:
    def get_file_stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.environ.get(CHECKED):
            return _SpanFile()
        return original(self, *args, **kwargs)

    get_file_stream.__wrapped__ = original  # type: ignore[attr-defined]
    return get_file_stream


def _complete(self: Any, body: Iterator[tuple[int, str]]) -> tuple[Any, str, Any]:
    """moto's FakeMultipart.complete, joining parts in a file instead of a bytearray.

    Every part is checked first (moto's errors, in moto's order); then each is copied
    into the joined file a chunk at a time (the checksum folded in as it goes) and its
    own file freed at once, so the join needs the object's size on disk once plus a part,
    and a chunk of memory.
    """
    models = _moto("models")
    parts = _checked_parts(self, body, models)
    builder: Any = models.MultipartChecksumBuilder(
        self.metadata.get("x-amz-checksum-algorithm"), self.metadata.get("x-amz-checksum-type")
    )
    checksums = PartsChecksum(builder.checksum_algorithm, builder.checksum_type)
    owner, out = ObjectFile.new()  # the new key takes the file over
    md5s = bytearray()
    for part in parts:
        md5s.extend(bytes.fromhex(part.etag.replace('"', "")))
        with part.lock:
            span = FileSpan(_read_handle(part._value_buffer))
        for block in span:
            out.write(block)
            checksums.add(block)
        checksums.end_part()
        span.file.close()
        part.dispose()
    out.flush()
    self.parts.clear()
    full_etag = models.md5_hash()
    full_etag.update(bytes(md5s))
    joined = FileSpan(out, owner=owner)
    return joined, f"{full_etag.hexdigest()}-{len(parts)}", checksums.build()


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


def _lazy_get_object(original: Any) -> Any:
    def get_object(self: Any) -> Any:
        _lazy.active = True
        try:
            for _ in range(VANISHED_LOOKUPS):
                with contextlib.suppress(_Vanished):
                    return original(self)
            # Replaced as often as it was looked up: gone, as far as this GET can tell.
            raise _moto("exceptions").MissingKey(key=self.parse_key_name())
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
        "FakeKey.dispose closes _value_buffer (removes the object's file)": {
            "_value_buffer",
            "close",
        }
        <= set(models.FakeKey.dispose.__code__.co_names),
        "S3Response.get_object returns key.value": "value"
        in _unwrapped(responses.S3Response.get_object).__code__.co_names,
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
        **_body_needs(models, responses),
        **motoserver.needs(),
    }
    problems += [what for what, ok in needs.items() if not ok]
    return problems


def _unwrapped(f: Any) -> Any:
    return getattr(f, "__wrapped__", f)


def _body_needs(models: Any, responses: Any) -> dict[str, bool]:
    """What streaming PUT bodies to disk relies on."""
    from moto.core import request  # noqa: PLC0415
    from moto.core.responses import BaseResponse  # noqa: PLC0415
    from werkzeug.wrappers import Request  # noqa: PLC0415

    own = request.Request.__dict__.get("get_data")
    own_files = request.Request.__dict__.get("_get_file_stream")
    s3 = responses.S3Response
    streaming = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    return {
        "moto's Request inherits werkzeug's get_data, which reads and caches the stream": (
            own is None or hasattr(own, "__wrapped__")
        )
        and {"stream", "_cached_data"} <= set(Request.get_data.__code__.co_names),
        "BaseResponse.setup_class takes the body from request.data, or a form's file": {
            "data",
            "files",
            "stream",
            "read",
        }
        <= set(BaseResponse.setup_class.__code__.co_names),
        "moto's Request inherits werkzeug's _get_file_stream (the form parser's files)": (
            own_files is None or hasattr(own_files, "__wrapped__")
        )
        and hasattr(Request, "_get_file_stream"),
        "S3Response.setup_class decodes only streaming payloads": streaming
        in s3.setup_class.__code__.co_consts,
        "S3Response.put_object and upload_part store self.body": all(
            {"body", "_get_checksum"} <= set(f.__code__.co_names)
            for f in (s3.put_object, s3.upload_part)
        ),
        "FakeKey.etag is _etag when set, else hashes _value_buffer": {"_etag", "_value_buffer"}
        <= set(models.FakeKey.etag.fget.__code__.co_names),
    }


def _moto(name: str) -> Any:
    # Imported on use: moto loads only in the endpoint process (and in tests).
    return importlib.import_module(f"moto.s3.{name}")


def _patches() -> list[tuple[Any, str, Any]]:
    from moto.core.request import Request  # noqa: PLC0415

    models, responses = _moto("models"), _moto("responses")
    return [
        *motoserver.patches(),
        (Request, "get_data", _spooled_get_data(Request.get_data)),
        (Request, "_get_file_stream", _form_file_on_disk(Request._get_file_stream)),
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
        _installed.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, new)
