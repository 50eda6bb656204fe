"""What a pool may encode to: every video codec and container hevcq knows, and what each
container holds. The one table to extend: a pool file names a codec and a container from
it, ``hevcq.pools`` refuses a pair the table does not allow when the file is loaded, and
the plan, the ffmpeg arguments, the output's name and its Content-Type all read it.

A new format is one entry here (see the Theora/Vorbis-in-Ogg pair in
``tests/e2e/test_formats.py``, which adds itself to these tables and runs a real encode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class VideoCodec:
    """A video codec a pool may name, and the ffmpeg encoder that makes it."""

    name: str  # what a pool file says, and what probing the output reports
    label: str  # for people: "already HEVC"
    encoder: str  # the ffmpeg encoder
    max_crf: int
    presets: tuple[str, ...]  # empty: the encoder has no preset
    default_preset: str
    # The encoder's constant-quality option, which takes the pool's ``crf``.
    quality_option: str = "-crf"
    # The encoder's own option for extra parameters (x265's ``-x265-params``), if any.
    params_option: str | None = None
    # Parameters always passed through ``params_option`` (quiet logs: see ffargs).
    forced_params: tuple[tuple[str, str], ...] = ()
    # How the encoder is told its thread count: an output option or a parameter.
    threads_param: str | None = None
    # The codec tag MP4 players need (Apple's for HEVC), if not the muxer's default.
    mp4_tag: str | None = None
    # The profile for 8-bit and for 10-bit output, where the encoder takes one.
    profiles: tuple[str, str] | None = None
    # Output options the encoder needs for constant-quality mode (VP9: no bitrate cap).
    quality_args: tuple[str, ...] = ()
    # Whether the worker's in-flight stream proof (``hevcq.media.streamcheck``, which
    # reads HEVC NAL units) applies; other codecs are decoded in full after the encode.
    stream_proof: bool = False
    # The smallest picture side the encoder takes (x265: 16; SVT-AV1 refused 2x2; a side
    # of one pixel has no 4:2:0 chroma at all).
    min_side: int = 2


@dataclass(frozen=True)
class Container:
    """An output container: its muxer, name, media type and what it may hold."""

    name: str  # what a pool file says
    muxer: str  # ffmpeg's output format
    extension: str
    content_type: str
    video: frozenset[str]  # VideoCodec names it holds
    # Audio codecs audio that is not copied may be encoded to, the default first.
    audio_codecs: tuple[str, ...]
    audio_copy: frozenset[str]  # source audio codecs taken as they are
    # How text subtitles are kept: "copy" (as they are), an encoder to convert them to,
    # or None (dropped). Bitmap subtitles survive only where this is "copy".
    text_subtitles: str | None
    # Codecs of ``audio_copy`` taken only from this sample rate up: (codec, least Hz)
    audio_copy_least_hz: tuple[tuple[str, int], ...] = ()
    attachments: bool = False
    # How cover art (a video stream flagged as an attached picture: an MP4's cover, a
    # Matroska image attachment) is kept: "stream" copies it as such a stream (MP4's
    # ``covr``; only ``cover_codecs``), "attach" writes it as an attachment (Matroska's
    # muxer writes a copied picture stream as a second video track instead), "" drops it.
    covers: str = ""
    cover_codecs: frozenset[str] = frozenset()
    muxer_options: tuple[tuple[str, str], ...] = ()
    # Muxer options that take the place of those of the same name when the output keeps
    # cover art.
    cover_muxer_options: tuple[tuple[str, str], ...] = ()
    # Muxer options added when the output keeps a spherical (360-degree) mapping
    # (EncodePlan.spherical), which the muxer otherwise leaves out.
    spherical_muxer_options: tuple[tuple[str, str], ...] = ()
    # Subtitle formats a "copy" container cannot carry as they are, and what they become.
    subtitle_conversions: tuple[tuple[str, str], ...] = ()
    # Whether it keeps a GoPro's telemetry track (GPMF), copied: MP4 does; Matroska and
    # WebM hold no data streams at all.
    telemetry: bool = False


# The largest picture any codec here may carry in a conforming stream: 35,651,584 luma
# samples is the top level of each, H.264 6.2 (139,264 macroblocks), HEVC 6.2 (MaxLumaPs),
# VP9 6.2 and AV1 6.3, as 8192x4352; and no side over AV1's 16,384 (MaxHSize). Larger
# pictures make streams players refuse, and a few kilobytes of one flat colour at
# 8192x8192 made x265 use 4.2 GB, more than a worker's task has: an upload's cheapest way
# to occupy a farm.
MAX_PICTURE_SAMPLES = 35_651_584
MAX_PICTURE_SIDE = 16_384


def picture_fits(width: int, height: int) -> bool:
    """Whether a coded picture of this size fits every codec's top level."""
    return width * height <= MAX_PICTURE_SAMPLES and max(width, height) <= MAX_PICTURE_SIDE


