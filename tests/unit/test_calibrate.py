"""Calibration arithmetic and the saved speeds file (no ffmpeg)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hevcq.library.calibrate import (
    DEFAULT_SPEEDS,
    FALLBACK_SPEED,
    combined_speed,
    load_speeds,
    save_speeds,
    speed_for,
    speed_per_vcpu,
    speeds_path,
)
from hevcq.pools import Pool


@pytest.mark.parametrize(
    ("video_s", "wall_s", "cpus", "expected"),
    [(10.0, 10.0, 1, 1.0), (10.0, 20.0, 2, 0.25), (3.0, 1.0, 4, 0.75)],
)
def test_speed_per_vcpu(video_s: float, wall_s: float, cpus: int, expected: float) -> None:
    assert speed_per_vcpu(video_s, wall_s, cpus) == pytest.approx(expected)


@pytest.mark.parametrize(("video_s", "wall_s", "cpus"), [(0, 1, 1), (1, 0, 1), (1, 1, 0)])
def test_speed_rejects_non_positive_inputs(video_s: float, wall_s: float, cpus: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        speed_per_vcpu(video_s, wall_s, cpus)


def test_combined_speed_weights_by_time_not_by_clip() -> None:
    # 2 s in 1 s and 2 s in 4 s: 4 s of video in 5 s, not the mean of 2.0 and 0.5.
    assert combined_speed([(2.0, 1.0), (2.0, 4.0)], cpus=1) == pytest.approx(0.8)


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "state" / "speeds.json"
    save_speeds(path, {"hevc": 0.2, "720p": 0.5})
    assert load_speeds(path) == {"hevc": 0.2, "720p": 0.5}
    assert not list(path.parent.glob(".*.tmp"))


UNUSABLE = [
    "",
    "not json",
    '{"speeds": {"hevc": 0.2}}',
    "[]",
    '{"version": 1, "measured_at": "x", "cpus": 2, "bogus": 1}',
]


@pytest.mark.parametrize("body", UNUSABLE)
def test_unusable_files_load_as_none(tmp_path: Path, body: str) -> None:
    path = tmp_path / "speeds.json"
    path.write_text(body)
    assert load_speeds(path) is None


def test_missing_file_loads_as_none(tmp_path: Path) -> None:
    assert load_speeds(tmp_path / "nope.json") is None


def test_speeds_measured_under_other_settings_are_dropped(
    tmp_path: Path, farm: dict[str, Pool]
) -> None:
    path = tmp_path / "speeds.json"
    save_speeds(path, {"hevc": 0.2, "720p": 0.5}, farm)
    changed = farm["hevc"].model_copy(
        update={"encode": farm["hevc"].encode.model_copy(update={"preset": "slow"})}
    )
    assert load_speeds(path, {**farm, "hevc": changed}) == {"720p": 0.5}
    assert load_speeds(path, farm) == {"hevc": 0.2, "720p": 0.5}


def test_non_positive_speeds_are_not_saved(tmp_path: Path) -> None:
    path = tmp_path / "speeds.json"
    save_speeds(path, {"hevc": 0.0, "720p": 0.5})
    assert json.loads(path.read_text())["speeds"] == {"720p": 0.5}


def test_speeds_path_is_under_the_state_dir(tmp_path: Path) -> None:
    assert speeds_path(tmp_path) == tmp_path / "speeds.json"


@pytest.mark.parametrize(
    ("pool", "saved", "expected"),
    [
        ("hevc", {"hevc": 0.3}, (0.3, True)),
        ("hevc", None, (DEFAULT_SPEEDS["hevc"], False)),
        ("hevc", {"hevc": 0.0}, (DEFAULT_SPEEDS["hevc"], False)),
        ("4k", {}, (FALLBACK_SPEED, False)),
    ],
)
def test_speed_for(pool: str, saved: dict[str, float] | None, expected: tuple[float, bool]) -> None:
    assert speed_for(pool, saved) == expected


def test_every_shipped_pool_has_a_default_speed(farm: dict[str, Pool]) -> None:
    assert set(farm) <= set(DEFAULT_SPEEDS)
