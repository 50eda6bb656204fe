"""How a ladder's master names its audio renditions (hevcq.media.renditions)."""

from __future__ import annotations

import pytest

from hevcq.media.ladder import ladder_audio, plan_ladder
from hevcq.media.model import AudioStream, MediaInfo, VideoStream
from hevcq.media.renditions import (
    COMMENTARY,
    DESCRIBES_VIDEO,
    DESCRIPTION,
    NAME_CHARS,
    Label,
    Track,
    clean_text,
    labels,
    language_name,
    language_tag,
)


@pytest.mark.parametrize(
    ("tagged", "tag"),
    [
        ("eng", "en"),  # MP4 and Matroska: ISO 639-2
        ("fre", "fr"),  # Matroska's bibliographic codes
        ("fra", "fr"),
        ("ger", "de"),
        ("chi", "zh"),
        ("gsw", "gsw"),  # no two-letter code: the three letters are the tag
        ("pt-BR", "pt-BR"),  # newer Matroska: BCP 47 already
        ("EN", "en"),
        ("und", ""),  # undetermined: no LANGUAGE rather than a false one
        ("qaa", ""),  # a broadcaster's "original language": says none
        ("", ""),
        ("  ", ""),
        ("x!y", ""),
        ('en",URI="x', ""),
        ("e" * 200, ""),
    ],
)
def test_a_containers_language_tag_becomes_the_bcp47_tag_hls_requires(
    tagged: str, tag: str
) -> None:
    assert language_tag(tagged) == tag


def test_a_language_is_named_in_itself() -> None:
    assert language_name("fr") == "Français"
    assert language_name("de") == "Deutsch"
    assert language_name("en") == "English"
    assert language_name("") == ""


@pytest.mark.parametrize(
    ("title", "clean"),
    [
        ("Director's commentary", "Director's commentary"),
        ('Evil",URI="../../x', "Evil,URI=../../x"),  # no quote to end the attribute
        ("two\nlines\r\n#EXT-X-ENDLIST", "two lines #EXT-X-ENDLIST"),  # no new tag
        ("bidi\u202eoverride\x00nul", "bidioverridenul"),
        ("   spaced   out  ", "spaced out"),
        ("x" * 500, "x" * NAME_CHARS),
    ],
)
def test_a_track_title_from_a_file_cannot_break_out_of_its_name(title: str, clean: str) -> None:
    assert clean_text(title) == clean


def test_one_rendition_is_the_default_and_names_are_unique() -> None:
    made = labels(
        [
            Track("eng", "", COMMENTARY, default=True),
            Track("eng"),
            Track("fre", default=True),
            Track("eng"),
            Track("", "  "),
            Track("", ""),
        ]
    )
    assert [m.name for m in made] == [
        "English",
        "English 2",
        "Français",
        "English 3",
        "Audio",
        "Audio 2",
    ]
    # The first main track the source marks default; commentary is never it.
    assert [m.default for m in made] == [False, False, True, False, False, False]
    assert [m.autoselect for m in made] == [False, True, True, True, True, True]


def test_a_titled_track_keeps_its_title_and_audio_description_is_marked() -> None:
    made = labels([Track("eng", "Main"), Track("eng", "Described", DESCRIPTION)])
    assert made[0] == Label("Main", "en", default=True)
    assert made[1].characteristics == DESCRIBES_VIDEO
    assert made[1].attributes() == (
        'LANGUAGE="en",NAME="Described",DEFAULT=NO,AUTOSELECT=YES,'
        f'CHARACTERISTICS="{DESCRIBES_VIDEO}"'
    )


def test_a_source_of_commentary_alone_still_has_its_default() -> None:
    (only,) = labels([Track("", "", COMMENTARY)])
    assert only.default
    assert "AUTOSELECT=YES" in only.attributes()  # the specification: YES with DEFAULT=YES


def test_the_ladder_carries_every_sound_with_a_shape_the_default_first() -> None:
    video = VideoStream(0, "h264", 1280, 720, "yuv420p", 8, fps=25.0)
    info = MediaInfo(
        "matroska",
        10.0,
        1000,
        video=(video,),
        audio=(
            AudioStream(1, "aac", language="eng", title="Commentary", role=COMMENTARY),
            AudioStream(2, "ac3", 6, layout="5.1", language="ger", default=True),
            AudioStream(3, "aac", 0),  # listed, no packet: no rendition
        ),
    )
    audio = ladder_audio(info)
    assert [(a.index, a.label.name, a.label.language) for a in audio] == [
        (2, "Deutsch", "de"),
        (1, "Commentary", "en"),
    ]
    plan = plan_ladder(info)
    assert plan is not None
    assert plan.audio == audio
