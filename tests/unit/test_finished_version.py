"""The one rule behind letting a source go (the raw policy and a fetch's cleanup)."""

from __future__ import annotations

import pytest

from hevcq.ledger import LedgerItem, State, finished_version
from hevcq.library.fetch import source_settled
from hevcq.objects import ObjectInfo
from hevcq.web.raw import verdict


def _item(state: State, etag: str = "e1") -> LedgerItem:
    return LedgerItem(key="TODO/a.mp4", pool="hevc", state=state, etag=etag)


@pytest.mark.parametrize(
    ("item", "etag", "finished"),
    [
        (None, "e1", False),
        (_item(State.DONE), "e1", True),
        (_item(State.SKIPPED), "e1", True),
        (_item(State.DONE, etag="e0"), "e1", False),  # an older version's job
        (_item(State.DONE), "", True),  # a result naming no version
        (_item(State.FAILED), "e1", False),  # may be redriven
        (_item(State.RUNNING), "e1", False),
        (_item(State.QUEUED), "e1", False),
        (_item(State.INTERRUPTED), "e1", False),
        (_item(State.SUPERSEDED), "e1", False),
    ],
)
def test_a_source_may_go_only_once_its_version_finished(
    item: LedgerItem | None, etag: str, finished: bool
) -> None:
    assert finished_version(item, etag) is finished
    # Both places that let a source go ask the same rule.
    assert source_settled(item, etag, None) is finished
    if etag:
        source = ObjectInfo("TODO/a.mp4", 10, etag)
        skipped = {"hevc": item} if item is None or item.state is not State.DONE else None
        if skipped is not None:
            assert verdict(source, skipped, []).settled is finished


def test_a_pool_that_failed_here_keeps_the_source_whatever_the_ledger_says() -> None:
    assert not source_settled(_item(State.DONE), "e1", "failed")
