"""Which pools a run uses, and how an upload says so: the workers of a pool it did not
choose skip it at once, without a download and without waiting on each other."""

from __future__ import annotations

import pytest

from hevcq.errors import ConfigError
from hevcq.library.scan import FileEntry
from hevcq.library.upload import upload_metadata
from hevcq.media.model import Skip
from hevcq.metadata import (
    META_CLIENT_SKIPS,
    META_POOLS,
    chosen_pools_metadata,
    client_chose,
    client_settled,
)
from hevcq.pools import Pool, choose_pools
from hevcq.worker.precheck import NOT_CHOSEN, confirmed_skip
from tests.fakes import FakeStore


def _pool(name: str, *, default: bool = True) -> Pool:
    return Pool.model_validate(
        {"name": name, "applies": {"source_codecs": ["h264"]}, "default": default}
    )


FARM = {"hevc": _pool("hevc"), "720p": _pool("720p"), "av1": _pool("av1", default=False)}


def test_without_names_a_run_uses_the_pools_on_by_default() -> None:
    assert list(choose_pools(FARM, None)) == ["720p", "hevc"]


def test_named_pools_are_used_whatever_their_default() -> None:
    assert list(choose_pools(FARM, "av1, hevc")) == ["av1", "hevc"]
    assert list(choose_pools(FARM, "av1,av1")) == ["av1"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ("hevc,nope", "--pools: unknown pool(s) nope; known: 720p, av1, hevc"),
        (",", "--pools: name at least one pool"),
    ],
)
def test_a_bad_choice_is_one_line(names: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        choose_pools(FARM, names)
    assert str(err.value) == message


def test_a_farm_with_no_default_pool_asks_for_a_choice() -> None:
    with pytest.raises(ConfigError, match="no pool is on by default"):
        choose_pools({"av1": FARM["av1"]}, None)


def test_an_upload_naming_pools_settles_every_other_pool() -> None:
    meta = chosen_pools_metadata(["hevc", "av1"])
    assert meta == {META_POOLS: "av1,hevc"}
    assert client_chose(meta, "hevc")
    assert not client_chose(meta, "720p")
    assert client_settled(meta, "720p")
    assert not client_settled(meta, "hevc")
    # An upload naming no pools (an older client) chose them all.
    assert client_chose({}, "720p")
    assert not client_settled({}, "720p")
    assert client_settled({META_CLIENT_SKIPS: "720p"}, "720p")


def test_the_worker_of_a_pool_not_chosen_skips_without_reading_the_file() -> None:
    store = FakeStore()
    store.add("TODO/a.mp4", etag="e1", data=bytes(1000), meta=chosen_pools_metadata(["hevc"]))
    skip = confirmed_skip(store, "TODO/a.mp4", "e1", FARM["720p"])
    assert skip is not None
    assert skip.reason == NOT_CHOSEN
    assert confirmed_skip(store, "TODO/a.mp4", "e1", FARM["hevc"]) is None
    assert store.ranges == []  # decided from the metadata alone: nothing read


def test_an_upload_names_the_pools_its_run_chose() -> None:
    entry = FileEntry(
        rel="a.mp4",
        size=10,
        duration_s=1.0,
        fingerprint="fp",
        status="send",
        decisions={"av1": Skip("already AV1")},
    )
    meta = upload_metadata(entry, 1, "lib")
    assert meta[META_POOLS] == "av1"
    assert meta[META_CLIENT_SKIPS] == "av1"