def too_large(width: int, height: int) -> str:
    """Why a picture of this size is not encoded at that size."""
    return (
        f"picture {width}x{height} is larger than any video stream may hold"
        f" ({MAX_PICTURE_SAMPLES / 1e6:.1f} million pixels, as 8192x4352)"
    )


# The ffmpeg encoder of each audio codec a container may encode to.
AUDIO_ENCODERS: dict[str, str] = {
    "aac": "aac",
    "opus": "libopus",
    "vorbis": "libvorbis",
    "flac": "flac",
}


# The channel layouts an audio encoder writes as they are, for encoders that ffmpeg does
# not convert to by itself. Opus, Vorbis and FLAC define their channel orders for 1 to 8
# channels (the Vorbis orders below); libopus refuses any other layout, among them
# 5.1(side), which AC-3, E-AC-3 and DTS surround carry, and libvorbis and flac write some
# (2.1, 4.0, 7.1(wide), hexagonal) under the wrong speakers. ``ffargs.audio_args`` passes
# their streams through an ``aformat`` naming these, which leaves a layout on the list
# untouched and rematrixes any other to the nearest one (5.1(side) to 5.1, 22.2 to 7.1).
VORBIS_LAYOUTS = "mono|stereo|3.0|quad|5.0|5.1|6.1|7.1"
# The layouts ffmpeg's native AAC encoder writes, each tried on the pinned build. ffmpeg
# does not convert to them by itself: the height layouts (5.1.2, 7.1.4, 9.1.6, 22.2, ...),
# 16 channels and custom channel orders failed the encode. On this list a layout is left
# as it is (the same bytes as without the filter); any other is rematrixed to the nearest
# (7.1.4 to 7.1, 5.1.2 to 5.1(side), 16 channels to 7.1). Two layouts the encoder takes
# are left off, as layouts it refuses were rematrixed to them (5.1.2 to 6.1(front),
# hexadecagonal to octagonal): 6.1(front) and octagonal, which become 7.1(wide-side) and 7.0.
AAC_LAYOUTS = (
    "mono|stereo|2.1|3.0|3.0(back)|4.0|quad|quad(side)|3.1|4.1|5.0|5.0(side)|5.1|5.1(side)"
    "|6.0|6.0(front)|hexagonal|6.1|6.1(back)|7.0|7.0(front)|7.1|7.1(wide)|7.1(wide-side)"
)
AUDIO_LAYOUTS: dict[str, str] = {
    "aac": AAC_LAYOUTS,
    "libopus": VORBIS_LAYOUTS,
    "libvorbis": VORBIS_LAYOUTS,
    "flac": VORBIS_LAYOUTS,
}
# Channel counts libavutil has a default layout for. A stream of any other count whose
# file does not name its layout (a multitrack recorder's 11 or 20 channels in Matroska
# or QuickTime) cannot be rematrixed at all, not even to stereo: swresample has nothing
# to start from, and every encode of it failed. Its first two channels are taken as the
# stereo pair first (``FIRST_PAIR``), where broadcast and multitrack recorders put their
# main mix. So is a pair of channels laid out as something swresample cannot remix or
# would make mono: QuickTime's matrix stereo ("downmix", Lt/Rt), binaural.
DEFAULT_LAYOUT_COUNTS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 24})
PLAIN_PAIRS = frozenset({"", "stereo", "2 channels"})
FIRST_PAIR = "pan=stereo|c0=c0|c1=c1"
# The most channels an encoded stream is written with: every layout the encoders above
# write has 8 or fewer, and a wider stream is rematrixed to one of them.
MOST_ENCODED_CHANNELS = 8


# The least an encoded stream is given per channel where its source's own rate is lower:
# enough for AAC and Opus to keep speech and music clean.
LEAST_KBPS_PER_CHANNEL = 32


def copies_audio(box: Container, codec: str, sample_rate: int) -> bool:
    """Whether ``box`` takes an audio stream of ``codec`` at ``sample_rate`` Hz as it is
    (a rate of 0, not read, is taken to be one it holds)."""
    least = dict(box.audio_copy_least_hz).get(codec, 0)
    return codec in box.audio_copy and (sample_rate == 0 or sample_rate >= least)


