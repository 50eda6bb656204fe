"""Whether a pool applies to a probed source, and if so the exact encode plan. Pure."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

from hevcq.errors import ConfigError
from hevcq.formats import (
    AUDIO_ENCODERS,
    CONFIGURED_ONCE,
    COVER_TYPES,
    VIDEO_CODECS,
    Container,
    audio_codec,
    copies_audio,
    encoded_audio_kbps,
    first_pair_only,
    picture_fits,
    too_large,
)
from hevcq.media.ffargs import build_args
from hevcq.media.ladder import choose_rungs
from hevcq.media.model import (
    AudioStream,
    Cover,
    Decision,
    EncodePlan,
    MediaInfo,
    Skip,
    SubtitleStream,
    VideoStream,
)
from hevcq.pools import Pool

KEPT_ORIGINAL = "kept original: output would be larger"
MAX_ATTACHMENT_NAME_BYTES = 255

# Text subtitle codecs that MP4's mov_text or WebM's WebVTT can be made from.
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "text", "mov_text"})
# (codec, tag) of copied streams that MP4 takes as they are. Through the tee muxer (see
# ffargs.build_args) a copied stream keeps its source's codec tag, where plain ffmpeg
# swaps a tag the output container does not know (".mp3" from QuickTime, "text" for
# mov_text, AVI and MPEG-TS numbers) for the container's own. So the tee is only used
# when every copied stream has no tag or one of these, which plain ffmpeg keeps too, and
# when the source has no chapters, which the tee muxer does not pass on.
MP4_KEPT_TAGS = frozenset(
    {
        ("aac", "mp4a"),
        ("mp3", "mp4a"),
        ("ac3", "ac-3"),
        ("eac3", "ec-3"),
        ("alac", "alac"),
        ("opus", "Opus"),
        ("mov_text", "tx3g"),
    }
)
# Audio whose frames last under a millisecond (TrueHD and MLP, 1/1200 s each, as Blu-ray
# discs carry them). Copied into Matroska, whose timestamps count milliseconds, several
# frames share a timestamp: the Matroska muxer takes that, but the tee muxer does not say
# it does, so ffmpeg moves each repeat on by a tick and 6 s of TrueHD came out 7.2 s long
# (rejected by verification, every attempt). Such a copy takes the plain path.
SUB_TICK_AUDIO = frozenset({"truehd", "mlp"})


def decide(info: MediaInfo, pool: Pool, source_name: str) -> Decision:
    """The encode plan for this source in this pool, or why the pool does not apply."""
    video = info.main_video
    if video is None:
        return Skip("no video stream")
    box = pool.encode.container_for(source_name)
    shape = _not_handled(video, pool) or _shape(video, pool)
    if isinstance(shape, Skip):
        return shape
    width, height, scale, crop = shape
    codec = pool.encode.video
    container = box.muxer
    keep_subs = pool.encode.keep_subtitles
    encoder = AUDIO_ENCODERS[audio_codec(box, pool.encode.audio_codec)]
    audio = audio_plan(info.audio, box, encoder)
    layouts = {a.index: (a.channels, a.layout) for a in info.audio}
    first_pair = tuple(i for i, mode in audio if mode != "copy" and first_pair_only(*layouts[i]))
    encoded = {i for i, mode in audio if mode != "copy"}
    kept = {i for i, _ in audio}
    shapes = tuple(
        (a.index, a.channels, a.sample_rate) for a in info.audio if a.varies and a.index in encoded
    )
    rates = audio_rates(info.audio, encoded, first_pair, pool.encode.audio_bitrate_kbps)
    subtitles = subtitle_plan(info.subtitles, box) if keep_subs else ()
    telemetry = info.telemetry if box.telemetry else ()
    covers = cover_plan(info.video, box)
    extra = extra_video(info.video, video, box) if not scale else ()
    return EncodePlan(
        pool=pool.name,
        codec=codec.name,
        container=container,
        video_index=video.index,
        width=width,
        height=height,
        rotation=video.rotation,
        source_size=(video.width, video.height),
        pixel_aspect=(video.sar_num, video.sar_den),
        ten_bit=video.bit_depth > 8,
        crf=pool.encode.crf,
        preset=pool.encode.encoder_preset,
        x265_params=dict(pool.encode.x265_params),
        scale=scale,
        crop=crop,
        audio=audio,
        audio_bitrate_kbps=pool.encode.audio_bitrate_kbps,
        audio_first_pair=first_pair,
        audio_shapes=shapes,
        audio_rates=rates,
        audio_titles=tuple((a.index, a.title) for a in info.audio if a.title and a.index in kept),
        subtitles=subtitles,
        telemetry=telemetry,
        attachments=keep_subs and box.attachments and info.attachments > 0,
        source_attachments=info.attachments,
        covers=covers,
        extra_video=extra,
        expected_duration_s=info.duration_s,
        expected_frames=expected_frames(info.duration_s, video.fps),
        deinterlace=video.interlaced,
        rgb=video.rgb,
        alpha=video.alpha,
        alpha_decoder=video.alpha_decoder,
        spherical=video.spherical,
        # The stream proof reads HEVC; other codecs are decoded in full after the encode.
        # The tee's raw copy takes every video stream, so a copied cover (or any other
        # copied picture) rules it out.
        tee_safe=codec.stream_proof
        and info.chapters == 0
        and not covers
        and not extra
        and not telemetry
        and tee_safe(info, container, [*audio, *subtitles]),
    )


# A pool taking more codecs than this is not listed in full in a skip's reason.
MOST_CODECS_NAMED = 8


def _not_handled(video: VideoStream, pool: Pool) -> Skip | None:
    """Why the pool does not take a video of this codec, if it does not."""
    codec = pool.encode.video
    # A ladder is made from any source it handles, whatever its codec (hevcq.media.ladder).
    if video.codec == codec.name and pool.applies.target_height is None and pool.ladder is None:
        return Skip(f"already {codec.label}")
    if video.codec not in pool.applies.source_codecs:
        taken = pool.applies.source_codecs
        # A long list (the hls pool takes over thirty codecs) made one row of a library's
        # summary several lines tall for every file in a codec no pool takes.
        handled = (
            ", ".join(taken)
            if len(taken) <= MOST_CODECS_NAMED
            else f"it takes {len(taken)} codecs, listed in its file's applies.source_codecs"
        )
        return Skip(f"source codec {video.codec} is not handled by pool {pool.name} ({handled})")
    return None


def _shape(video: VideoStream, pool: Pool) -> tuple[int, int, bool, bool] | Skip:
    """The coded size the pool encodes ``video`` at (and whether that scales or crops it),
    or why it does not encode it."""
    target = pool.applies.target_height
    codec = pool.encode.video
    display_w, display_h = video.display_size
    # A ladder's rungs are no larger than a stream may be: it has none at all when the
    # picture is so elongated that even its 240-pixel rung is too wide.
    if pool.ladder is not None and not choose_rungs(display_w, display_h, Fraction(30)):
        return Skip(too_large(display_w, display_h))
    if target is None:
        width, height = _even(video.width), _even(video.height)
        scale, crop = False, (width, height) != (video.width, video.height)
    else:
        if min(display_w, display_h) < target:
            return Skip(f"source is {display_w}x{display_h}, smaller than {target}p (no upscaling)")
        if min(display_w, display_h) == target and video.codec == codec.name:
            # The rendition would re-encode the source into itself, only worse.
            return Skip(f"already {codec.label} at {display_w}x{display_h}, the {target}p size")
        width, height = fit_short_side(video.width, video.height, target)
        scale, crop = (width, height) != (video.width, video.height), False
    if pool.ladder is None and not picture_fits(width, height):
        return Skip(too_large(width, height))
    small = _too_small(video, pool, min(width, height))
    if small is not None:
        return small
    return width, height, scale, crop


def _too_small(video: VideoStream, pool: Pool, side: int) -> Skip | None:
    """Why a picture whose encoded short side is ``side`` is too small for an encoder the
    pool uses (its own, and a ladder's codec groups, whose smallest rung is the source's
    size when that is under the smallest standard one), if it is: without this, a 2x2
    clip failed in every pool with x265's or SVT-AV1's own words."""
    codecs = [pool.encode.video]
    if pool.ladder is not None:  # H.264 and its groups; its ``encode`` makes no video
        codecs = [VIDEO_CODECS["h264"], *(VIDEO_CODECS[g] for g in pool.ladder.groups)]
    side = min(side, video.width, video.height)  # a 1-pixel side evened up is not there
    needs = max(codecs, key=lambda c: c.min_side)
    if side >= needs.min_side:
        return None
    w, h = video.display_size
    n = needs.min_side
    return Skip(f"picture too small: {w}x{h}, where {needs.label} needs at least {n}x{n}")


def expected_frames(duration_s: float | None, fps: float | None) -> int | None:
    """Frames an encode of the whole source should write; ``None`` unless both are known."""
    if not duration_s or not fps or duration_s <= 0 or fps <= 0:
        return None
    return max(1, round(duration_s * fps))


def _even(size: int) -> int:
    """The largest even size not above ``size`` (4:2:0 chroma needs even dimensions)."""
    return max(2, size - size % 2)


def fit_short_side(width: int, height: int, target: int) -> tuple[int, int]:
    """Scale a coded size so its short side is ``target``, keeping aspect, even sides.

    The short side is the same in coded and display orientation (rotation only swaps
    the sides), so a portrait phone clip coded 1920x1080 with rotation 90 gets 1280x720
    coded, which displays as 720x1280: the target becomes its width.
    """
    short, long = sorted((width, height))
    new_long = max(2, round(long * target / short / 2) * 2)
    new_short = _even(target)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def extra_video(
    video: tuple[VideoStream, ...], main: VideoStream, box: Container
) -> tuple[int, ...]:
    """The video streams beside the main one an output of the source's size keeps,
    copied as they are: those the container holds. A dual dashcam writes its cabin
    camera as a second track, a recording its second angle; an output without it lost
    that picture, and could never stand in for the original (``fetch --replace`` refused
    it: "stream counts differ"). A rendition, made to play the main picture at a smaller
    size, leaves them out; so does a container that cannot hold their codec.
    """
    return tuple(
        v.index
        for v in video
        if v.index != main.index and not v.attached_pic and v.codec in box.video
    )


def cover_plan(video: tuple[VideoStream, ...], box: Container) -> tuple[Cover, ...]:
    """The cover pictures an output in ``box`` keeps: every one it can hold, named and
    typed as the source named and typed it, or ``cover.jpg`` (``cover2.jpg``, ...) and the
    codec's MIME type where it did not."""
    if not box.covers:
        return ()
    covers: list[Cover] = []
    for v in video:
        if not v.attached_pic or v.codec not in box.cover_codecs:
            continue
        mimetype, ext = COVER_TYPES.get(v.codec, ("application/octet-stream", "bin"))
        name = _attachment_name(v.filename) or f"cover{len(covers) + 1 if covers else ''}.{ext}"
        given = v.mimetype if _MIME_TYPE.fullmatch(v.mimetype) else ""
        covers.append(Cover(v.index, v.codec, name, given or mimetype))
    return tuple(covers)


