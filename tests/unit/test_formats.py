"""The format table: which codec and container pairs a pool may name, the names and media
types of their outputs, and settings hashes that survive the table's arrival."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hevcq.formats import AUTO, CONTAINERS, VIDEO_CODECS, content_type, pair_problem
from hevcq.keys import done_key
from hevcq.pools import Pool, load_farm, load_pool

VALID = [(c, b) for c in VIDEO_CODECS for b in CONTAINERS if c in CONTAINERS[b].video]


def pool(**encode: object) -> Pool:
    return Pool.model_validate(
        {
            "name": "p",
            "output_suffix": ".x",
            "applies": {"source_codecs": ["h264"]},
            "encode": encode,
        }
    )


@pytest.mark.parametrize(("codec", "container"), VALID)
def test_every_pair_the_table_allows_loads_with_its_default_audio(
    codec: str, container: str
) -> None:
    p = pool(codec=codec, container=container)
    assert p.fixed_extension == CONTAINERS[container].extension
    assert p.encode.encoder_preset in VIDEO_CODECS[codec].presets


def test_webm_holds_vp9_and_av1_with_opus_or_vorbis_only() -> None:
    assert {c for c, b in VALID if b == "webm"} == {"vp9", "av1"}
    assert pair_problem("hevc", "webm", None) == "webm cannot hold HEVC video (it holds AV1, VP9)"
    assert pair_problem("h264", "webm", None) is not None
    assert (
        pair_problem("av1", "webm", "aac") == "webm cannot hold aac audio (it takes opus, vorbis)"
    )
    assert pair_problem("av1", "webm", "opus") is None


def test_auto_must_work_as_mp4_and_as_mkv() -> None:
    assert pair_problem("av1", AUTO, None) is None
    assert (
        pair_problem("av1", AUTO, "vorbis") == "mp4 cannot hold vorbis audio (it takes aac, opus)"
    )


def test_shipped_pools_hash_what_they_hashed_before_codecs_were_chosen() -> None:
    # The hash is stored on every output: a changed one would re-encode a whole library.
    for p in load_farm().values():
        if p.ladder is not None:
            continue  # new with ladders: nothing to keep
        old_encode = {
            "video_codec": "libx265",
            "crf": p.encode.crf,
            "preset": p.encode.preset or "medium",
            "x265_params": dict(p.encode.x265_params),
            "audio_codec": "aac",
            "audio_bitrate_kbps": p.encode.audio_bitrate_kbps,
            "keep_subtitles": p.encode.keep_subtitles,
        }
        blob = json.dumps(
            {"applies": p.applies.model_dump(), "encode": old_encode},
            sort_keys=True,
            separators=(",", ":"),
        )
        assert p.settings_hash() == hashlib.sha256(blob.encode()).hexdigest()[:16], p.name


def test_codec_and_container_change_the_hash() -> None:
    hashes = {pool(codec=c, container=b).settings_hash() for c, b in VALID}
    assert len(hashes) == len(VALID)


def test_a_pool_file_naming_the_encoder_still_loads(tmp_path: Path) -> None:
    f = tmp_path / "old.yaml"
    f.write_text("applies: {source_codecs: [h264]}\nencode: {video_codec: libx265, crf: 24}\n")
    p = load_pool(f)
    assert p.encode.codec == "hevc"
    assert p.settings_hash() == pool(crf=24).settings_hash()


def test_outputs_are_named_and_typed_by_their_container() -> None:
    webm = pool(codec="av1", container="webm")
    key = done_key("TODO/a/b.MOV", "av1", ".x", extension=webm.fixed_extension)
    assert key == "DONE/av1/a/b.x.webm"
    assert content_type(key) == "video/webm"
    assert done_key("TODO/a/b.mkv", "hevc") == "DONE/hevc/a/b.mkv"
    assert content_type("x.MKV") == "video/x-matroska"
    assert content_type("x.m4v") == "video/mp4"
    assert content_type("x.bin") == "application/octet-stream"


def test_only_an_automatic_container_may_replace_originals() -> None:
    plain = Pool.model_validate({"name": "p", "applies": {"source_codecs": ["h264"]}})
    webm = plain.model_copy(update={"encode": pool(codec="av1", container="webm").encode})
    assert plain.may_replace_originals
    assert not webm.may_replace_originals


def test_the_optional_av1_pool_loads_and_joins_a_farm(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "workers"
    av1 = load_pool(shipped / "optional" / "av1.yaml")
    assert (av1.encode.codec, av1.encode.container, av1.fixed_extension) == ("av1", "webm", ".webm")
    assert not av1.may_replace_originals
    for f in [*shipped.glob("*.yaml"), shipped / "optional" / "av1.yaml"]:
        (tmp_path / f.name).write_text(f.read_text())
    farm = load_farm(tmp_path)
    assert sorted(farm) == ["1080p", "720p", "av1", "hevc", "hls"]
    # The default stays HEVC: the ladder pool is there, on by choice.
    on = sorted(n for n, p in load_farm(shipped).items() if p.default)
    assert on == ["1080p", "720p", "hevc"]
