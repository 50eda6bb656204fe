"""Calibration encodes for real: a ladder pool is timed as its jobs run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hevcq.errors import ConfigError
from hevcq.library import calibrate
from hevcq.media import ladder
from hevcq.pools import Pool


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("calibrate") / "moderate.mp4"
    return calibrate.make_content(dest, "moderate", 1.0, size=(640, 360))


def test_a_ladder_pool_is_timed_encode_and_check(clip: Path, farm: dict[str, Pool]) -> None:
    done = calibrate.encode_once(clip, farm["hls"])
    assert done.pool == "hls"
    assert done.video_s == pytest.approx(1.0, abs=0.1)
    assert done.wall_s > 0
    assert done.cpu_s > 0


def test_the_ladder_check_is_part_of_the_timing(
    clip: Path, farm: dict[str, Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[Path] = []

    def failing_check(out_dir: Path, **_: object) -> list[str]:
        checked.append(out_dir)
        return ["segments"]

    monkeypatch.setattr(ladder, "check_ladder", failing_check)
    with pytest.raises(ConfigError, match=r"^calibration encode failed for hls: .*segments"):
        calibrate.encode_once(clip, farm["hls"])
    assert len(checked) == 1


def test_a_file_pool_is_timed_with_its_own_arguments(clip: Path, farm: dict[str, Pool]) -> None:
    done = calibrate.encode_once(clip, farm["hevc"])
    assert done.pool == "hevc"
    assert done.cpu_s > 0
