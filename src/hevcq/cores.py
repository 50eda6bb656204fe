"""How a machine's cores are shared among encodes on the embedded farm.

Each worker process is one slot: it runs one encode at a time and takes any pool's work.
The embedded farm starts ``slots`` of them and gives each encode ``cores // slots``
threads, so that two encodes on two cores do not each start threads for all the cores.

Up to four cores, one encode per core: encoders run best single-threaded per core (no
synchronisation, no idle frame threads at the ends of a file), and a library keeps every
core busy. Beyond that, encodes of four threads each: x265 and x264 still scale nearly
linearly to about four threads at 1080p, and fewer, larger encodes hold less memory and
finish single files sooner (docs/benchmarks.md, "Larger machines").
"""

from __future__ import annotations

import os

# Threads one encode gets once a machine has more cores than SMALL_MACHINE_CORES.
THREADS_PER_SLOT_AT_SCALE = 4
SMALL_MACHINE_CORES = 4


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset
    narrows), or the machine's count where affinity is unknown."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_slots(cores: int) -> int:
    """Concurrent encodes for a machine of ``cores`` cores (at least one)."""
    if cores <= SMALL_MACHINE_CORES:
        return max(1, cores)
    return max(SMALL_MACHINE_CORES, cores // THREADS_PER_SLOT_AT_SCALE)


def threads_per_slot(cores: int, slots: int) -> int:
    """Threads each of ``slots`` concurrent encodes may use on ``cores`` cores."""
    return max(1, cores // max(1, slots))
