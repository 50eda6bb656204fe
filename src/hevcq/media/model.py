"""Plain data about media files and encode decisions; no I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field

# The codecs whose keyframes each state the picture's size (media/picshape.py reads them).
KEYFRAME_SIZED_CODECS = frozenset({"vp8", "vp9"})
# Demuxers of bare video streams (a security camera's ``.h264``): no container, so no
# length stated anywhere, and libavformat leaves it unknown (``probe.length_guess``).
BARE_STREAM_FORMATS = frozenset({"h264", "hevc"})


@dataclass(frozen=True)
class VideoStream:
    """A video stream as stored (coded size) plus how it is shown: its display rotation
    and its sample (pixel) aspect ratio."""

    index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    rotation: int = 0  # display rotation in degrees, normalised to 0, 90, 180 or 270
    fps: float | None = None
    attached_pic: bool = False  # cover art, not a real video track
    # Sample aspect ratio: 1:1 for square pixels; a DVD's 720x480 shown at 16:9 is 32:27,
    # an HDV camera's 1440x1080 shown at 1920x1080 is 4:3.
    sar_num: int = 1
    sar_den: int = 1
    interlaced: bool = False  # its first picture is interlaced (two fields)
    # An HDR transfer, in zscale's names: "smpte2084" (PQ, HDR10) or "arib-std-b67"
    # (HLG, as phones record); "" for SDR.
    hdr_transfer: str = ""
    # Stored as RGB, or as a palette of RGB colours (a GIF, a screen recording in PNG or
    # QuickTime Animation, lossless captures): made YUV in BT.709 first (ffargs.rgb_to_yuv).
    rgb: bool = False
    alpha: bool = False  # it has an alpha channel: laid over black first (ffargs.FLATTEN_ALPHA)
    # The decoder that reads its alpha, when the alpha is kept beside the picture rather
    # than in it (VP8/VP9 in WebM: ffmpeg.ALPHA_DECODERS); "" for the default decoder.
    alpha_decoder: str = ""
    # The colours its first frame states: AVColorSpace, AVColorPrimaries and
    # AVColorTransferCharacteristic (2: unspecified). A ladder states what the source
    # leaves unstated (ffargs.stated_colours); None: not read (cover art), or all stated.
    colours: tuple[int, int, int] | None = None
    # Cover art only: the name and MIME type a Matroska attachment gave the picture ("" when
    # it had none, as an MP4 cover has).
    filename: str = ""
    mimetype: str = ""
    # Its first frame states a spherical mapping (a 360-degree camera's equirectangular
    # picture) that outputs can keep: players show it so only while the output says so.
    spherical: bool = False
    # Its keyframes were read for its size (a VP8/VP9 stream's headers, an MPEG-TS/PS
    # recording's decoded): width and height are the size they show longest
    # (media/picshape.py), not only the first frame's.
    sized_by_keyframes: bool = False

    @property
    def square_pixels(self) -> bool:
        """Whether a stored pixel is shown square."""
        return self.sar_num == self.sar_den

    @property
    def upright_size(self) -> tuple[int, int]:
        """The coded size with the rotation applied: the size of its frames as ffmpeg
        turns them upright, before any stretch to square pixels."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown to the viewer in square pixels: the width stretched
        by the sample aspect ratio (to an even size, as 4:2:0 needs), then the rotation
        applied."""
        width = self.width
        if not self.square_pixels:
            width = max(2, round(self.width * self.sar_num / self.sar_den / 2) * 2)
        if self.rotation in (90, 270):
            return self.height, width
        return width, self.height


@dataclass(frozen=True)
class AudioStream:
    """An audio stream."""

    index: int
    codec: str
    channels: int = 2
    tag: str = ""  # the container's codec tag (fourcc), "" when it has none
    layout: str = ""  # libavutil's name of its channel layout ("5.1(side)"); "": unknown
    sample_rate: int = 0  # samples a second; 0: not read (probed before it was)
    # Its channels or rate change partway (in MPEG-TS: hevcq.media.soundshape); then
    # ``channels`` and ``sample_rate`` are the most it takes, its encodes take that shape,
    # and AAC is never copied (hevcq.formats.CONFIGURED_ONCE).
    varies: bool = False
    # How long after the file's start (its earliest stream) its sound begins; 0: with it.
    start_s: float = 0.0
    # Its bit rate as the file states it, in kb/s rounded up; 0: not stated (FLAC, Opus
    # and Vorbis in Matroska) or not read (probed before it was)
    bit_rate_kbps: int = 0
    # What its container says of it, as read (hevcq.media.renditions names a ladder's
    # audio renditions from it): its language tag ("eng"; "": none), its title (an MP4's
    # track name too), its role (renditions.MAIN, COMMENTARY or DESCRIPTION) and whether
    # it is marked to play by default.
    language: str = ""
    title: str = ""
    role: str = ""
    default: bool = False

    @property
    def known(self) -> bool:
        """Whether the probe found its shape: a stream with none (no channels read) has
        no packet in the stretch a probe reads, often none at all (a broadcast's second
        language or audio description, listed and silent). No muxer takes it: every
        encode that mapped it failed (``sample rate not set``)."""
        return self.channels > 0

    @property
    def limiting_kbps(self) -> int:
        """The stated rate an encode of it is held to (``formats.encoded_audio_kbps``), 0
        for none: a stream whose shape changes states the rate of its first stretch
        only, which says nothing of a wider one later."""
        return 0 if self.varies else self.bit_rate_kbps


@dataclass(frozen=True)
class SubtitleStream:
    """A subtitle stream."""

    index: int
    codec: str
    tag: str = ""
    # As for AudioStream: what its container says of it (a ladder's subtitle renditions);
    # its role is renditions.MAIN or CAPTIONS (for the deaf and hard of hearing).
    language: str = ""
    title: str = ""
    role: str = ""
    default: bool = False
    forced: bool = False  # shown whatever the viewer chose: a film's foreign dialogue


@dataclass(frozen=True)
class MediaInfo:
    """What probing a file found."""

    format_name: str
    duration_s: float | None
    size_bytes: int
    video: tuple[VideoStream, ...] = ()
    audio: tuple[AudioStream, ...] = ()
    subtitles: tuple[SubtitleStream, ...] = ()
    attachments: int = 0
    chapters: int = 0
    # Its data streams of GoPro telemetry (GPMF: GPS, accelerometer, gyroscope), by index:
    # libavformat reads them as ``bin_data``, the one data codec its MP4 muxer writes back.
    telemetry: tuple[int, ...] = ()
    # A bare video stream's length, guessed from its first frames where the file states
    # none (``probe.length_guess``): for planning (the estimate, the time left), never for
    # a check, which ``duration_s`` alone is.
    duration_guess_s: float | None = None
    # ``duration_s`` was measured from the file's packets, which is all a file stating no
    # length has (a browser's recording; ``probe.packet_span_s``). False when it is stated,
    # and when such a file could not be measured (its length then unknown).
    length_measured: bool = False

    @property
    def main_video(self) -> VideoStream | None:
        """The first real video stream (cover art excluded), if any."""
        return next((v for v in self.video if not v.attached_pic), None)


@dataclass(frozen=True)
class Cover:
    """A cover picture an output keeps: the source stream it is copied from, and how the
    output holds it (``hevcq.formats.Container.covers``)."""

    index: int
    codec: str  # mjpeg, png, ...
    filename: str  # the attachment's name in a Matroska output
    mimetype: str


@dataclass(frozen=True)
class Skip:
    """A pool does not apply to this source; ``reason`` is shown to the user."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class EncodePlan:
    """Everything needed to build the ffmpeg command and verify its result."""

    pool: str
    container: str  # the muxer: "mp4", "matroska", "webm" (hevcq.formats.CONTAINERS)
    video_index: int
    width: int  # coded output size (even)
    height: int
    rotation: int  # display rotation carried to the output
    # The source's coded size the plan is made at (its first frame's; a VP8/VP9 source's,
    # the one its keyframes show longest: media/picshape.py) and its pixel aspect: frames
    # of another size are fitted in (ffargs.fit_picture). (0, 0): not known, every frame
    # taken to be of that size.
    source_size: tuple[int, int] = (0, 0)
    pixel_aspect: tuple[int, int] = (1, 1)  # its sample aspect ratio, num and den
    ten_bit: bool
    codec: str = "hevc"  # hevcq.formats.VIDEO_CODECS
    crf: int
    preset: str
    x265_params: dict[str, str] = field(default_factory=dict)
    scale: bool = False
    crop: bool = False  # odd-sized source: drop its last row/column, 4:2:0 needs even sizes
    audio: tuple[tuple[int, str], ...] = ()  # (source index, "copy" | "aac")
    audio_bitrate_kbps: int = 160  # the pool's, for a stereo pair
    # Encoded streams at another rate (hevcq.formats.encoded_audio_kbps): (source index,
    # kb/s); any other encoded stream takes ``audio_bitrate_kbps``
    audio_rates: tuple[tuple[int, int], ...] = ()
    # Encoded streams cut to their first two channels first (hevcq.formats.first_pair_only)
    audio_first_pair: tuple[int, ...] = ()
    # Encoded streams whose shape changes partway (AudioStream.varies), each brought to one:
    # (source index, channels, sample rate), the most it takes (hevcq.media.soundshape)
    audio_shapes: tuple[tuple[int, int, int], ...] = ()
    # Titles of mapped audio streams, (source index, title), stated again on the output:
    # an MP4's track name reads as "name" and is written from "title" (``ffargs.audio_args``)
    audio_titles: tuple[tuple[int, str], ...] = ()
    subtitles: tuple[tuple[int, str], ...] = ()  # (source index, "copy" | "mov_text")
    telemetry: tuple[int, ...] = ()  # source indexes of telemetry streams copied (MP4 only)
    attachments: bool = False  # the source's attachments (fonts, ...) are copied
    source_attachments: int = 0  # how many it has
    covers: tuple[Cover, ...] = ()  # cover art kept (decide.cover_plan)
    # Further video streams copied as they are, after the main one (decide.extra_video):
    # a dual dashcam's cabin camera, a recording's second angle.
    extra_video: tuple[int, ...] = ()
    expected_duration_s: float | None = None
    expected_frames: int | None = None  # duration x frame rate, where the probe gave both
    # Whether the encode may go through the tee muxer (decide.tee_safe); otherwise the
    # output is decoded again after the encode to verify it.
    tee_safe: bool = True
    deinterlace: bool = False  # an interlaced source: every frame made progressive first
    rgb: bool = False  # an RGB source: made BT.709 YUV first and tagged so (ffargs.rgb_to_yuv)
    alpha: bool = False  # a source with an alpha channel: laid over black first
    alpha_decoder: str = ""  # the decoder its alpha needs (VideoStream.alpha_decoder)
    spherical: bool = False  # its spherical (360-degree) mapping is kept (ffargs.muxer)


Decision = Skip | EncodePlan
