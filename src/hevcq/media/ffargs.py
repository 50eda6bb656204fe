"""The ffmpeg argument list for an encode plan. Pure: no I/O, never a shell string."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from hevcq.errors import ConfigError
from hevcq.formats import (
    AUDIO_LAYOUTS,
    CONTAINERS,
    FIRST_PAIR,
    VIDEO_CODECS,
    Container,
    VideoCodec,
)
from hevcq.media.model import EncodePlan

# A stretch of a source, (start, length) in seconds from the file's start.
Window = tuple[float, float]


def build_args(
    ffmpeg: str,
    src: Path,
    dst: Path,
    plan: EncodePlan,
    *,
    threads: int | None = None,
    stream: Path | None = None,
    covers: Path | None = None,
    window: Window | None = None,
) -> list[str]:
    """The full argument list (binary first) that turns ``src`` into ``dst`` per ``plan``
    (``window`` of it alone when given: ``window_args``).

    With ``stream`` (HEVC plans only), the encoded video is also written there as a raw
    HEVC elementary stream, so that it can be decoded while the encode runs (see
    ``hevcq.media.streamcheck``); ``dst`` comes out byte for byte as it would without.
    A plan whose container attaches its covers reads them from ``covers`` (the folder
    ``hevcq.media.covers.extract`` wrote them to; ``dst``'s by default).
    """
    args = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    if threads:
        args += ["-threads", str(threads)]  # before -i: decoder threads
    # -noautorotate: keep the coded orientation; the display matrix is carried over instead.
    # "file:" stops a name starting with "-" or holding ":" being read as an option or protocol.
    args += ["-noautorotate", *decoder_args(plan.video_index, plan.alpha_decoder)]
    args += [*window_args(window), "-i", f"file:{src}", "-map_metadata", "0"]
    args += video_args(plan, threads)
    for n, index in enumerate(plan.extra_video, start=1):  # after the main, as they are
        args += ["-map", f"0:{index}", f"-c:v:{n}", "copy"]
    args += audio_args(plan)
    args += subtitle_args(plan)
    for n, index in enumerate(plan.telemetry):  # as they are: GPS and sensors by the frame
        args += ["-map", f"0:{index}", f"-c:d:{n}", "copy"]
    if plan.attachments:
        args += ["-map", "0:t", "-c:t", "copy"]
    args += cover_args(plan, covers or dst.parent)
    args += stream_tag_args(plan)
    args += ["-fflags", "+bitexact"]
    fmt, options = muxer(plan)
    if stream is not None and not _codec(plan).stream_proof:
        raise ConfigError(f"no stream proof for {plan.codec} video")
    progress = ["-progress", "pipe:1", "-nostats"]
    if stream is None:
        muxing = [a for k, v in options.items() for a in (f"-{k}", v)]
        return [*args, "-flags", BITEXACT, *muxing, "-f", fmt, *progress, f"file:{dst}"]
    # The tee muxer cannot tell the encoders that the file needs global headers (the mp4
    # and matroska muxers ask for them themselves), so it is said here: the output is
    # the same bytes either way. dump_extra repeats the parameter sets in the raw copy
    # so that it decodes on its own.
    main = ":".join([f"f={fmt}", *(f"{k}={v}" for k, v in options.items())])
    spec = f"[{main}]file:{tee_escape(dst)}|[{STREAM_SLAVE}]file:{tee_escape(stream)}"
    return [*args, *progress, "-flags", f"+global_header{BITEXACT}", "-f", "tee", spec]


# An interlaced source's frames are made progressive before anything else sees them: one
# frame out per frame in (the source's frame rate, not its field rate), only frames
# flagged interlaced touched, so a stream that mixes both keeps its progressive frames
# as they are (decision 0027).
DEINTERLACE = "bwdif=mode=send_frame:parity=auto:deint=interlaced"


def tone_map(transfer: str) -> str:
    """The filters that turn HDR (``transfer``: "smpte2084" for PQ, "arib-std-b67" for HLG;
    BT.2020 colours) into 8-bit SDR in BT.709, the only picture H.264 carries and every
    screen shows (decision 0028). Mobius keeps tones up to SDR's white as they are and
    compresses only the highlights above it."""
    return (
        f"zscale=tin={transfer}:pin=bt2020:min=bt2020nc:t=linear:npl=100,format=gbrpf32le,"
        "zscale=p=bt709,tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,"
        "format=yuv420p"
    )


# What a source with an alpha channel shows through where it is transparent: black, as
# every video shows an unfilled picture. Each colour is multiplied by its alpha (the
# picture laid over black); dropped, the alpha left whatever colour the transparent
# pixels happened to keep showing: magenta in a PNG, the transparent index's in a GIF.
FLATTEN_ALPHA = "premultiply=inplace=1"


def rgb_to_yuv(*, ten_bit: bool = False) -> str:
    """The filters that make an RGB source's frames (or a palette's) YUV with BT.709's
    matrix in the video range, 4:4:4 so that the scale after it subsamples the chroma
    once, and say so on every frame: BT.709 colours, matrix and transfer, the SDR picture
    players and Apple's HLS authoring specification expect (decision 0036). The encoders
    tag their streams from the frames (ffmpeg 9 leaves ``-color_primaries`` and
    ``-color_trc`` unused when the frames say nothing). Left to itself, the conversion
    uses BT.601's matrix and tags nothing, and a player shows an HD picture as BT.709:
    every saturated colour off (pure red came out at Y 81 where BT.709 puts it at 63)."""
    fmt = "yuv444p10le" if ten_bit else "yuv444p"
    return (
        f"scale=out_color_matrix=bt709:out_range=tv,format={fmt},"
        "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
    )


# Coded lines from which players take a picture that states no colours for BT.709, and
# below for BT.601 (Chromium, measured 2026-11-27: 1280x718 and 1280x544 as BT.601,
# 1100x720 and 576x1024 as BT.709; decision 0036).
HD_LINES = 720
# A picture's colours in setparams' names: matrix, primaries and transfer.
COLOUR_FIELDS = ("colorspace", "color_primaries", "color_trc")
# AVColorSpace, AVColorPrimaries and AVColorTransferCharacteristic values that state
# nothing: unspecified (2) and reserved (3; and 0 but for a matrix, where it is RGB's).
_UNSTATED = ((2, 3), (0, 2, 3), (0, 2, 3))
# What a picture following BT.709 or BT.601 states, by its stated AVColorSpace matrix
# (1: BT.709; 5 and 6: BT.470 BG and SMPTE 170M) or, stating none, by its size.
_HD, _SD = ("bt709",) * 3, ("smpte170m",) * 3
_BY_MATRIX = {1: _HD, 5: _SD, 6: _SD}


def stated_colours(colours: tuple[int, int, int], coded_height: int) -> str:
    """The filter that states on every frame what a YUV picture leaves unstated of its
    ``colours`` (matrix, primaries, transfer, as AVColorSpace, AVColorPrimaries and
    AVColorTransferCharacteristic), as players take such a picture (pure); "" when it
    states all three.

    Players take a picture that states nothing by its size: BT.709 from ``HD_LINES``
    coded lines up, SMPTE 170M (BT.601) below, to the pixel as Chromium shows it. Chromium
    also takes a picture that states only some of the three as if it stated none, so a
    stated BT.709 or BT.601 matrix decides the rest; beside another matrix (BT.2020's),
    nothing is guessed."""
    unstated = [value in none for value, none in zip(colours, _UNSTATED, strict=True)]
    if not any(unstated):
        return ""
    if unstated[0]:
        standard = _HD if coded_height >= HD_LINES else _SD
    elif colours[0] in _BY_MATRIX:
        standard = _BY_MATRIX[colours[0]]
    else:
        return ""
    said = zip(COLOUR_FIELDS, standard, unstated, strict=True)
    return "setparams=" + ":".join(f"{name}={value}" for name, value, fill in said if fill)


def window_args(window: Window | None) -> list[str]:
    """The input options that read ``window`` of a file and nothing else (none without
    one); they go before its ``-i``.

    ffmpeg seeks to the keyframe at or before the start, decodes from there and drops
    every frame before the start (an accurate seek), and the frames it keeps start at
    zero: the same frames, at the same times, for every reader given the same window,
    however far apart the source's keyframes are.
    """
    if window is None:
        return []
    start, length = window
    return ["-ss", f"{start:.3f}", "-t", f"{length:.3f}"]


def decoder_args(stream: int | str, decoder: str) -> list[str]:
    """The input options that decode ``stream`` (an index, or "v" for every video stream)
    with ``decoder``; none for "" (the default decoder). They go before the ``-i``."""
    return [f"-c:{stream}", decoder] if decoder else []


def source_filters(
    *,
    deinterlace: bool,
    hdr_transfer: str = "",
    rgb: bool = False,
    ten_bit: bool = False,
    alpha: bool = False,
) -> list[str]:
    """The filters a source's frames go through before anything else: a transparent
    source's laid over black, an RGB source's made BT.709 YUV (``ten_bit``: at 10 bits),
    the deinterlacer for an interlaced source, then, given its HDR transfer, the tone map
    to SDR."""
    first = [FLATTEN_ALPHA] if alpha else []
    # An HDR picture goes to the tone map as it is: its first scale reads RGB as well.
    first += [rgb_to_yuv(ten_bit=ten_bit)] if rgb and not hdr_transfer else []
    first += [DEINTERLACE] * deinterlace
    return first + ([tone_map(hdr_transfer)] if hdr_transfer else [])


def fit_picture(
    width: int,
    height: int,
    *,
    first: tuple[int, int] = (0, 0),
    aspect: Fraction = Fraction(1),
    flags: str = "lanczos",
    chroma: str = "",
) -> str:
    """The filters that bring every frame to ``width`` x ``height``.

    A frame of the ``first`` size (the source's that the plan is made at,
    ``EncodePlan.source_size``; (0, 0): not known) or of a shape within 1 % of the
    output's is scaled to it exactly as a plain ``scale`` does. A frame of another
    shape, from a picture that changes partway (a browser's recording of a phone turned
    on its side, a shared window resized), is fitted inside with its shape kept,
    centred on black: left to ffmpeg, it was stretched to the output's size.
    ``aspect``: the pixel aspect of the output's frames, so that shapes are compared as
    they are shown. ``chroma``: where the output says its chroma sits (the scale says
    nothing otherwise).

    Both filters evaluate for each frame, so the chain works in a graph built once
    (``-reinit_filter 0``, as scores are) as in one built again where the picture
    changes; a frame of the output's size passes the pad untouched."""
    a, b = aspect.numerator, aspect.denominator
    shown_w, shown_h = width * a, height * b  # the output's shape as shown
    keep = f"lt(abs(dar*{shown_h}-{shown_w}),{shown_w}/100)"
    if first != (0, 0):
        keep = f"eq(iw,{first[0]})*eq(ih,{first[1]})+{keep}"
    wide = f"gte(dar*{shown_h},{shown_w})"  # fitted to the width, else to the height
    w = f"if({keep}+{wide},{width},max(2,2*trunc({height}*dar*{b}/{a}/2)))"
    h = f"if({keep}+1-{wide},{height},max(2,2*trunc({width}*{a}/({b}*dar)/2)))"
    where = f":out_chroma_loc={chroma}" if chroma else ""
    scale = f"scale=w='{w}':h='{h}':flags={flags}:eval=frame{where}"
    return f"{scale},pad={width}:{height}:-1:-1:eval=frame"


def spherical_scale(width: int, height: int) -> str:
    """A scale to ``width`` x ``height`` that keeps a 360-degree picture's spherical mapping
    (``EncodePlan.spherical``). ffmpeg's ``scale`` drops it from every frame whose size it
    changes, as it does all side data it counts as tied to the size, and the output then
    plays as a flat, stretched panorama; ``zscale`` passes it on. Such cameras keep one
    size throughout, so nothing is fitted (``fit_picture``)."""
    return f"zscale=w={width}:h={height}:filter=lanczos"


def video_args(plan: EncodePlan, threads: int | None = None) -> list[str]:
    """Map and encode the main video stream; frame timing passes through untouched.

    It is the output's first video stream, and every option names it (``:v:0``): cover
    art mapped after it is another video stream, copied, which an option for all video
    streams would try to filter or tag."""
    codec = _codec(plan)
    args = ["-map", f"0:{plan.video_index}"]
    filters = source_filters(
        deinterlace=plan.deinterlace, rgb=plan.rgb, ten_bit=plan.ten_bit, alpha=plan.alpha
    )
    filters += _sized(plan)
    args += ["-filter:v:0", ",".join(filters)]
    args += ["-c:v:0", codec.encoder, *_preset(codec, plan.preset)]
    args += [codec.quality_option, str(plan.crf)]
    args += ["-pix_fmt:v:0", "yuv420p10le" if plan.ten_bit else "yuv420p"]
    if codec.profiles:
        args += ["-profile:v:0", codec.profiles[1] if plan.ten_bit else codec.profiles[0]]
    args += list(codec.quality_args)
    params = dict(plan.x265_params)
    if threads and codec.threads_param:
        params[codec.threads_param] = str(threads)
    elif threads:
        args += ["-threads:v:0", str(threads)]
    params.update(codec.forced_params)
    if params and codec.params_option:
        args += [codec.params_option, encoder_params(params)]
    # No -r and no CFR conversion: MP4 output would otherwise default to duplicating
    # and dropping frames of variable-frame-rate phone clips. The encoder counts time in
    # the frames' own ticks: by default it counts in frames of the stream's guessed rate,
    # which for a variable-rate Matroska source (1 ms ticks, an average rate that divides
    # nothing) rounds timestamps onto each other (38 of 234 frames of a phone clip).
    args += ["-fps_mode:v:0", "passthrough", "-enc_time_base:v:0", "filter"]
    return args


def _sized(plan: EncodePlan) -> list[str]:
    """The filters that bring the source's frames to the plan's coded size: scaled (with
    lanczos), or an odd-sized source's last row or column cropped, or as they are; in every
    case a frame of another shape, where the picture changes partway, is fitted in with
    its shape kept (``fit_picture``). Frames of the source's first size come out as the
    same bytes as from a plain scale or crop; kept as they are, as the same pictures as
    with no filter at all (below: what the output says of its chroma)."""
    size = (plan.width, plan.height)
    w0, h0 = plan.source_size
    if plan.scale and plan.spherical:
        return [spherical_scale(*size)]
    if plan.scale:
        # The scale keeps the shape shown: the output's pixels are the source's, stretched
        # by as much as the scale changes the picture's proportions.
        aspect = Fraction(*plan.pixel_aspect)
        if w0 and h0:
            aspect *= Fraction(plan.height * w0, plan.width * h0)
        return [fit_picture(*size, first=plan.source_size, aspect=aspect)]
    crop = []
    if plan.crop:
        known = f"eq(iw,{w0})*eq(ih,{h0})" if w0 and h0 else "1"
        crop = [f"crop=w='if({known},{plan.width},iw)':h='if({known},{plan.height},ih)':x=0:y=0"]
    # bicubic: the scaler ffmpeg puts before the encoder to change a frame's pixel format,
    # which this one now does in its place, to the same pictures. A scale says nothing of
    # where the chroma sits, where no filter passed on what the source said: "left" is what
    # H.264's, MPEG-2's, VP9's and HEVC's 4:2:0 say, and what an HEVC decoder takes when
    # nothing is said (decision 0033: a source that says "topleft" now comes out "left").
    aspect = Fraction(*plan.pixel_aspect)
    return [*crop, fit_picture(*size, first=size, aspect=aspect, flags="bicubic", chroma="left")]


def _codec(plan: EncodePlan) -> VideoCodec:
    return VIDEO_CODECS[plan.codec]


def _preset(codec: VideoCodec, preset: str) -> list[str]:
    # libvpx names its speed -cpu-used (with -deadline good); the others take -preset.
    if not preset:
        return []
    if codec.encoder == "libvpx-vp9":
        return ["-deadline", "good", "-cpu-used", preset]
    return ["-preset", preset]


def encoder_params(params: dict[str, str]) -> str:
    """``key=value:key=value``; rejects what would break that syntax."""
    for key, value in params.items():
        if not key or any(ch in key for ch in ":=") or ":" in value:
            raise ConfigError(f"x265_params: {key}={value!r} cannot be passed to the encoder")
    return ":".join(f"{key}={value}" for key, value in params.items())


def audio_kbps(plan: EncodePlan, index: int) -> int:
    """The bit rate source stream ``index`` is encoded at: its own where the plan gives one
    (``EncodePlan.audio_rates``), else the pool's."""
    return dict(plan.audio_rates).get(index, plan.audio_bitrate_kbps)


def audio_args(plan: EncodePlan) -> list[str]:
    """Map every planned audio stream, copied or encoded (AAC, Opus, ...) at its rate
    (``audio_kbps``), in source order; an encoded stream is given a channel layout its
    encoder writes (``AUDIO_LAYOUTS``), after its first two channels are taken from it
    where no layout can be (``FIRST_PAIR``) and, where its shape changes partway, after
    every stretch is brought to the widest (``EncodePlan.audio_shapes``: libavutil's
    default layout of that many channels)."""
    args: list[str] = []
    for n, (index, mode) in enumerate(plan.audio):
        args += ["-map", f"0:{index}"]
        if mode == "copy":
            args += [f"-c:a:{n}", "copy"]
        else:
            args += [f"-c:a:{n}", mode, f"-b:a:{n}", f"{audio_kbps(plan, index)}k"]
            chain = [FIRST_PAIR] if index in plan.audio_first_pair else []
            chain += [
                f"aformat=channel_layouts={channels}c:sample_rates={rate}"
                for i, channels, rate in plan.audio_shapes
                if i == index
            ]
            if mode in AUDIO_LAYOUTS:
                chain.append(f"aformat=channel_layouts={AUDIO_LAYOUTS[mode]}")
            if chain:
                args += [f"-filter:a:{n}", ",".join(chain)]
    # An MP4 source's track names ("Commentary") read as "name"; the MP4 muxer writes
    # them from "title", and they were lost from every MP4 output. Stated for every
    # container: Matroska's title is the same key, copied either way.
    titles = dict(plan.audio_titles)
    for n, (index, _) in enumerate(plan.audio):
        if index in titles:
            args += [f"-metadata:s:a:{n}", f"title={titles[index]}"]
    return args


def subtitle_args(plan: EncodePlan) -> list[str]:
    """Map every planned subtitle stream, copied or converted to mov_text."""
    args: list[str] = []
    for n, (index, mode) in enumerate(plan.subtitles):
        args += ["-map", f"0:{index}", f"-c:s:{n}", mode]
    return args


def cover_args(plan: EncodePlan, folder: Path) -> list[str]:
    """Keep the plan's cover art: copied as attached-picture streams after the video
    streams (MP4), or attached from the files ``hevcq.media.covers.extract`` wrote to ``folder``
    (Matroska). Attachments come after every mapped stream, so they are named by their
    place among the output's attachments."""
    if container_of(plan).covers == "stream":
        args: list[str] = []
        for n, cover in enumerate(plan.covers, start=1 + len(plan.extra_video)):
            args += ["-map", f"0:{cover.index}", f"-c:v:{n}", "copy"]
            args += [f"-disposition:v:{n}", "attached_pic"]
        return args
    mapped = plan.source_attachments if plan.attachments else 0
    args = []
    for n, cover in enumerate(plan.covers):
        t = f"-metadata:s:t:{mapped + n}"
        args += ["-attach", f"file:{cover_file(folder, n)}"]
        args += [t, f"mimetype={cover.mimetype}", t, f"filename={cover.filename}"]
    return args


def cover_file(folder: Path, n: int) -> Path:
    """Where the plan's ``n``-th cover to attach is extracted to."""
    return folder / f"cover-{n}"


def stream_tag_args(plan: EncodePlan) -> list[str]:
    """The codec's MP4 tag where players need one: hvc1 (parameter sets in the sample
    entry) is what Apple players require for HEVC."""
    tag = _codec(plan).mp4_tag
    return ["-tag:v:0", tag] if tag and plan.container == "mp4" else []


def container_of(plan: EncodePlan) -> Container:
    """The output container a plan's muxer belongs to (``hevcq.formats.CONTAINERS``)."""
    found = next((c for c in CONTAINERS.values() if c.muxer == plan.container), None)
    if found is None:
        raise ConfigError(f"unknown output container {plan.container!r}")
    return found


def muxer(plan: EncodePlan) -> tuple[str, dict[str, str]]:
    """Explicit output format and its options: temporary names carry no extension."""
    box = container_of(plan)
    options = dict(box.muxer_options)
    if plan.covers:
        options |= dict(box.cover_muxer_options)
    if plan.spherical:
        options |= dict(box.spherical_muxer_options)
    return box.muxer, options


# Deterministic output (``-fflags`` for the muxer, ``-flags`` for the encoders): no random
# Matroska UIDs and no library versions in the container, the stream headers or the AAC
# frames, so the same source and settings make the same bytes again and a re-run finds its
# earlier output equal. x265 ignores the flag: the video bitstream is the same either way.
# One ``-flags`` for all streams: a second one (the tee's global_header) would override it.
BITEXACT = "+bitexact"

# The tee's second output: the video stream only, as Annex B with in-band parameter sets.
STREAM_SLAVE = "f=hevc:select=v:bsfs/v=dump_extra"
_TEE_SPECIAL = set("\\'|") | set(" \t\n\r")


def tee_escape(path: Path) -> str:
    """A path made safe inside a tee output list, whose parser splits on ``|`` and
    unquotes ``\\`` and ``'`` (leading and trailing blanks would be trimmed too)."""
    return "".join(f"\\{ch}" if ch in _TEE_SPECIAL else ch for ch in str(path))
