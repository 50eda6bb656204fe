"""Key mapping between the library, TODO/ and DONE/<pool>/."""

from __future__ import annotations

import pytest

from hevcq.errors import PermanentError
from hevcq.keys import (
    done_key,
    keeps_ext,
    keeps_source_ext,
    naming_metadata,
    output_extension,
    output_keeps_ext,
    output_place,
    shares_stem,
    sharing_sources,
    sharing_stems,
    source_relative,
    todo_key,
)


@pytest.mark.parametrize(
    ("rel", "pool", "suffix", "expected"),
    [
        ("a.mp4", "hevc", "", "DONE/hevc/a.mp4"),
        ("trip/IMG_0042.MOV", "hevc", "", "DONE/hevc/trip/IMG_0042.mp4"),
        ("trip/IMG_0042.MOV", "720p", ".720p", "DONE/720p/trip/IMG_0042.720p.mp4"),
        ("films/movie.mkv", "hevc", "", "DONE/hevc/films/movie.mkv"),
        ("films/Movie.MKV", "1080p", ".1080p", "DONE/1080p/films/Movie.1080p.mkv"),
        ("été 🎥/my clip #1 & 100%.m4v", "hevc", "", "DONE/hevc/été 🎥/my clip #1 & 100%.mp4"),
        ("-dash.avi", "hevc", "", "DONE/hevc/-dash.mp4"),
        ("archive.tar.ts", "hevc", "", "DONE/hevc/archive.tar.mp4"),
    ],
)
def test_done_key(rel: str, pool: str, suffix: str, expected: str) -> None:
    assert done_key(todo_key(rel), pool, suffix) == expected


def test_round_trip_of_relative_paths() -> None:
    assert source_relative(todo_key("a/b/c.mp4")) == "a/b/c.mp4"
    assert todo_key("./a//b/./c.mp4") == "TODO/a/b/c.mp4"


NFD_E = "e\u0301"  # é as macOS writes it
NFC_E = "\u00e9"


@pytest.mark.parametrize(
    "rel", ["a\\b.mp4", "dir\\sub/c.mp4", f"{NFD_E}t{NFD_E}/clip.mp4", f"caf{NFC_E}.mov"]
)
def test_every_name_keeps_its_exact_spelling_both_ways(rel: str) -> None:
    """A backslash is a character of a POSIX name, and a name stays in the Unicode form
    the file system wrote: the result's key names the very file that was uploaded."""
    assert todo_key(rel) == f"TODO/{rel}"
    assert source_relative(todo_key(rel)) == rel
    assert done_key(todo_key(rel), "hevc").startswith(f"DONE/hevc/{rel.rsplit('.', 1)[0]}")


def test_a_backslash_name_and_a_folder_get_separate_keys() -> None:
    assert todo_key("a\\b.mp4") != todo_key("a/b.mp4")


@pytest.mark.parametrize(
    "rel", ["", "..", "../etc/passwd", "a/../../b.mp4", "a/\x00.mp4", "x" * 1100]
)
def test_unusable_paths_are_refused(rel: str) -> None:
    with pytest.raises(PermanentError):
        todo_key(rel)


@pytest.mark.parametrize("key", ["DONE/hevc/a.mp4", "a.mp4", "TODO/", "TODO/dir/", "TODO/../x.mp4"])
def test_keys_outside_todo_are_refused(key: str) -> None:
    with pytest.raises(PermanentError):
        done_key(key, "hevc")


@pytest.mark.parametrize(
    ("name", "ext"), [("a.mkv", ".mkv"), ("a.WEBM", ".mkv"), ("a.mov", ".mp4")]
)
def test_output_extension(name: str, ext: str) -> None:
    assert output_extension(name) == ext


@pytest.mark.parametrize(
    ("rels", "sharing"),
    [
        ([], set()),
        (["trip/IMG_0001.MOV"], set()),  # alone: the plain name
        (["IMG_0001.MOV", "IMG_0001.mp4"], {"IMG_0001.MOV"}),
        (["IMG_0001.mp4", "IMG_0001.MOV"], {"IMG_0001.MOV"}),  # order does not count
        (["a/IMG_0001.MOV", "b/IMG_0001.mp4"], set()),  # other folders: no clash
        (["clip.MOV", "clip.avi"], {"clip.MOV", "clip.avi"}),  # neither is the plain name
        (["IMG_0001.MP4", "IMG_0001.mp4"], {"IMG_0001.MP4"}),  # one name on a Mac disk
        (["img_0001.mov", "IMG_0001.mp4"], {"img_0001.mov"}),
        (["film.mkv", "film.webm", "film.mp4"], {"film.webm"}),  # .mkv vs .mp4 outputs
        (["x.mov", "x.m4v", "x.mp4", "y.mov"], {"x.mov", "x.m4v"}),
        # Unicode forms are one name on a Mac disk, as letter cases are.
        ([f"{NFD_E}.mov", f"{NFC_E}.mp4"], {f"{NFD_E}.mov"}),
        ([f"{NFC_E}.mov", f"{NFD_E}.mp4"], {f"{NFC_E}.mov"}),
        ([f"{NFD_E}.mov", f"{NFC_E}.MOV"], {f"{NFD_E}.mov", f"{NFC_E}.MOV"}),
        ([f"{NFD_E}.mp4", f"{NFC_E}.mp4"], set()),  # each already its own output name
    ],
)
def test_sharing_sources(rels: list[str], sharing: set[str]) -> None:
    assert sharing_sources(rels) == sharing


