"""How a ladder's master playlist names its audio renditions (RFC 8216 4.3.4.1).

Every sound track of the source becomes one rendition of the ladder's one audio group,
so an app offers each of the source's languages, its commentary and its audio
description as the source did. Each rendition states:

- ``LANGUAGE``: the container's tag made BCP 47, which HLS requires and players match
  against the viewer's languages (a Matroska ``fre`` or an MP4 ``fra`` is ``fr``); none
  where the source states none, or states "undetermined", or something no language is.
- ``NAME``: what a player lists. The track's own title where it has one ("Director's
  commentary"), else its language's name in that language ("Français", as the
  specification asks), else "Audio"; made unique in the group (the specification requires
  it), and never anything that could end the quoted string it sits in.
- ``DEFAULT=YES`` on one rendition: the first the source marks default among its main
  sound tracks, else its first main sound track, else its first track.
- ``AUTOSELECT=NO`` on commentary, which a player should never choose by itself;
  ``CHARACTERISTICS="public.accessibility.describes-video"`` on audio description, which
  a player chooses for a viewer who asked for it.

A track's title and language come from a file anyone may have written: they are text
from outside, cleaned here before they reach a playlist.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import langcodes

# Roles of a sound track (``AudioStream.role``), from its container's disposition flags.
MAIN, COMMENTARY, DESCRIPTION = "", "commentary", "description"
CAPTIONS = "captions"  # subtitles for the deaf and hard of hearing
DESCRIBES_VIDEO = "public.accessibility.describes-video"
TRANSCRIBES = (
    "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
)
SUBTITLES_NAME = "Subtitles"
NAME_CHARS = 64  # a NAME longer than this is cut: a label in a menu, not a paragraph
FALLBACK_NAME = "Audio"
# Tags that say no language is known: no LANGUAGE is better than a false one.
_UNKNOWN_TAGS = frozenset({"und", "unk", "unknown", "none", "qaa"})


@dataclass(frozen=True)
class Label:
    """What a master playlist says of one audio rendition."""

    name: str
    language: str = ""  # BCP 47; "": not stated
    default: bool = False
    autoselect: bool = True
    characteristics: str = ""
    forced: bool = False  # subtitles only

    def attributes(self) -> str:
        """The rendition's ``EXT-X-MEDIA`` attributes this label decides."""
        out = [f'NAME="{self.name}"']
        if self.language:
            out.insert(0, f'LANGUAGE="{self.language}"')
        out.append(f"DEFAULT={'YES' if self.default else 'NO'}")
        out.append(f"AUTOSELECT={'YES' if self.autoselect or self.default else 'NO'}")
        if self.forced:
            out.append("FORCED=YES")
        if self.characteristics:
            out.append(f'CHARACTERISTICS="{self.characteristics}"')
        return ",".join(out)


@dataclass(frozen=True)
class Track:
    """What the source says of one sound track (``hevcq.media.model.AudioStream``)."""

    language: str = ""
    title: str = ""
    role: str = MAIN
    default: bool = False
    forced: bool = False


def language_tag(tagged: str) -> str:
    """The BCP 47 tag of a container's language tag (ISO 639-2 in MP4 and older Matroska,
    BCP 47 in newer Matroska); "" where it states no language (pure)."""
    raw = tagged.strip()
    if not raw or raw.lower() in _UNKNOWN_TAGS or len(raw) > 35:
        return ""
    try:
        tag = str(langcodes.standardize_tag(raw))
    except (ValueError, KeyError):  # LanguageTagError is a ValueError
        return ""
    if tag.lower() in _UNKNOWN_TAGS or not langcodes.tag_is_valid(tag):
        return ""
    return tag


def language_name(tag: str) -> str:
    """A language's name in that language, capitalised as a menu item ("Français");
    "" for no tag or one the language data has no name for (pure)."""
    if not tag:
        return ""
    language = langcodes.Language.get(tag)
    if not language.has_name_data():
        return ""
    name = str(language.autonym())
    return name[:1].upper() + name[1:]


def clean_text(text: str) -> str:
    """Text from a file made fit for a quoted playlist attribute (pure): no quote, no
    control or format character (a line break would start a new tag), blanks collapsed,
    at most ``NAME_CHARS`` characters."""
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch != '"' and (ch.isspace() or unicodedata.category(ch)[0] != "C")
    )
    return " ".join(kept.split())[:NAME_CHARS].strip()


def _named(track: Track, fallback: str, taken: set[str]) -> tuple[str, str]:
    """A track's NAME, unique among those ``taken`` (and taken from then on), and its
    LANGUAGE."""
    language = language_tag(track.language)
    name = clean_text(track.title) or language_name(language) or fallback
    unique, n = name, 2
    while unique.casefold() in taken:
        unique, n = f"{name[: NAME_CHARS - 4]} {n}", n + 1
    taken.add(unique.casefold())
    return unique, language


def subtitle_labels(tracks: list[Track]) -> list[Label]:
    """The labels of a ladder's subtitle renditions (pure). None is shown by default: a
    Matroska muxer marks every track default unless told otherwise, and subtitles shown
    unasked are in the way; forced subtitles are marked so, which players show whatever
    was chosen; captions are marked as transcribing dialogue and sound."""
    taken: set[str] = set()
    out = []
    for track in tracks:
        name, language = _named(track, SUBTITLES_NAME, taken)
        out.append(
            Label(
                name,
                language,
                forced=track.forced,
                characteristics=TRANSCRIBES if track.role == CAPTIONS else "",
            )
        )
    return out


def labels(tracks: list[Track]) -> list[Label]:
    """The labels of a ladder's audio renditions, one per track in order (pure)."""
    if not tracks:
        return []
    main = [i for i, t in enumerate(tracks) if t.role == MAIN]
    marked = [i for i in main if tracks[i].default]
    default = (marked or main or [0])[0]
    taken: set[str] = set()
    out = []
    for i, track in enumerate(tracks):
        name, language = _named(track, FALLBACK_NAME, taken)
        out.append(
            Label(
                name,
                language,
                default=i == default,
                autoselect=track.role != COMMENTARY,
                characteristics=DESCRIBES_VIDEO if track.role == DESCRIPTION else "",
            )
        )
    return out
