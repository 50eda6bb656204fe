"""A ladder carries every sound track of its source as an audio rendition, each named
and tagged as the source says (hevcq.media.renditions), and its checks hold every one."""

from __future__ import annotations

import array
import shutil
import subprocess
from pathlib import Path

import pytest

from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import (
    MASTER,
    build_ladder,
    check_ladder,
    open_fragmented,
    read_master,
    read_media_playlist,
    read_renditions,
)
from hevcq.media.probe import probe

pytestmark = pytest.mark.e2e
SECONDS = 4
# Each track's tone: which rendition holds which track is heard in it.
TONES = {"main": 440, "french": 880, "commentary": 1320}


def three_tracks(path: Path) -> Path:
    """A Matroska film with English, French (marked default) and English commentary."""
    made = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error",
         "-f", "lavfi", "-i", f"testsrc2=s=640x360:r=25:d={SECONDS}",
         *(a for hz in TONES.values()
           for a in ("-f", "lavfi", "-i", f"sine=f={hz}:d={SECONDS}")),
         "-map", "0", "-map", "1", "-map", "2", "-map", "3",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
         "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=Main",
         "-metadata:s:a:1", "language=fre",
         "-metadata:s:a:2", "language=eng", "-metadata:s:a:2", 'title=Commentary",URI="x',
         "-disposition:a:0", "0", "-disposition:a:1", "default",
         "-disposition:a:2", "comment", str(path)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return path


def tone_hz(ladder: Path, uri: str) -> float:
    """The pitch of a rendition's first channel, from its zero crossings."""
    media = read_media_playlist(ladder / uri)
    init = media.init.read_bytes()
    crossings, samples, last = 0, 0, 0.0
    for _, seg in media.segments:
        with open_fragmented(init + seg.read_bytes()) as f:
            stream = f.streams.audio[0]
            stream.codec_context.skip_frame = "DEFAULT"
            for frame in f.decode(stream):
                values = array.array("f", bytes(frame.planes[0]))[: frame.samples]
                for v in values:
                    crossings += (v >= 0) != (last >= 0)
                    last = v
                samples += frame.samples
                rate = frame.sample_rate
    return crossings / 2 / (samples / rate)


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ladder-audio")
    src = three_tracks(tmp / "film.mkv")
    build_ladder(find_ffmpeg(), src, tmp / "hls", probe(src))
    return tmp / "hls"


def test_every_sound_track_is_a_rendition_named_and_tagged_as_the_source_says(
    ladder: Path,
) -> None:
    found = read_renditions(ladder / MASTER)
    described = [
        {k: r.attributes.get(k) for k in ("LANGUAGE", "NAME", "DEFAULT", "AUTOSELECT")}
        for r in found
    ]
    assert described == [
        {"LANGUAGE": "fr", "NAME": "Français", "DEFAULT": "YES", "AUTOSELECT": "YES"},
        {"LANGUAGE": "en", "NAME": "Main", "DEFAULT": "NO", "AUTOSELECT": "YES"},
        # The title's quote is gone: it cannot end the NAME and add a URI.
        {"LANGUAGE": "en", "NAME": "Commentary,URI=x", "DEFAULT": "NO", "AUTOSELECT": "NO"},
    ]
    assert [r.uri for r in found] == ["2/index.m3u8", "3/index.m3u8", "4/index.m3u8"]
    assert read_master(ladder / MASTER)[1] == "2/index.m3u8"  # the default
    heard = [tone_hz(ladder, r.uri) for r in found]
    for hz, want in zip(heard, (TONES["french"], TONES["main"], TONES["commentary"]), strict=True):
        assert abs(hz - want) < 0.02 * want, heard
    assert check_ladder(ladder, length_s=float(SECONDS)) == []


def test_each_variant_declares_the_most_any_rendition_adds(ladder: Path, tmp_path: Path) -> None:
    """A variant's BANDWIDTH is its video's peak plus the highest audio peak: a player
    may play any rendition with it. Counted against the lowest instead, it is refused."""
    variants, _ = read_master(ladder / MASTER)
    peaks = [
        read_media_playlist(ladder / r.uri).rates()[0] for r in read_renditions(ladder / MASTER)
    ]
    for v in variants:
        video_peak = read_media_playlist(ladder / v.uri).rates()[0]
        assert v.bandwidth == video_peak + max(peaks)
    assert v.codecs.count("mp4a") == 1  # one codec, named once
    # The commentary's rendition made far louder than the others: the declared peaks fall short.
    copy = Path(shutil.copytree(ladder, tmp_path / "hls"))
    loud = read_media_playlist(copy / "4" / "index.m3u8")
    for _, seg in loud.segments:
        seg.write_bytes(seg.read_bytes() + b"\0" * 400_000)
    assert any(p.startswith("bandwidth:") for p in check_ladder(copy))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("DEFAULT=NO", "DEFAULT=YES"), "master: 3 default audio renditions, not 1"),
        (('NAME="Main"', 'NAME="français"'), "master: audio rendition names missing or repeated"),
        (('URI="4/', 'URI="3/'), "master: audio rendition URIs missing or repeated"),
    ],
)
def test_a_master_that_breaks_the_audio_groups_rules_is_refused(
    ladder: Path, tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    copy = Path(shutil.copytree(ladder, tmp_path / "hls"))
    text = (copy / MASTER).read_text()
    (copy / MASTER).write_text(text.replace(*change))
    assert any(p.startswith(problem) for p in check_ladder(copy)), check_ladder(copy)