def encoded_audio_kbps(pair_kbps: int, channels: int, source_kbps: int = 0) -> int:
    """The bit rate of an encoded audio stream written with ``channels`` channels, for a
    pool whose ``audio_bitrate_kbps`` is ``pair_kbps``.

    That rate is for a stereo pair, and a wider stream is given it for every pair it
    holds (5.1: three pairs, 480 kb/s at 160), so surround sound is not squeezed into a
    stereo budget. Mono is half a pair (80 kb/s at 160, what AAC and Opus need to keep
    one channel clean), never below ``LEAST_KBPS_PER_CHANNEL`` unless the pool's pair
    rate is itself lower. Nor is a stream given more than its source states
    (``source_kbps``, 0 when it states none): bytes spent above that add nothing to what
    is heard (a phone's 12.2 kb/s AMR speech is not made 128 kb/s of Opus), down to
    ``LEAST_KBPS_PER_CHANNEL`` for each channel written.
    """
    written = min(max(channels, 1), MOST_ENCODED_CHANNELS)
    if written == 1:
        kbps = max(pair_kbps // 2, min(pair_kbps, LEAST_KBPS_PER_CHANNEL))
    else:
        kbps = pair_kbps * ((written + 1) // 2)
    if source_kbps > 0:
        kbps = min(kbps, max(source_kbps, LEAST_KBPS_PER_CHANNEL * written))
    return kbps


def first_pair_only(channels: int, layout: str = "") -> bool:
    """Whether an encoded stream of this many channels, laid out as ``layout`` (its
    libavutil name, "" when unknown), is cut to its first two as a stereo pair first."""
    return channels not in DEFAULT_LAYOUT_COUNTS or (channels == 2 and layout not in PLAIN_PAIRS)


X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)

VIDEO_CODECS: dict[str, VideoCodec] = {
    "hevc": VideoCodec(
        name="hevc",
        label="HEVC",
        encoder="libx265",
        max_crf=51,
        presets=X26X_PRESETS,
        default_preset="medium",
        params_option="-x265-params",
        # x265's banner and per-frame info would push ffmpeg's real error out of the
        # bounded stderr tail that failure messages quote.
        forced_params=(("log-level", "error"),),
        threads_param="pools",
        mp4_tag="hvc1",
        profiles=("main", "main10"),
        stream_proof=True,
        min_side=16,
    ),
    "h264": VideoCodec(
        name="h264",
        label="H.264",
        encoder="libx264",
        max_crf=51,
        presets=X26X_PRESETS,
        default_preset="medium",
        params_option="-x264-params",
        profiles=("high", "high10"),
    ),
    "av1": VideoCodec(
        name="av1",
        label="AV1",
        encoder="libsvtav1",
        max_crf=63,
        presets=tuple(str(n) for n in range(14)),  # SVT-AV1: 0 slowest .. 13 fastest
        default_preset="8",
        params_option="-svtav1-params",
        threads_param="lp",
        min_side=4,
    ),
    "vp9": VideoCodec(
        name="vp9",
        label="VP9",
        encoder="libvpx-vp9",
        max_crf=63,
        presets=tuple(str(n) for n in range(9)),  # libvpx -cpu-used: 0 slowest .. 8 fastest
        default_preset="4",
        quality_args=("-b:v", "0", "-row-mt", "1"),
    ),
}

# The MIME type and file extension of each picture codec cover art comes in.
COVER_TYPES: dict[str, tuple[str, str]] = {
    "mjpeg": ("image/jpeg", "jpg"),
    "png": ("image/png", "png"),
    "bmp": ("image/bmp", "bmp"),
    "gif": ("image/gif", "gif"),
    "webp": ("image/webp", "webp"),
    "tiff": ("image/tiff", "tif"),
}

# Audio codecs MP4 carries as they are; anything else becomes AAC.
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus"})
# Audio codecs MP4 and Matroska hold under one configuration for a whole stream, written
# from its first frame: a stream of them whose shape changes partway (``AudioStream.varies``)
# is wrong after the change when copied, and is encoded. AC-3 and MPEG audio frames say
# their own shape, as they do in MPEG-TS.
CONFIGURED_ONCE = frozenset({"aac"})

CONTAINERS: dict[str, Container] = {
    "mp4": Container(
        name="mp4",
        muxer="mp4",
        extension=".mp4",
        content_type="video/mp4",
        video=frozenset({"hevc", "h264", "av1", "vp9"}),
        audio_codecs=("aac", "opus"),
        audio_copy=_MP4_AUDIO,
        # MP4 holds MPEG audio of MPEG-1 and MPEG-2 rates only: its muxer refuses the
        # 8, 11.025 and 12 kHz of MPEG-2.5 (an old camera's or a voice recorder's MP3)
        # as "not standard", so such a stream is encoded.
        audio_copy_least_hz=(("mp3", 16000),),
        text_subtitles="mov_text",
        covers="stream",
        telemetry=True,
        cover_codecs=frozenset({"mjpeg", "png", "bmp"}),  # what the mov muxer writes
        # faststart puts the index first so playback starts before the download ends.
        muxer_options=(("movflags", "+faststart+use_metadata_tags"),),
        # MP4 holds a cover in iTunes-style metadata (``ilst``'s ``covr``), which the
        # ``mdta`` keys of use_metadata_tags replace. A source with a cover has iTunes-style
        # tags, which ``ilst`` holds; a phone's own keys (``mdta``) come without one.
        cover_muxer_options=(("movflags", "+faststart"),),
        # The mov muxer writes the boxes that say so (Google's ``sv3d`` and ``st3d``, which
        # YouTube and 360-degree players read) only when allowed past the MP4 standard.
        spherical_muxer_options=(("strict", "unofficial"),),
    ),
    "mkv": Container(
        name="mkv",
        muxer="matroska",
        extension=".mkv",
        content_type="video/x-matroska",
        video=frozenset({"hevc", "h264", "av1", "vp9"}),
        audio_codecs=("aac", "opus", "vorbis", "flac"),
        # Matroska takes nearly everything, but an explicit list means an exotic codec is
        # re-encoded (which always works) instead of failing the mux.
        audio_copy=_MP4_AUDIO
        | frozenset(
            {
                "mp2",
                "dts",
                "truehd",
                "flac",
                "vorbis",
                "wavpack",
                "tta",
                "pcm_u8",
                "pcm_alaw",
                "pcm_mulaw",
                "pcm_s16le",
                "pcm_s16be",
                "pcm_s24le",
                "pcm_s24be",
                "pcm_s32le",
                "pcm_s32be",
                "pcm_f32le",
                "pcm_f64le",
            }
        ),
        text_subtitles="copy",
        attachments=True,
        covers="attach",
        cover_codecs=frozenset(COVER_TYPES),
        subtitle_conversions=(("mov_text", "srt"),),
    ),
    "webm": Container(
        name="webm",
        muxer="webm",
        extension=".webm",
        content_type="video/webm",
        video=frozenset({"vp9", "av1"}),
        audio_codecs=("opus", "vorbis"),
        audio_copy=frozenset({"opus", "vorbis"}),
        text_subtitles="webvtt",
    ),
}

# "auto": the output keeps Matroska for Matroska sources (their subtitles and
# attachments), MP4 for everything else.
AUTO = "auto"
AUTO_CHOICES = ("mp4", "mkv")
_MATROSKA_SOURCES = frozenset({".mkv", ".webm"})


def auto_container(source_name: str) -> Container:
    """The container an ``auto`` pool writes for this source."""
    ext = PurePosixPath(source_name).suffix.lower()
    return CONTAINERS["mkv" if ext in _MATROSKA_SOURCES else "mp4"]


def output_container(container: str, source_name: str) -> Container:
    """The container a pool naming ``container`` writes for this source."""
    return auto_container(source_name) if container == AUTO else CONTAINERS[container]


# The parts of a streaming ladder, as players and CDNs expect them served: playlists as
# RFC 8216 names them, CMAF media segments as RFC 8216bis and the CMAF spec register them.
STREAMING_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".vtt": "text/vtt",
    ".m4v": "video/mp4",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".json": "application/json",
}


