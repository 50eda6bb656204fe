"""Loading the farm definition; errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hevcq.errors import ConfigError
from hevcq.pools import (
    UNHASHED_SOURCE_CODECS,
    Applies,
    Pool,
    Quality,
    choose_pools,
    load_farm,
    load_pool,
    video_codec_names,
)
from tests.conftest import WORKERS_DIR


def test_shipped_pools_load(farm: dict) -> None:
    assert set(farm) == {"hevc", "720p", "1080p", "hls"}
    assert {n for n, p in farm.items() if p.default} == {"hevc", "720p", "1080p"}
    assert farm["hls"].ladder is not None
    assert farm["hls"].fixed_extension == ".m3u8"
    assert farm["hevc"].applies.target_height is None
    assert farm["720p"].applies.target_height == 720
    assert "h264" in farm["hevc"].applies.source_codecs


def test_settings_hash_changes_with_encoder_settings(farm: dict) -> None:
    hevc = farm["hevc"]
    changed = hevc.model_copy(update={"encode": hevc.encode.model_copy(update={"crf": 20})})
    assert hevc.settings_hash() != changed.settings_hash()
    assert hevc.settings_hash() == load_pool(WORKERS_DIR / "hevc.yaml").settings_hash()


def test_every_shipped_pool_verifies_by_stream(farm: dict) -> None:
    assert {p.verify for p in farm.values()} == {"stream"}


@pytest.mark.parametrize("policy", ["stream", "full"])
def test_verify_policy_loads_and_defaults_to_stream(tmp_path: Path, policy: str) -> None:
    f = tmp_path / "mypool.yaml"
    f.write_text("applies: {source_codecs: [h264]}\n")
    assert load_pool(f).verify == "stream"
    f.write_text(f"applies: {{source_codecs: [h264]}}\nverify: {policy}\n")
    assert load_pool(f).verify == policy


def test_verify_policy_is_not_part_of_the_settings_hash(farm: dict) -> None:
    # It changes how an output is checked, not its bytes: switching it re-encodes nothing.
    hevc = farm["hevc"]
    assert hevc.model_copy(update={"verify": "full"}).settings_hash() == hevc.settings_hash()
    scored = hevc.model_copy(update={"quality": Quality(vmaf=95), "verify": "quality"})
    assert scored.settings_hash() == hevc.settings_hash()


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("applies: {source_codecs: [h264]}\nencode: {crf: 99}\n", "encode.crf"),
        ("applies: {source_codecs: [h264]}\nencode: {preset: warp}\n", "preset 'warp'"),
        # What each container holds is checked at load, not after an encode.
        (
            "applies: {source_codecs: [h264]}\nencode: {container: webm}\n",
            "webm cannot hold HEVC video",
        ),
        (
            "applies: {source_codecs: [h264]}\nencode: {codec: av1, container: webm, "
            "audio_codec: aac}\n",
            "webm cannot hold aac audio",
        ),
        ("applies: {source_codecs: [h264]}\nencode: {codec: mpeg1}\n", "codec 'mpeg1'"),
        ("applies: {source_codecs: [h264]}\nencode: {container: avi}\n", "container 'avi'"),
        ("applies: {source_codecs: [h264]}\nencode: {codec: h264, crf: 60}\n", "maximum 51"),
        (
            "applies: {source_codecs: [h264]}\nencode: {codec: av1, x265_params: {a: b}}\n",
            "x265_params apply to hevc only",
        ),
        ("applies: {source_codecs: []}\n", "applies.source_codecs"),
        ("applies: {source_codecs: [h264]}\ncolour: red\n", "colour"),
        ("applies: {source_codecs: [h264]}\ndeploy: {min_tasks: 5, max_tasks: 2}\n", "deploy"),
        (
            "applies: {source_codecs: [h264]}\n"
            "queue: {retention_s: 900000, dlq_retention_s: 800000}\n",
            "queue",
        ),
        ("name: other\napplies: {source_codecs: [h264]}\n", "name"),
        ("- just\n- a list\n", "mapping"),
        ("applies: [unclosed\n", "not a pool definition: line 2, column 1: expected ','"),
        ("applies:\n\tsource_codecs: [h264]\n", "line 2, column 1: found character '\\t'"),
        ("applies: {source_codecs: [h264]}\nverify: sometimes\n", "verify"),
        ("applies: {source_codecs: [h264]}\nverify: [stream]\n", "verify"),
        ("applies: {source_codecs: [h264]}\nverify: null\n", "verify"),
        ("applies: {source_codecs: [h264]}\nverify: quality\n", "verify: quality needs"),
        ("applies: {source_codecs: [h264]}\nquality: {vmaf: 101}\n", "quality.vmaf"),
    ],
)
def test_bad_files_name_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    f = tmp_path / "mypool.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_pool(f)
    assert str(f) in str(err.value)
    assert field in str(err.value)


def test_a_bad_file_is_told_in_one_line(tmp_path: Path) -> None:
    # YAML's own message spans five lines, with a caret under the column.
    f = tmp_path / "mypool.yaml"
    f.write_text("applies: {source_codecs: [h264]\nencode: {crf: 20}\n")
    with pytest.raises(ConfigError) as err:
        load_pool(f)
    assert "\n" not in str(err.value)


def test_a_pool_file_that_is_not_text_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "mypool.yaml"
    f.write_bytes(b"\xff\xfe\x00 saved by the wrong editor")
    with pytest.raises(ConfigError, match=r"mypool\.yaml: not a pool definition: not UTF-8 text"):
        load_pool(f)


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no pool definition files"):
        load_farm(tmp_path)


def test_a_pools_folder_that_is_missing_or_a_file_says_so(tmp_path: Path) -> None:
    """A typo in HEVCQ_WORKERS_DIR read as a folder without pool files."""
    with pytest.raises(ConfigError, match=r"missing: no such folder \(the pool definition"):
        load_farm(tmp_path / "missing")
    (tmp_path / "hevc.yaml").write_text("name: hevc\n")
    with pytest.raises(ConfigError, match=r"hevc\.yaml: is a file, not a folder"):
        load_farm(tmp_path / "hevc.yaml")


def test_a_yml_pool_file_is_a_pool_like_a_yaml_one(tmp_path: Path) -> None:
    (tmp_path / "hevc.yaml").write_text((WORKERS_DIR / "hevc.yaml").read_text())
    (tmp_path / "720p.yml").write_text((WORKERS_DIR / "720p.yaml").read_text())
    assert sorted(load_farm(tmp_path)) == ["720p", "hevc"]


def test_one_pool_in_both_spellings_is_an_error(tmp_path: Path) -> None:
    for suffix in (".yaml", ".yml"):
        (tmp_path / f"hevc{suffix}").write_text((WORKERS_DIR / "hevc.yaml").read_text())
    with pytest.raises(ConfigError, match="defined twice"):
        load_farm(tmp_path)


@pytest.mark.parametrize(
    ("codec", "hint"),
    [("h265", "hevc"), ("x264", "h264"), ("H264", "h264"), ("vp99", "vp9"), ("avc1", "h264")],
)
def test_a_source_codec_libavcodec_does_not_name_is_refused_with_a_hint(
    tmp_path: Path, codec: str, hint: str
) -> None:
    """A typo here made a pool that applied to no file, each skipped as "not a source
    codec of this pool", with nothing said when the pool file was read."""
    f = tmp_path / "p.yaml"
    f.write_text(f"applies: {{source_codecs: [h264, {codec}]}}\n")
    with pytest.raises(ConfigError) as refused:
        load_pool(f)
    assert f"{codec!r} is not a video codec name" in str(refused.value)
    assert f"(did you mean {hint}?)" in str(refused.value)


