"""How a machine's cores are shared among encodes on the embedded farm.

Each worker process is one slot: it runs one encode at a time and takes any pool's work.
The embedded farm starts ``slots`` of them and gives each encode ``cores // slots``
threads, so that two encodes on two cores do not each start threads for all the cores.

Up to four cores, one encode per core: encoders run best single-threaded per core (no
synchronisation, no idle frame threads at the ends of a file), and a library keeps every
core busy. Beyond that, encodes of four threads each: x265 and x264 still scale nearly
linearly to about four threads at 1080p, and fewer, larger encodes hold less memory and
finish single files sooner (docs/benchmarks.md, "Larger machines").

Memory bounds the slots too (``memory_slots``): a NAS with four cores and 4 GiB free
cannot hold four encodes of a 4K phone clip (1.5 GB of x265 each), and an encode the
kernel kills for memory is tried again into the same squeeze until it dead-letters.
Fewer slots lose little: each gets the cores the others would have had.
"""

from __future__ import annotations

import os
from pathlib import Path

# Threads one encode gets once a machine has more cores than SMALL_MACHINE_CORES.
THREADS_PER_SLOT_AT_SCALE = 4
SMALL_MACHINE_CORES = 4
GIB = 2**30
# What one slot may hold at its peak: a 4K source's x265 encode at `medium` (1.52 GB on
# one thread, 1.55 GB on two, measured 2026-11-28) and its worker process (0.21 GB,
# docs/benchmarks.md), with room to spare. 1080p encodes hold about a third of that.
SLOT_MEMORY_BYTES = 2 * GIB
# What the farm holds besides its slots: the embedded endpoint, the ingest and the
# dashboard (about 0.1 GB each).
FARM_MEMORY_BYTES = GIB // 2
MEMINFO = Path("/proc/meminfo")
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# A cgroup's limit and usage: v2's files, then v1's memory controller's.
CGROUP_V2 = ("memory.max", "memory.current")
CGROUP_V1 = ("memory.limit_in_bytes", "memory.usage_in_bytes")


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset
    narrows), or the machine's count where affinity is unknown."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def free_memory(
    meminfo: Path = MEMINFO, proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT
) -> int | None:
    """Bytes of memory this process's programs may still take: what the kernel says is
    available (``MemAvailable``: free, and cache it can drop), or what is left under a
    cgroup limit where that is less (a container's, a systemd service's); None where
    neither can be read (not Linux)."""
    figures = [
        b for b in (_available(meminfo), cgroup_headroom(proc_cgroup, root)) if b is not None
    ]
    return min(figures) if figures else None


def _available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "MemAvailable":
                return int(value.split()[0]) * 1024  # in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_cgroups(
    proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT
) -> list[tuple[Path, tuple[str, str]]]:
    """This process's cgroup folders that can limit its memory, each with the names of
    its limit and usage files (``CGROUP_V2`` or ``CGROUP_V1``); empty where
    ``proc_cgroup`` cannot be read.

    ``proc_cgroup`` says ``0::/path`` for v2 and ``N:memory:/path`` for v1's memory
    controller; inside a container with its own cgroup namespace the path is ``/``, and
    the container's limit is at the root."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    places: list[tuple[Path, tuple[str, str]]] = []
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if controllers == "":
            places.append((root / path.lstrip("/"), CGROUP_V2))
        elif "memory" in controllers.split(","):
            places.append((root / "memory" / path.lstrip("/"), CGROUP_V1))
    return places


def cgroup_headroom(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int | None:
    """The least room left under the memory limits of this process's cgroup and those
    above it (``memory_cgroups``); None where none is set or readable."""
    rooms = []
    for folder, (limit_name, usage_name) in memory_cgroups(proc_cgroup, root):
        for level in (folder, *folder.parents):
            if level != root and root not in level.parents:
                break
            room = _room(level / limit_name, level / usage_name)
            if room is not None:
                rooms.append(room)
    return min(rooms) if rooms else None


def _room(limit_file: Path, usage_file: Path) -> int | None:
    try:
        limit = limit_file.read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int(usage_file.read_text().strip()))
    except (OSError, ValueError):
        return None


def memory_slots(free: int) -> int:
    """How many slots ``free`` bytes of memory hold (at least one)."""
    return max(1, (free - FARM_MEMORY_BYTES) // SLOT_MEMORY_BYTES)


def default_slots(cores: int, free: int | None = None) -> int:
    """Concurrent encodes for a machine of ``cores`` cores (at least one), and no more
    than ``free`` bytes of memory hold (``memory_slots``) where that is known."""
    if cores <= SMALL_MACHINE_CORES:
        by_cores = max(1, cores)
    else:
        by_cores = max(SMALL_MACHINE_CORES, cores // THREADS_PER_SLOT_AT_SCALE)
    return by_cores if free is None else min(by_cores, memory_slots(free))


def threads_per_slot(cores: int, slots: int) -> int:
    """Threads each of ``slots`` concurrent encodes may use on ``cores`` cores."""
    return max(1, cores // max(1, slots))


def memory_note(cores: int, free: int | None) -> str | None:
    """What a person is told when memory, not the cores, sets the slots (pure); None
    when it does not."""
    by_cores = default_slots(cores)
    if free is None or memory_slots(free) >= by_cores:
        return None
    slots = memory_slots(free)
    return (
        f"{slots} encode{'s' if slots > 1 else ''} at a time on {cores} cores: "
        f"{free / GIB:.1f} GiB of memory is free, and one encode of a 4K source may take "
        f"{SLOT_MEMORY_BYTES / GIB:g} GiB (HEVCQ_SLOTS sets how many)."
    )
