"""The decoders the ladder's checks run: one thread, every frame, the file verification's
options, and AV1 through dav1d."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import av
import pytest

from hevcq.media.ladder import DAV1D, check_decoder
from hevcq.media.verify import DECODER_OPTIONS


def stream_of(codec: str) -> Any:
    return SimpleNamespace(codec_context=av.CodecContext.create(codec, "r"))


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_a_check_decoder_decodes_every_frame_in_one_thread(codec: str) -> None:
    stream = stream_of(codec)
    stream.codec_context.skip_frame = "ALL"  # as the probe of open_fragmented leaves it
    stream.codec_context.thread_count = 0
    decoder = check_decoder(stream)
    assert decoder is stream.codec_context
    assert decoder.skip_frame == "DEFAULT"
    assert decoder.thread_count == 1
    assert decoder.options == DECODER_OPTIONS


@pytest.mark.skipif(DAV1D not in av.codecs_available, reason="PyAV built without dav1d")
def test_an_av1_stream_is_decoded_by_dav1d_with_its_configuration_record() -> None:
    stream = stream_of("av1")
    stream.codec_context.extradata = bytes.fromhex("81000c00")  # av1C: main, level 0
    decoder = check_decoder(stream)
    assert decoder.name == DAV1D
    assert bytes(decoder.extradata) == bytes.fromhex("81000c00")
    assert decoder.thread_count == 1
