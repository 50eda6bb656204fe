"""``hevcq.procs.bound_malloc``: large buffers are mapped and unmapped, whatever was freed
before (glibc only; elsewhere it does nothing)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROGRAM = """
import sys
from hevcq.procs import bound_malloc
if sys.argv[1] == "bounded":
    bound_malloc()

def mappings(size):
    # Anonymous mappings (no file column) of at least ``size`` bytes.
    n = 0
    for line in open("/proc/self/maps"):
        cols = line.split()
        lo, hi = (int(x, 16) for x in cols[0].split("-"))
        n += len(cols) == 5 and hi - lo >= size
    return n

big = bytearray(8 << 20)
del big  # freeing a mapped 8 MiB block raises glibc's own threshold to 8 MiB
before = mappings(3 << 20)
buf = bytearray(3 << 20)
print(mappings(3 << 20) - before)
"""


def _new_mappings(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_large_buffers_stay_mapped_after_a_larger_one_was_freed() -> None:
    # Unbounded, the 3 MiB buffer comes from the heap (where freeing it returns nothing);
    # bounded, it is a mapping of its own, unmapped when freed.
    assert _new_mappings("default") == 0
    assert _new_mappings("bounded") == 1
