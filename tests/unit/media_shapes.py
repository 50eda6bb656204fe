"""Probed source shapes shared by the decide and ffargs tests (what probe() would return)."""

from __future__ import annotations

from hevcq.media.model import AudioStream, MediaInfo, SubtitleStream, VideoStream

MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
MKV = "matroska,webm"


def clip(
    width: int,
    height: int,
    *,
    codec: str = "h264",
    rotation: int = 0,
    pix_fmt: str = "yuv420p",
    audio: tuple[str, ...] = ("aac",),
    subtitles: tuple[str, ...] = (),
    attachments: int = 0,
    covers: tuple[tuple[str, str], ...] = (),
    format_name: str = MP4,
) -> MediaInfo:
    """A source with one video stream first, then audio, then subtitles, then cover art
    (``(codec, filename)``: a Matroska attachment's name, "" for an MP4 cover)."""
    depth = 10 if "10" in pix_fmt else 8
    video = VideoStream(0, codec, width, height, pix_fmt, depth, rotation, 24.0)
    audio_streams = tuple(AudioStream(1 + i, c) for i, c in enumerate(audio))
    first_sub = 1 + len(audio)
    subs = tuple(SubtitleStream(first_sub + i, c) for i, c in enumerate(subtitles))
    first_cover = first_sub + len(subtitles)
    pictures = tuple(
        VideoStream(first_cover + i, c, 600, 600, "", 8, attached_pic=True, filename=name)
        for i, (c, name) in enumerate(covers)
    )
    return MediaInfo(
        format_name, 12.5, 1_000_000, (video, *pictures), audio_streams, subs, attachments
    )


COVER_ART_ONLY = MediaInfo(
    MP4,
    180.0,
    4_000_000,
    video=(VideoStream(1, "mjpeg", 600, 600, "yuvj420p", 8, attached_pic=True),),
    audio=(AudioStream(0, "aac"),),
)

# name -> (source file name, probed info)
SHAPES: dict[str, tuple[str, MediaInfo]] = {
    "landscape_1080": ("beach.mp4", clip(1920, 1080)),
    "portrait_rot90": ("IMG_0042.MOV", clip(1920, 1080, rotation=90)),
    "upside_down_rot180": ("IMG_0043.MOV", clip(1920, 1080, rotation=180)),
    "portrait_rot270": ("IMG_0044.MOV", clip(1920, 1080, rotation=270)),
    "portrait_coded": ("screen.mp4", clip(1080, 1920)),
    "odd_size_big": ("odd.mp4", clip(1921, 1081)),
    "odd_size_small": ("odd-small.mp4", clip(321, 241)),
    "ten_bit": ("graded.mp4", clip(3840, 2160, pix_fmt="yuv420p10le")),
    "pcm_audio_mov": ("camera.mov", clip(1920, 1080, audio=("pcm_s16le",))),
    "mkv_2audio_srt_attachment": (
        "film.mkv",
        clip(
            1920, 800, audio=("aac", "dts"), subtitles=("subrip",), attachments=1, format_name=MKV
        ),
    ),
    "mp4_cover": ("episode.m4v", clip(1280, 720, covers=(("mjpeg", ""),))),
    "mkv_font_and_covers": (
        "concert.mkv",
        clip(
            1920,
            1080,
            subtitles=("ass",),
            attachments=1,
            covers=(("png", "cover.png"), ("mjpeg", "cover_land.jpg")),
            format_name=MKV,
        ),
    ),
    "mp4_gif_cover": ("clip.mp4", clip(1280, 720, covers=(("gif", ""),))),
    "mp4_mov_text": ("talk.mp4", clip(1280, 720, subtitles=("mov_text",))),
    "mp4_mixed_subs": ("mixed.m4v", clip(1920, 1080, subtitles=("subrip", "hdmv_pgs_subtitle"))),
    "already_hevc": ("hevc-clip.mp4", clip(1280, 720, codec="hevc")),
    "vp9_webm": ("talk.webm", clip(1920, 1080, codec="vp9", audio=("opus",), format_name=MKV)),
    "no_video": ("song.m4a", MediaInfo(MP4, 200.0, 3_000_000, audio=(AudioStream(0, "aac"),))),
    "cover_art_only": ("album.mp4", COVER_ART_ONLY),
    "smaller_than_targets": ("small.mp4", clip(640, 360)),
    "equal_720": ("exact720.mp4", clip(1280, 720)),
    "equal_1080_portrait": ("exact1080.MOV", clip(1920, 1080, rotation=90)),
}
