"""Where the local S3 keeps object bytes: a file per object, open only while it is used.

One open file per stored object tied the number of objects to the process's descriptor
limit (under ``ulimit -n 256`` the 251st object failed). Each object's bytes are a named
file in a directory of the process's own instead (``ObjectFile``), opened for each read or
write and closed after. A GET in flight reads through a descriptor of its own, so the bytes
stay readable when the key is overwritten or deleted meanwhile: the name goes, the open
file stays until the GET ends.

A file is removed when its object is dropped, the directory when the process exits. A
process killed outright leaves its directory behind; the next process to make one removes
it. Each directory holds a lock file its owner keeps locked, and the kernel releases the
lock however the owner ends, so a free lock means an abandoned directory.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import itertools
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from hevcq.limits import BODY_CHUNK

PREFIX = "hevcq-s3-"
_OWNER = ".owner"


class _Store:
    """This process's directory of object files, locked while the process lives."""

    def __init__(self) -> None:
        sweep(Path(tempfile.gettempdir()))
        self.path = Path(tempfile.mkdtemp(prefix=PREFIX))
        self._pid = os.getpid()
        self._names = itertools.count()  # next() is atomic: no two threads get one name
        self._lock = _lock(self.path)
        atexit.register(self.remove)

    def new_file(self) -> tuple[Path, IO[bytes]]:
        """A new empty file (a generated name) and a handle to write and read it."""
        path = self.path / str(next(self._names))
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o600)
        return path, os.fdopen(fd, "w+b")

    def remove(self) -> None:
        """Remove the directory and every file in it (at exit; not in a forked child)."""
        if os.getpid() == self._pid:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._lock)


_store: _Store | None = None
_store_made = threading.Lock()


def store() -> _Store:
    """This process's store directory, made on first use."""
    global _store  # noqa: PLW0603 - one directory per process, made when first needed
    with _store_made:
        if _store is None or _store._pid != os.getpid():
            _store = _Store()
        return _store


def _lock(directory: Path) -> int:
    # Locked before it takes its name: a sweep never sees this directory's lock free.
    fd = os.open(directory / f"{_OWNER}-new", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    (directory / f"{_OWNER}-new").rename(directory / _OWNER)
    return fd


def sweep(parent: Path) -> list[Path]:
    """Remove the store directories in ``parent`` whose owner is gone; returns them."""
    removed = []
    for path in parent.glob(f"{PREFIX}*"):
        with contextlib.suppress(OSError):  # another user's, or removed meanwhile
            if _abandoned(path):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _abandoned(path: Path) -> bool:
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    fd = os.open(path / _OWNER, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its owner holds the lock: alive
    finally:
        os.close(fd)
    return True


class ObjectFile:
    """An object's bytes in a store file, opened for each use: the file API moto's
    ``FakeKey`` uses on its buffer, without holding a descriptor between calls."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path  # made on the first write
        self._pos = 0
        self._closed = False

    @classmethod
    def new(cls) -> tuple[ObjectFile, IO[bytes]]:
        """A new empty object file, and a handle to write it (the caller closes it)."""
        path, handle = store().new_file()
        return cls(path), handle

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position used by ``read``, ``write`` and ``truncate``."""
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size()}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        """The position."""
        return self._pos

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all to the end when negative) from the position."""
        self._check()
        if self._path is None:
            return b""
        with self._path.open("rb") as f:
            f.seek(self._pos)
            data = f.read(size)
        self._pos += len(data)
        return data

    def write(self, data: bytes) -> int:
        """Write ``data`` at the position."""
        self.writelines([data])
        return len(data)

    def writelines(self, blocks: Iterable[bytes]) -> None:
        """Write ``blocks`` one after another at the position, opening the file once."""
        self._check()
        if self._path is None:
            self._path, handle = store().new_file()
        else:
            handle = self._path.open("r+b")
        with handle:
            handle.seek(self._pos)
            for block in blocks:
                self._pos += handle.write(block)

    def truncate(self, size: int | None = None) -> int:
        """Cut the file at ``size`` (the position when not given)."""
        self._check()
        size = self._pos if size is None else size
        if self._path is not None:
            os.truncate(self._path, size)
        return size

    def flush(self) -> None:
        """Nothing to flush: every write closes its handle."""

    def open(self) -> IO[bytes]:
        """A read handle of its own: the bytes stay readable through it after ``close``.

        Raises FileNotFoundError once the object is closed.
        """
        if self._closed:
            raise FileNotFoundError("the object's file was removed")
        if self._path is None:
            self.writelines([])
        assert self._path is not None  # noqa: S101 - made by writelines
        return self._path.open("rb")

    def close(self) -> None:
        """Remove the file (readers that opened it keep reading)."""
        self._closed = True
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink()

    def _size(self) -> int:
        return 0 if self._path is None else self._path.stat().st_size

    def _check(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a removed object file")

    def __del__(self) -> None:
        self.close()


class FileSpan:
    """A read-only range of a file that behaves like the bytes moto expects of a body.

    A span made over a whole new object file owns it until a key takes it (``take``); an
    object file nobody took is removed when the span goes.
    """

    def __init__(
        self,
        file: IO[bytes],
        start: int = 0,
        length: int | None = None,
        owner: ObjectFile | None = None,
    ) -> None:
        self._file = file
        self._owner = owner
        self.md5: str | None = None  # known when the bytes were hashed as they arrived
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
            block = os.pread(fd, min(BODY_CHUNK, left), pos)
            if not block:
                return
            pos += len(block)
            left -= len(block)
            yield block

    def __bytes__(self) -> bytes:
        return b"".join(self)

    def take(self) -> ObjectFile | None:
        """The object file this span covers whole, for one key to keep (then None)."""
        owner, self._owner = self._owner, None
        return owner

    @property
    def file(self) -> IO[bytes]:
        """The file the span reads."""
        return self._file