@pytest.mark.parametrize(
    ("rel", "suffix", "expected"),
    [
        ("IMG_0001.MOV", "", "DONE/hevc/IMG_0001.MOV.mp4"),
        ("trip/IMG_0001.MOV", ".720p", "DONE/hevc/trip/IMG_0001.MOV.720p.mp4"),
        ("film.webm", "", "DONE/hevc/film.webm.mkv"),
    ],
)
def test_done_key_with_the_source_extension(rel: str, suffix: str, expected: str) -> None:
    assert done_key(todo_key(rel), "hevc", suffix, with_source_ext=True) == expected


def test_a_clash_gives_distinct_output_names_in_every_pool() -> None:
    rels = ["IMG_0001.MOV", "IMG_0001.mp4", "IMG_0001.m4v"]
    sharing = sharing_sources(rels)
    for suffix in ("", ".720p"):
        names = {done_key(todo_key(r), "p", suffix, with_source_ext=r in sharing) for r in rels}
        assert len(names) == len(rels)


@pytest.mark.parametrize(
    ("rels", "stems"),
    [
        (["clip.mkv"], set()),
        (["clip.mkv", "clip.mp4"], {"clip.mkv", "clip.mp4"}),
        (["a/clip.mkv", "b/clip.mp4"], set()),  # other folders
        (["Clip.MKV", "clip.mp4", "other.mp4"], {"Clip.MKV", "clip.mp4"}),  # one on a Mac disk
        ([f"{NFD_E}.mov", f"{NFC_E}.webm"], {f"{NFD_E}.mov", f"{NFC_E}.webm"}),
    ],
)
def test_sharing_stems(rels: list[str], stems: set[str]) -> None:
    assert sharing_stems(rels) == stems


# Pools of every kind of output name: the automatic container with and without a suffix,
# a WebM copy, a ladder, a pool naming MP4 or Matroska.
POOL_NAMES = [("", None), (".720p", None), (".av1", ".webm"), ("", ".m3u8"), ("", ".mp4")]
POOL_NAMES += [(".x", ".mkv")]


@pytest.mark.parametrize(
    "rels",
    [
        ["clip.mkv", "clip.mp4"],
        ["clip.mkv", "clip.mp4", "clip.webm", "CLIP.MOV"],
        ["IMG_0001.MOV", "IMG_0001.mp4", "IMG_0001.m4v"],
        ["film.mkv", "film.webm", "film.mp4"],
        ["solo.mp4", "other.mkv"],
    ],
)
def test_sources_sharing_a_stem_get_distinct_output_names_in_every_kind_of_pool(
    rels: list[str],
) -> None:
    sharing, stems = sharing_sources(rels), sharing_stems(rels)
    for suffix, extension in POOL_NAMES:
        names = {
            done_key(
                todo_key(rel),
                "p",
                suffix,
                extension=extension,
                with_source_ext=keeps_ext(
                    rel, extension, sharing_name=rel in sharing, sharing_stem=rel in stems
                ),
            ).casefold()
            for rel in rels
        }
        assert len(names) == len(rels), (suffix, extension, names)


def test_a_source_alone_or_named_as_its_output_keeps_the_plain_name() -> None:
    assert not keeps_ext("solo.mp4", ".webm", sharing_name=False, sharing_stem=False)
    assert not keeps_ext("clip.mp4", ".mp4", sharing_name=False, sharing_stem=True)
    assert keeps_ext("clip.mkv", ".mp4", sharing_name=False, sharing_stem=True)
    # The automatic container keeps its own answer: the library's names never move.
    assert not keeps_ext("clip.mkv", None, sharing_name=False, sharing_stem=True)


def test_the_stem_answer_travels_as_upload_metadata() -> None:
    meta = naming_metadata(with_source_ext=False, shares_stem=True)
    assert shares_stem(meta)
    assert not keeps_source_ext(meta)
    assert output_keeps_ext("TODO/clip.mkv", ".webm", meta)
    assert not output_keeps_ext("TODO/clip.mkv", None, meta)
    assert not output_keeps_ext("TODO/clip.mkv", ".webm", {})  # an upload from before


def test_the_naming_answer_travels_as_upload_metadata() -> None:
    assert keeps_source_ext(naming_metadata(with_source_ext=True))
    assert not keeps_source_ext(naming_metadata(with_source_ext=False))
    assert naming_metadata(with_source_ext=False) == {}


@pytest.mark.parametrize(
    ("source", "pool", "suffix", "long"),
    [
        ("TODO/a/b.mov", "hevc", "", False),
        ("TODO/a/IMG.MOV", "720p", ".720p", True),
        ("TODO/x.mkv", "1080p", ".1080p", False),
    ],
)
def test_every_output_key_a_worker_names_has_its_place(
    source: str, pool: str, suffix: str, long: bool
) -> None:
    key = done_key(source, pool, suffix, with_source_ext=long)
    assert output_place(key, pool, source) == key.removeprefix(f"DONE/{pool}/")


@pytest.mark.parametrize(
    "key",
    [
        "DONE/hevc/../../x.mp4",
        "DONE/hevc/a/../b.mp4",
        "DONE/hevc/./b.mp4",
        "DONE/hevc//b.mp4",
        "DONE/hevc/a\\..\\b.mp4",
        "/etc/b.mp4",
        "DONE/720p/b.mp4",
        "DONE/hevc/b.mp4",
        "DONE/hevc/a/c/b.mp4",
        "DONE/hevc/a/b\x01.mp4",
        "DONE/hevc/",
    ],
)
def test_output_keys_that_could_lead_elsewhere_have_no_place(key: str) -> None:
    with pytest.raises(PermanentError):
        output_place(key, "hevc", "TODO/a/b.mov")
