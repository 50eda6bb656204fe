"""Folders and files only their owner may read: the state dir, run logs, the catalog, scratch.

Folders are 0700 and files 0600 whatever the umask; an existing folder or file with a
looser mode is tightened. The default scratch folder lives in the shared temporary
folder, where another user may have made the name first: ``scratch_dir`` never uses a
folder it does not own outright.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Literal, TextIO, overload

import structlog

DIR_MODE = 0o700
FILE_MODE = 0o600
_OTHERS = 0o077  # group and world bits

log = structlog.get_logger()


def private_dir(path: Path) -> Path:
    """``path`` as a folder only its owner may enter: missing folders made 0700, it tightened."""
    missing = []
    here = path
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
    _tighten(path, DIR_MODE)
    return path


def _tighten(path: Path, mode: int) -> None:
    # chmod after mkdir/open: the umask may have dropped bits, never added them, but an
    # existing entry keeps the mode it was made with.
    if stat.S_IMODE(path.stat().st_mode) != mode:
        path.chmod(mode)


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing, mode 0600 (an existing file is tightened)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    _tighten(path, FILE_MODE)
    return path


@overload
def open_private(path: Path, mode: Literal["a", "w"]) -> TextIO: ...
@overload
def open_private(path: Path, mode: Literal["ab"]) -> BinaryIO: ...
def open_private(path: Path, mode: Literal["a", "w", "ab"]) -> TextIO | BinaryIO:
    """Open for appending or writing a file of mode 0600, its folder private too."""
    private_dir(path.parent)
    private_file(path)
    if mode == "ab":
        return path.open("ab")
    return path.open(mode, encoding="utf-8")


def owned_privately(path: Path, uid: int) -> str | None:
    """None when ``path`` is a real folder (no symlink) of ``uid`` with mode 0700; else why not."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return "missing"
    if not stat.S_ISDIR(st.st_mode):
        return "not a folder" + (" (a symlink)" if stat.S_ISLNK(st.st_mode) else "")
    if st.st_uid != uid:
        return f"owned by uid {st.st_uid}"
    if stat.S_IMODE(st.st_mode) & _OTHERS:
        return f"mode {stat.S_IMODE(st.st_mode):04o}"
    return None


def scratch_dir(tmp: Path | None = None, uid: int | None = None) -> Path:
    """The default scratch folder: ``<tmp>/hevcq-work-<uid>``, 0700, owned by this user.

    A name taken by someone else (another user's folder, a looser mode, a symlink or a
    file) is never used: this process gets a fresh private folder instead, with a warning.
    """
    tmp = Path(tempfile.gettempdir()) if tmp is None else tmp
    uid = os.getuid() if uid is None else uid
    path = tmp / f"hevcq-work-{uid}"
    try:
        path.mkdir(mode=DIR_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        return _fresh(tmp, uid, path, str(exc))
    why = owned_privately(path, uid)
    return path if why is None else _fresh(tmp, uid, path, why)


def _fresh(tmp: Path, uid: int, refused: Path, why: str) -> Path:
    # mkdtemp makes a new folder of mode 0700 with a random name: nobody can have made it.
    path = Path(tempfile.mkdtemp(prefix=f"hevcq-work-{uid}-", dir=tmp))
    log.warning("scratch_folder_refused", refused=str(refused), reason=why, using=str(path))
    return path
