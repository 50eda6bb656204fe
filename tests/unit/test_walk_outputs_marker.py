"""Folders of hevcq's outputs carry a marker file, and the library walk never enters them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hevcq.errors import ConfigError
from hevcq.library import walk as walk_module
from hevcq.library.walk import OUTPUTS_MARKER, ScanOptions, mark_outputs, walk


def make(root: Path, rel: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"h264\n")


def rels(root: Path, options: ScanOptions | None = None) -> list[str]:
    found, problems = walk(root, options or ScanOptions())
    assert problems == []
    return [c.rel for c in found]


def test_marked_folder_yields_no_candidates_and_others_are_found(tmp_path: Path) -> None:
    make(tmp_path, "holiday/beach.mp4")
    make(tmp_path, "out/1080p/holiday/beach.1080p.mp4")
    make(tmp_path, "outside.mov")
    (tmp_path / "out" / OUTPUTS_MARKER).write_text("hevcq outputs\n")
    assert rels(tmp_path) == ["holiday/beach.mp4", "outside.mov"]


def test_marker_below_any_depth_prunes_only_its_folder(tmp_path: Path) -> None:
    make(tmp_path, "a/b/keep.mp4")
    make(tmp_path, "a/b/renders/x.mp4")
    make(tmp_path, "a/b/renders/deeper/y.mp4")
    make(tmp_path, "a/sibling/z.mp4")
    make(tmp_path, "old/out/hevc/w.mkv")
    make(tmp_path, "old/out/hevc/nested/v.mkv")
    (tmp_path / "a/b/renders" / OUTPUTS_MARKER).write_text("")
    (tmp_path / "old/out" / OUTPUTS_MARKER).write_text("")
    (tmp_path / "old/out/hevc/nested" / OUTPUTS_MARKER).write_text("")  # inside a marked one
    assert rels(tmp_path) == ["a/b/keep.mp4", "a/sibling/z.mp4"]


def test_marker_written_by_mark_outputs_is_recognised(tmp_path: Path) -> None:
    make(tmp_path, "a.mp4")
    mark_outputs(tmp_path / "out")  # made as ingest would before placing outputs
    make(tmp_path, "out/720p/a.720p.mp4")
    assert rels(tmp_path) == ["a.mp4"]
    # A later run with another --out (skip_dirs names that one, not this) still skips it.
    assert rels(tmp_path, ScanOptions(skip_dirs=(tmp_path / "elsewhere",))) == ["a.mp4"]


def test_mark_outputs_makes_the_folder_and_writes_one_plain_line(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    mark_outputs(out)
    text = (out / OUTPUTS_MARKER).read_text(encoding="utf-8")
    assert text.startswith("hevcq outputs")
    assert text.count("\n") == 1


def test_mark_outputs_is_idempotent_and_keeps_an_existing_marker(tmp_path: Path) -> None:
    mark_outputs(tmp_path)
    first = (tmp_path / OUTPUTS_MARKER).read_text()
    mark_outputs(tmp_path)
    assert (tmp_path / OUTPUTS_MARKER).read_text() == first
    (tmp_path / OUTPUTS_MARKER).write_text("written by hand\n")
    mark_outputs(tmp_path)
    assert (tmp_path / OUTPUTS_MARKER).read_text() == "written by hand\n"


def test_mark_outputs_warns_and_goes_on_when_the_marker_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Path.open

    def refuse(self: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        if self.name == OUTPUTS_MARKER:
            raise PermissionError(13, "Permission denied")
        return real_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", refuse)
    warned: list[str] = []
    monkeypatch.setattr(walk_module.log, "warning", lambda event, **kw: warned.append(event))
    mark_outputs(tmp_path / "out")  # no exception: an unmarked folder does not stop an ingest
    assert (tmp_path / "out").is_dir()
    assert not (tmp_path / "out" / OUTPUTS_MARKER).exists()
    assert warned == ["outputs_marker_not_written"]


def test_mark_outputs_raises_when_the_folder_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        mark_outputs(tmp_path / "file" / "out")


def test_library_root_that_is_an_output_folder_is_refused(tmp_path: Path) -> None:
    make(tmp_path, "720p/a.720p.mp4")
    mark_outputs(tmp_path)
    with pytest.raises(ConfigError, match="is an hevcq output folder") as err:
        walk(tmp_path, ScanOptions())
    assert "\n" not in str(err.value)