# A MIME type as RFC 6838 shapes it: anything else is a stranger's text, not a type.
_MIME_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]{0,63}/[A-Za-z0-9][\w.+-]{0,126}", re.ASCII)


def _attachment_name(given: str) -> str:
    """A source's name for an attachment as the output keeps it: its last path part (a
    tool that saves attachments by name must not be sent up or down folders), without
    control characters, and at most 255 bytes; "" when nothing is left. It goes on
    ffmpeg's command line, where one argument may not pass 128 KiB."""
    name = re.split(r"[/\\]", given)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    # Cut at a byte count, dropping a character the cut splits.
    name = name.encode()[:MAX_ATTACHMENT_NAME_BYTES].decode(errors="ignore")
    return "" if name in ("", ".", "..") else name


def tee_safe(info: MediaInfo, container: str, copies: list[tuple[int, str]]) -> bool:
    """Whether every stream copied as it is comes through the tee muxer as plain ffmpeg
    writes it: a codec tag the output accepts, and timestamps the tee keeps."""
    streams: dict[int, AudioStream | SubtitleStream] = {a.index: a for a in info.audio}
    streams |= {s.index: s for s in info.subtitles}
    for index, mode in copies:
        stream = streams.get(index)
        if mode != "copy" or stream is None:
            continue
        if stream.codec in SUB_TICK_AUDIO:
            return False
        if not stream.tag:
            continue
        if container != "mp4" or (stream.codec, stream.tag) not in MP4_KEPT_TAGS:
            return False
    return True