def content_type(key: str) -> str:
    """The media type of an output object, from its name."""
    ext = PurePosixPath(key).suffix.lower()
    if ext in STREAMING_TYPES:
        return STREAMING_TYPES[ext]
    found = next((c for c in CONTAINERS.values() if c.extension == ext), None)
    return found.content_type if found else "application/octet-stream"


def audio_codec(box: Container, wanted: str | None) -> str:
    """The audio codec a pool's encoded audio gets in ``box``: its own choice or the
    container's default."""
    return wanted if wanted is not None else box.audio_codecs[0]


def pair_problem(codec: str, container: str, audio: str | None) -> str | None:
    """Why a pool's video codec, container and audio codec do not go together (None: they
    do). An ``auto`` container must work both ways it may turn out."""
    video = VIDEO_CODECS.get(codec)
    if video is None:
        return f"codec {codec!r} is not one of {', '.join(sorted(VIDEO_CODECS))}"
    if container != AUTO and container not in CONTAINERS:
        known = ", ".join([AUTO, *sorted(CONTAINERS)])
        return f"container {container!r} is not one of {known}"
    for name in AUTO_CHOICES if container == AUTO else (container,):
        box = CONTAINERS[name]
        if codec not in box.video:
            return f"{box.name} cannot hold {video.label} video (it holds {_holds(box)})"
        if audio is not None and audio not in box.audio_codecs:
            return f"{box.name} cannot hold {audio} audio (it takes {', '.join(box.audio_codecs)})"
    return None


def _holds(box: Container) -> str:
    return ", ".join(VIDEO_CODECS[c].label for c in sorted(box.video) if c in VIDEO_CODECS)
