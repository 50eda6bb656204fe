"""A GoPro's telemetry track (GPMF: GPS, accelerometer, gyroscope, read as ``bin_data``) is
copied into MP4 outputs, and an output without it may not replace its original. Before,
every output left it out and ``fetch --replace`` put such an output in the original's
place: the ride's GPS track was gone with the original."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import av
import pytest

from hevcq.library.quarantine import ReplaceRefused, verify_replacement
from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.probe import probe
from hevcq.pools import Pool
from tests.e2e.test_crfsearch import run_job

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gopro(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MP4 of picture, sound and a ``gpmd`` track with a packet a second."""
    folder = tmp_path_factory.mktemp("gopro")
    plain = folder / "plain.mp4"
    subprocess.run(
        [
            *(find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=3"),
            *("-f", "lavfi", "-i", "sine=duration=3"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(plain)),
        ],
        check=True,
    )
    out = folder / "GX010001.MP4"
    with av.open(str(plain)) as src, av.open(str(out), "w", format="mp4") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        telemetry = dst.add_data_stream("bin_data")
        seconds = 0
        for packet in src.demux():
            if packet.dts is None or packet.pts is None or packet.time_base is None:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
            if packet.stream.type == "video" and packet.pts * packet.time_base >= seconds:
                gpmf = av.Packet(b"DEVC" + os.urandom(60))
                gpmf.stream, gpmf.time_base = telemetry, packet.time_base
                gpmf.pts = gpmf.dts = packet.pts
                dst.mux(gpmf)
                seconds += 1
    return out


def _telemetry(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        [stream] = container.streams.data
        return [bytes(p) for p in container.demux(stream) if p.size]


def _pool(container: str) -> Pool:
    return Pool.model_validate(
        {
            "name": "q",
            "applies": {"source_codecs": ["h264"]},
            "encode": {"preset": "ultrafast", "container": container},
        }
    )


def test_an_mp4_output_keeps_the_telemetry_as_it_is(tmp_path: Path, gopro: Path) -> None:
    assert probe(gopro).telemetry == (2,)
    result, _, store = run_job(tmp_path, gopro, _pool("mp4"))
    assert result.outcome == "done", result.reason
    out = tmp_path / "out.mp4"
    out.write_bytes(store.data[result.output_key])
    assert probe(out).telemetry == (2,)
    assert _telemetry(out) == _telemetry(gopro)
    verify_replacement(out, gopro, allow_larger=True)


def test_an_output_without_the_telemetry_may_not_replace_it(tmp_path: Path, gopro: Path) -> None:
    result, _, store = run_job(tmp_path, gopro, _pool("mkv"))
    assert result.outcome == "done", result.reason
    out = tmp_path / "out.mkv"
    out.write_bytes(store.data[result.output_key])
    assert probe(out).telemetry == ()  # Matroska holds no data streams
    with pytest.raises(ReplaceRefused, match=r"it holds 0 of the original's 1 telemetry streams"):
        verify_replacement(out, gopro, allow_larger=True)