def audio_rates(
    streams: Sequence[AudioStream], encoded: set[int], first_pair: Sequence[int], pair_kbps: int
) -> tuple[tuple[int, int], ...]:
    """The encoded streams whose rate is not the pool's ``pair_kbps``
    (``formats.encoded_audio_kbps``), as ``(index, kb/s)``. A stream is written with its
    own channels (at its widest where its shape changes), or two where only its first pair
    is kept, and held to the rate it states (``AudioStream.limiting_kbps``)."""
    rates = []
    for a in streams:
        if a.index not in encoded:
            continue
        channels = 2 if a.index in first_pair else a.channels
        kbps = encoded_audio_kbps(pair_kbps, channels, a.limiting_kbps)
        if kbps != pair_kbps:
            rates.append((a.index, kbps))
    return tuple(rates)


def audio_plan(
    streams: tuple[AudioStream, ...], box: Container, encoder: str = "aac"
) -> tuple[tuple[int, str], ...]:
    """Every audio stream kept: copied when the container takes the codec at its sample
    rate (``formats.copies_audio``) and the stream keeps one shape throughout, else
    encoded with ``encoder`` (the pool's audio codec in this container). An AAC stream
    that changes shape partway (``AudioStream.varies``) copied would be wrong after the
    change (``hevcq.formats.CONFIGURED_ONCE``, ``hevcq.media.soundshape``). A stream
    whose shape the probe did not find (``AudioStream.known``) is left out: no muxer
    takes it."""
    return tuple(
        (
            a.index,
            "copy"
            if copies_audio(box, a.codec, a.sample_rate) and not _reconfigured(a)
            else encoder,
        )
        for a in streams
        if a.known
    )


