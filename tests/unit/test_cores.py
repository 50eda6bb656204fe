"""How much memory the embedded farm may use, and how many slots it holds: /proc and
/sys read from files laid out as the kernel lays them out."""

from __future__ import annotations

from pathlib import Path

import pytest

from hevcq.cores import (
    GIB,
    cgroup_headroom,
    default_slots,
    free_memory,
    memory_note,
    memory_slots,
)

MEMINFO = "MemTotal:        8000000 kB\nMemFree:          100000 kB\nMemAvailable:    4194304 kB\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_kernels_available_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    _write(tmp_path / "meminfo", MEMINFO)
    missing = tmp_path / "no-cgroup"
    assert free_memory(tmp_path / "meminfo", missing, tmp_path / "sys") == 4 * GIB


def test_a_containers_cgroup_v2_limit_counts_where_it_is_less(tmp_path: Path) -> None:
    """In a container with its own cgroup namespace the cgroup is ``/``: its limit is at
    the root, less what it already uses."""
    root = tmp_path / "sys"
    _write(tmp_path / "meminfo", MEMINFO)
    _write(tmp_path / "cgroup", "0::/\n")
    _write(root / "memory.max", str(3 * GIB))
    _write(root / "memory.current", str(GIB))
    assert free_memory(tmp_path / "meminfo", tmp_path / "cgroup", root) == 2 * GIB


def test_the_tightest_limit_above_a_services_cgroup_counts(tmp_path: Path) -> None:
    """A systemd service in a slice: the slice's limit binds though the service has none."""
    root = tmp_path / "sys"
    _write(tmp_path / "cgroup", "0::/nas.slice/hevcq.service\n")
    _write(root / "nas.slice/memory.max", str(2 * GIB))
    _write(root / "nas.slice/memory.current", str(GIB // 2))
    _write(root / "nas.slice/hevcq.service/memory.max", "max")
    _write(root / "nas.slice/hevcq.service/memory.current", str(GIB // 4))
    assert cgroup_headroom(tmp_path / "cgroup", root) == 2 * GIB - GIB // 2


def test_cgroup_v1s_memory_controller_is_read_where_v2_has_no_limit(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    _write(tmp_path / "cgroup", "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n")
    _write(root / "memory/docker/abc/memory.limit_in_bytes", str(6 * GIB))
    _write(root / "memory/docker/abc/memory.usage_in_bytes", str(GIB))
    _write(root / "memory/memory.limit_in_bytes", "9223372036854771712")  # unlimited
    _write(root / "memory/memory.usage_in_bytes", str(10 * GIB))
    assert cgroup_headroom(tmp_path / "cgroup", root) == 5 * GIB


@pytest.mark.parametrize(
    "layout",
    [
        {},  # no /proc/self/cgroup: not Linux
        {"cgroup": "0::/\n"},  # no limit files
        {"cgroup": "0::/\n", "sys/memory.max": "max", "sys/memory.current": "12"},
        {"cgroup": "0::/\n", "sys/memory.max": "lots", "sys/memory.current": "12"},
        {"cgroup": "garbage"},
    ],
)
def test_no_limit_or_an_unreadable_one_is_no_limit(tmp_path: Path, layout: dict[str, str]) -> None:
    for name, text in layout.items():
        _write(tmp_path / name, text)
    assert cgroup_headroom(tmp_path / "cgroup", tmp_path / "sys") is None


def test_nothing_readable_is_unknown(tmp_path: Path) -> None:
    _write(tmp_path / "meminfo", "MemTotal: 12 kB\n")  # an old kernel: no MemAvailable
    assert free_memory(tmp_path / "meminfo", tmp_path / "cgroup", tmp_path / "sys") is None


@pytest.mark.parametrize(
    ("cores", "free", "slots"),
    [
        (4, None, 4),  # memory unknown: the cores decide
        (4, 24 * GIB, 4),
        (4, 8 * GIB, 3),  # 7.5 GiB after the farm's own, 2 GiB a slot
        (4, 4 * GIB, 1),
        (2, 3 * GIB, 1),
        (2, GIB // 2, 1),  # never none
        (16, 5 * GIB, 2),
        (64, 64 * GIB, 16),
    ],
)
def test_slots_are_the_fewer_of_what_the_cores_and_the_memory_allow(
    cores: int, free: int | None, slots: int
) -> None:
    assert default_slots(cores, free) == slots


def test_a_slot_holds_a_4k_encode_and_its_worker() -> None:
    """4K x265 at `medium`: 1.55 GB; its worker: 0.21 GB (docs/benchmarks.md)."""
    assert memory_slots(int(0.5 * GIB + 2 * 1.76e9)) == 1
    assert memory_slots(int(0.5 * GIB + 2 * 2 * GIB)) == 2


def test_the_note_says_how_many_and_why_only_when_memory_decides() -> None:
    note = memory_note(4, 3 * GIB)
    assert note is not None
    assert note.startswith("1 encode at a time on 4 cores: 3.0 GiB of memory is free")
    assert "HEVCQ_SLOTS" in note
    assert memory_note(4, 16 * GIB) is None
    assert memory_note(4, None) is None
    assert memory_note(1, GIB) is None  # one core makes one slot anyway
    assert (memory_note(8, 7 * GIB) or "").startswith("3 encodes at a time on 8 cores")
