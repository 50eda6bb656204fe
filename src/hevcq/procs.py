"""Small facts about processes: whether one is alive, and dying with a parent (the embedded
farm's endpoint and workers never outlive the ingest that started them)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading

PR_SET_PDEATHSIG = 1  # linux/prctl.h
M_MMAP_THRESHOLD = -3  # malloc.h: mallopt parameters
M_ARENA_MAX = -8
MALLOC_ARENAS = 2
MALLOC_MMAP_THRESHOLD = 1024 * 1024
PARENT_POLL_S = 1.0  # how often the watch thread looks for the parent


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists (on this host, in this pid namespace)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def die_with_parent(parent: int, stop: threading.Event) -> None:
    """Exit at once when ``parent`` goes, however it goes: a kernel signal where Linux gives
    one (``PR_SET_PDEATHSIG``), and a watch thread everywhere.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while not stop.wait(PARENT_POLL_S):
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def bound_malloc() -> None:
    """Keep glibc's heap from holding on to large buffers; a no-op elsewhere.

    Uploads and downloads pass 1-16 MiB buffers through thread pools. By default glibc
    gives each thread an arena that keeps its own high-water mark, and raises its mmap
    threshold each time such a buffer is freed, so later ones come from those arenas and
    are never returned: a process's peak memory would creep up with the number of files
    it moved, not with what it holds at once. A fixed threshold (buffers of 1 MiB and
    more are mapped and unmapped) and two arenas keep it flat. The same as the
    ``MALLOC_ARENA_MAX`` / ``MALLOC_MMAP_THRESHOLD_`` variables, set from inside.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)
        libc.mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