def test_every_codec_the_shipped_pools_take_is_a_name_the_probe_reports() -> None:
    pools = [*load_farm(WORKERS_DIR).values(), *load_farm(WORKERS_DIR / "optional").values()]
    names = {c for pool in pools for c in pool.applies.source_codecs}
    assert names >= {"h264", "hevc", "mpeg4", "vp9", "av1", "mpeg2video", "prores"}
    assert names | {"mjpeg", "theora", "vc1", "wmv3", "h263", "dnxhd"} <= video_codec_names()


def test_taking_up_a_source_codec_makes_no_existing_output_stale(farm: dict) -> None:
    """The hls and av1 pools took up GIF, PNG, QuickTime Animation, editors' masters and
    lossless captures. Had the codec lists entered the hash whole, every ladder and AV1
    copy already made would have looked stale and been made again."""
    av1 = load_pool(WORKERS_DIR / "optional" / "av1.yaml")
    # Their hashes as they were before the lists grew.
    assert (farm["hls"].settings_hash(), av1.settings_hash()) == (
        "91ed5596bdb03ee7",
        "ef29cdbf2c60ce28",
    )
    for pool in (farm["hls"], av1):
        taken = pool.applies.source_codecs
        assert {"gif", "png", "qtrle", "dnxhd", "utvideo"} <= set(taken)
        before = tuple(c for c in taken if c not in UNHASHED_SOURCE_CODECS)
        assert _hash_taking(pool, before) == pool.settings_hash()
        assert _hash_taking(pool, (*before, "wmv3")) != pool.settings_hash()  # any other
        assert _hash_taking(pool, before[1:]) != pool.settings_hash()


def _hash_taking(pool: Pool, codecs: tuple[str, ...]) -> str:
    """The settings hash ``pool`` would have taking ``codecs`` instead of its own."""
    applies = Applies(source_codecs=codecs, target_height=pool.applies.target_height)
    return pool.model_copy(update={"applies": applies}).settings_hash()


@pytest.mark.parametrize(
    ("names", "says"),
    [
        ("HEVC", "(HEVC: did you mean hevc?)"),
        ("av1", "(av1 is an optional pool: copy "),
        ("nope", "unknown pool(s) nope; known: 1080p, 720p, hevc, hls"),
    ],
)
def test_an_unknown_pool_name_gets_the_hint_it_needs(names: str, says: str) -> None:
    """`--pools av1` only said "unknown pool", though the pool ships beside the others."""
    with pytest.raises(ConfigError) as refused:
        choose_pools(load_farm(WORKERS_DIR), names)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)
