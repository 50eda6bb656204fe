"""A ladder carries each text subtitle track as a WebVTT rendition cut with the picture
(hevcq.media.captions); one it cannot carry is left out, never its picture."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from hevcq.formats import content_type
from hevcq.media import ladder as lad
from hevcq.media.captions import make_renditions, parse_vtt
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import MASTER, build_ladder, check_ladder, read_master, read_renditions
from hevcq.media.probe import probe
from tests.e2e.bitmapsubs import write_pgs
from tests.e2e.test_ladder_browser import film_with_subtitles

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ladder-subs")
    src = film_with_subtitles(tmp)
    build_ladder(find_ffmpeg(), src, tmp / "hls", probe(src))
    return tmp / "hls"


def cues_of(ladder: Path, uri: str) -> list[tuple[float, float, str]]:
    """Every cue of a subtitle rendition, segment by segment (a cue spanning a boundary
    is in both)."""
    playlist = ladder / uri
    names = [ln for ln in playlist.read_text().splitlines() if ln and not ln.startswith("#")]
    return [
        (c.start_s, c.end_s, c.text)
        for name in names
        for c in parse_vtt((playlist.parent / name).read_text())
    ]


def test_each_text_subtitle_track_is_a_rendition_cut_with_the_picture(ladder: Path) -> None:
    found = read_renditions(ladder / MASTER, "SUBTITLES")
    assert [
        {k: r.attributes.get(k) for k in ("LANGUAGE", "NAME", "DEFAULT", "FORCED")} for r in found
    ] == [
        {"LANGUAGE": "en", "NAME": "English", "DEFAULT": "NO", "FORCED": None},
        {"LANGUAGE": "fr", "NAME": "Français", "DEFAULT": "NO", "FORCED": "YES"},
    ]
    for r in found:
        assert cues_of(ladder, r.uri) == [(1.0, 3.0, "Hello there"), (7.0, 9.5, "Second line")]
        first = (ladder / r.uri).parent / "seg_00000.vtt"
        assert first.read_text().startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,")
        assert content_type(first.name) == "text/vtt"
        assert not list((ladder / r.uri).parent.glob("whole*"))  # only what the ladder holds
    text = (ladder / MASTER).read_text()
    variants, _ = read_master(ladder / MASTER)
    assert text.count('SUBTITLES="subs"') == len(variants)
    assert check_ladder(ladder, length_s=12.0) == []


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("drop the last segment", "is not cut as its picture is"),
        ("not webvtt", "not a WebVTT file"),
        ("bad timing", "not a WebVTT timestamp"),
    ],
)
def test_a_damaged_subtitle_rendition_is_refused(
    ladder: Path, tmp_path: Path, damage: str, problem: str
) -> None:
    copy = Path(shutil.copytree(ladder, tmp_path / "hls"))
    uri = read_renditions(copy / MASTER, "SUBTITLES")[0].uri
    folder = (copy / uri).parent
    if damage == "drop the last segment":
        lines = (copy / uri).read_text().splitlines()
        (copy / uri).write_text("\n".join(lines[:-3] + lines[-1:]) + "\n")
    elif damage == "not webvtt":
        (folder / "seg_00001.vtt").write_text("1\n00:00:07,000 --> 00:00:09,500\nSRT\n")
    else:
        (folder / "seg_00001.vtt").write_text("WEBVTT\n\n00:07.000 --> 00:61.000\nlate\n")
    problems = check_ladder(copy)
    assert any(p.startswith("subtitles:") and problem in p for p in problems), problems


def test_subtitles_it_cannot_carry_are_left_out_and_the_ladder_is_made(tmp_path: Path) -> None:
    """A Blu-ray's PGS pictures have no text for WebVTT, and a track with no cue has
    nothing to show: both are left out, the picture and the text track kept."""
    ffmpeg = find_ffmpeg()
    sup = write_pgs(tmp_path / "subs.sup", 320, 180, 4)
    empty = tmp_path / "empty.srt"
    empty.write_text("")
    words = tmp_path / "words.srt"
    words.write_text("1\n00:00:01,000 --> 00:00:02,000\nWords\n")
    src = tmp_path / "disc.mkv"
    made = subprocess.run(
        [ffmpeg, "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=4", "-i", str(sup),
         "-f", "srt", "-i", str(empty), "-i", str(words),
         "-map", "0", "-map", "1", "-map", "2?", "-map", "3",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:s", "copy", str(src)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    codecs = [s.codec for s in probe(src).subtitles]
    assert codecs == ["hdmv_pgs_subtitle", "subrip", "subrip"]  # pictures, none, words
    build_ladder(ffmpeg, src, tmp_path / "hls", probe(src))
    found = read_renditions(tmp_path / "hls" / MASTER, "SUBTITLES")
    assert len(found) == 1
    assert cues_of(tmp_path / "hls", found[0].uri) == [(1.0, 2.0, "Words")]
    assert check_ladder(tmp_path / "hls") == []


def _logging_ffmpeg(tmp_path: Path, refuse: str | None = None) -> tuple[Path, Path]:
    """An ffmpeg that logs each run's arguments and refuses (exit 1) any run mapping the
    stream ``refuse``; the script and its log."""
    runs = tmp_path / "runs.log"
    script = tmp_path / "ffmpeg"
    refusal = (
        f'case " $* " in *" -map {refuse} "*) echo "Conversion failed" >&2; exit 1;; esac\n'
        if refuse
        else ""
    )
    script.write_text(f'#!/bin/sh\necho "$*" >> {runs}\n{refusal}exec {find_ffmpeg()} "$@"\n')
    script.chmod(0o755)
    return script, runs


@pytest.mark.parametrize(("refuse", "runs", "made"), [(None, 1, 2), ("0:3", 3, 1)])
def test_every_track_is_turned_in_one_read_and_a_refused_one_costs_only_itself(
    tmp_path: Path, refuse: str | None, runs: int, made: int
) -> None:
    """A film with many subtitle languages was read once per track; now once, and a
    track ffmpeg refuses is tried alone, the others kept."""
    src = film_with_subtitles(tmp_path)
    ladder_dir = tmp_path / "hls"
    build_ladder(find_ffmpeg(), src, ladder_dir, probe(src))  # the picture, as usual
    for folder in ("3", "4"):
        shutil.rmtree(ladder_dir / folder)
    ffmpeg, log = _logging_ffmpeg(tmp_path, refuse)
    first = lad.read_media_playlist(ladder_dir / "0" / "index.m3u8")
    done = make_renditions(
        str(ffmpeg),
        src,
        [(2, ladder_dir / "3"), (3, ladder_dir / "4")],
        extinfs=[d for d, _ in first.segments],
        target_s=first.target_s,
        stop=threading.Event(),
        stall_timeout_s=60,
    )
    assert len(log.read_text().splitlines()) == runs
    assert sum(done) == made
    assert done[0] is True
    assert (ladder_dir / "4").exists() is (made == 2)  # a refused track leaves nothing