def _reconfigured(stream: AudioStream) -> bool:
    """A stream copied under one configuration that it does not keep (``CONFIGURED_ONCE``)."""
    return stream.varies and stream.codec in CONFIGURED_ONCE


def subtitle_plan(
    streams: tuple[SubtitleStream, ...], box: Container
) -> tuple[tuple[int, str], ...]:
    """Which subtitle streams survive, and how.

    Matroska keeps every subtitle stream as it is. MP4 only carries mov_text and WebM
    only WebVTT: a stream already in that format is copied, text formats (SubRip,
    ASS/SSA, WebVTT, mov_text) are converted to it (ASS styling is lost), and bitmap
    subtitles (DVD, PGS) are dropped because they cannot be turned into text without OCR
    and such players do not take them; keeping the source as MKV keeps them.
    """
    keep = box.text_subtitles
    if keep == "copy":
        convert = dict(box.subtitle_conversions)
        return tuple((s.index, convert.get(s.codec, "copy")) for s in streams)
    if keep is None:
        return ()
    plan: list[tuple[int, str]] = []
    for sub in streams:
        if sub.codec == keep:
            plan.append((sub.index, "copy"))
        elif sub.codec in TEXT_SUBTITLES:
            plan.append((sub.index, keep))
    return tuple(plan)


