from typing import Any

import pytest

from hevcq.ledger import LedgerItem, State
from hevcq.objects import ObjectInfo
from hevcq.web.raw import in_flight, settle_raw, verdict
from tests.fakes import FakeStore, MemoryLedger

SRC = ObjectInfo("TODO/u/a.mov", 100, "e1")


def _item(state: str, etag: str = "e1", out: str | None = None) -> LedgerItem:
    return LedgerItem(key=SRC.key, pool="hevc", state=State(state), etag=etag, output_key=out)


@pytest.mark.parametrize(
    ("items", "settled"),
    [
        ({"hevc": _item("done", out="DONE/hevc/a.mp4"), "720p": _item("skipped")}, True),
        ({"hevc": _item("done", out="DONE/hevc/a.mp4"), "720p": None}, False),
        ({"hevc": _item("done", out="DONE/hevc/a.mp4"), "720p": _item("running")}, False),
        ({"hevc": _item("done", out="DONE/hevc/a.mp4"), "720p": _item("failed")}, False),
        ({"hevc": _item("done", out="DONE/hevc/a.mp4"), "720p": _item("queued")}, False),
        ({"hevc": _item("done", out="DONE/hevc/a.mp4"), "720p": _item("interrupted")}, False),
        ({"hevc": _item("done", out="DONE/hevc/missing.mp4"), "720p": _item("skipped")}, False),
        ({"hevc": _item("done", "e0", "DONE/hevc/a.mp4"), "720p": _item("skipped")}, False),
    ],
    ids=[
        "settled",
        "no-item",
        "running",
        "failed",
        "queued",
        "interrupted",
        "no-output",
        "older-version",
    ],
)
def test_verdict(items: dict[str, Any], settled: bool) -> None:
    assert verdict(SRC, items, ["DONE/hevc/a.mp4"]).settled is settled


def test_the_source_goes_only_after_the_last_pool_settles() -> None:
    store, ledger = FakeStore(), MemoryLedger()
    store.add(SRC.key, etag="e1")
    store.add("DONE/hevc/a.mp4")
    ledger.items[(SRC.key, "hevc")] = _item("done", out="DONE/hevc/a.mp4")
    ledger.items[(SRC.key, "720p")] = _item("running")
    assert not settle_raw(store, ledger, SRC.key, ["hevc", "720p"]).settled
    assert store.head(SRC.key) is not None
    ledger.items[(SRC.key, "720p")] = _item("skipped")
    assert settle_raw(store, ledger, SRC.key, ["hevc", "720p"]).settled
    assert store.head(SRC.key) is None
    assert store.head("DONE/hevc/a.mp4") is not None


@pytest.mark.parametrize(
    ("source", "items", "expired", "flying"),
    [
        (SRC, {"hevc": _item("done"), "720p": _item("skipped")}, False, False),
        (SRC, {"hevc": _item("done"), "720p": _item("failed")}, False, False),
        (SRC, {"hevc": _item("done"), "720p": _item("running")}, True, True),
        (SRC, {"hevc": _item("done"), "720p": None}, True, True),
        (SRC, {"hevc": _item("done", "e0"), "720p": _item("skipped")}, True, True),
        (None, {"hevc": None, "720p": None}, False, True),
        (None, {"hevc": None, "720p": None}, True, False),
        (None, {"hevc": _item("done"), "720p": _item("skipped")}, False, False),
    ],
    ids=[
        "finished",
        "failed-ends-it",
        "running",
        "no-job-yet",
        "new-version",
        "not-uploaded-yet",
        "never-uploaded",
        "raw-deleted",
    ],
)
def test_in_flight(
    source: ObjectInfo | None, items: dict[str, Any], expired: bool, flying: bool
) -> None:
    assert in_flight(source, items, expired) is flying