def saves_nothing(pool: Pool, output_bytes: int, input_bytes: int) -> bool:
    """True when an output meant to stand in for its source is no smaller than it.

    Renditions (a pool with an output suffix) are another size on purpose: never this.
    """
    return not pool.output_suffix and output_bytes >= input_bytes


# Stand-ins for the paths in an argument list compared between two plans: only the output's
# name may differ between two encodes that make the same bytes.
_SAME_SOURCE, _SAME_OUTPUT = Path("source"), Path("output")
_VERIFY_STRENGTH = {"stream": 0, "full": 1, "quality": 1}


def shares_encode(info: MediaInfo, encoder: Pool, pool: Pool, source_name: str) -> bool:
    """True when ``encoder``'s output of this source can serve as ``pool``'s: both decide
    to encode, with the same plan apart from the pool's name and the same ffmpeg arguments
    apart from the output's, and ``encoder`` checks its outputs at least as strictly.

    Where this holds, the two pools would make the same bytes (the same source, plan and
    ffmpeg make the same output: ``docs/decisions/0012-bitexact-re-runs.md``), so one
    encode serves both.
    """
    if not may_share_encode(encoder, pool):
        return False
    mine, theirs = decide(info, pool, source_name), decide(info, encoder, source_name)
    return same_encode(encoder, pool, theirs, mine)


def same_encode(encoder: Pool, pool: Pool, theirs: Decision, mine: Decision) -> bool:
    """``shares_encode`` from the two pools' decisions for one source, already made
    (``theirs`` by ``encoder``, ``mine`` by ``pool``): both encode, with the same plan
    apart from the pool's name and the same ffmpeg arguments (pure)."""
    if not may_share_encode(encoder, pool):
        return False
    if not isinstance(mine, EncodePlan) or not isinstance(theirs, EncodePlan):
        return False
    if dataclasses.replace(mine, pool="") != dataclasses.replace(theirs, pool=""):
        return False
    try:
        return _args(mine) == _args(theirs)
    except ConfigError:  # settings ffmpeg cannot take: each pool fails on its own
        return False


def may_share_encode(encoder: Pool, pool: Pool) -> bool:
    """Whether ``encoder``'s encode could serve ``pool`` for some source, from the two
    pools alone (pure; ``shares_encode`` holds only where this does): which pools may copy
    the primary's output, so the ingest keeps it for them."""
    return not (
        # A ladder is its own command and many objects, never a copy of a file.
        encoder.ladder is not None
        or pool.ladder is not None
        # A copy carries no poster: a pool that stores one makes its own output.
        or pool.poster
        # Another codec never makes the same bytes.
        or encoder.encode.video.name != pool.encode.video.name
        # Checked less strictly, or not scored against this pool's target, or not at its CRF.
        or _VERIFY_STRENGTH[encoder.verify] < _VERIFY_STRENGTH[pool.verify]
        or not _same_target(encoder, pool)
    )


def copiers_of(primary: Pool | None, pools: Iterable[Pool]) -> frozenset[str]:
    """The pools whose workers may copy ``primary``'s output instead of encoding
    (``may_share_encode``): the ingest keeps that output in the bucket for them."""
    if primary is None:
        return frozenset()
    return frozenset(
        p.name for p in pools if p.name != primary.name and may_share_encode(primary, p)
    )


def _same_target(encoder: Pool, pool: Pool) -> bool:
    """Whether ``encoder``'s quality target lets its output stand for ``pool``'s: the same
    target where ``pool`` has one (the copy was scored against it), and where ``encoder``
    searches its CRF (the encode is then not at the plan's CRF)."""
    searched = encoder.quality is not None and encoder.quality.searches
    return pool.quality == encoder.quality if pool.quality is not None or searched else True


def _args(plan: EncodePlan) -> list[str]:
    return build_args("ffmpeg", _SAME_SOURCE, _SAME_OUTPUT, plan)
