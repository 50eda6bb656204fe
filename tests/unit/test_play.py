"""Play links (hevcq.web.play): a signed grant plays exactly one committed output, and
nothing but that output's parts is reachable through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hevcq.bundle import MASTER, attempt_prefix
from hevcq.errors import PermanentError
from hevcq.ledger import Claimed, JobKey, LedgerItem, State
from hevcq.metadata import META_PARTS
from hevcq.objects import ObjectInfo
from hevcq.web.play import PlayPolicy, PlayRefused, serve, sign, verify
from hevcq.worker.fence import FencedWriter
from hevcq.worker.lease import LeaseKeeper
from tests.fakes import FakeStore, MemoryLedger
from tests.unit.test_bundle import KEY, MASTER_TEXT, META, SOURCE, ladder_folder

POLICY = PlayPolicy(key=b"k" * 32, segments="proxy")


def committed(tmp: Path, store: FakeStore, ledger: MemoryLedger, worker: str) -> ObjectInfo:
    """A ladder committed by ``worker`` and recorded as the job's output."""
    job = JobKey(SOURCE, "hls", "etag1", "settings")
    claim = ledger.claim(job, worker, f"m-{worker}", lease_s=60)
    assert isinstance(claim, Claimed)
    keeper = LeaseKeeper(ledger, claim.lease)
    master = FencedWriter(store, keeper, worker).put_bundle(ladder_folder(tmp, worker), KEY, META)
    keeper.finish(State.DONE, {"output_key": KEY, "output_etag": master.etag})
    return master


@pytest.fixture
def farm(tmp_path: Path) -> tuple[FakeStore, MemoryLedger, ObjectInfo, LedgerItem]:
    store, ledger = FakeStore(), MemoryLedger()
    master = committed(tmp_path, store, ledger, "w1")
    item = ledger.get(SOURCE, "hls")
    assert item is not None
    return store, ledger, master, item


def test_a_grant_plays_the_committed_ladder_by_its_relative_uris(farm) -> None:
    store, ledger, _, item = farm
    grant = verify(POLICY, sign(POLICY, item))
    got = serve(store, ledger, POLICY, grant, MASTER)
    assert got.body.decode() == MASTER_TEXT  # the attempt's own master: URIs relative
    assert got.content_type == "application/vnd.apple.mpegurl"
    playlist = serve(store, ledger, POLICY, grant, "v0/index.m3u8")
    assert b"seg_00000.m4s" in playlist.body
    segment = serve(store, ledger, POLICY, grant, "v0/seg_00001.m4s")
    assert (segment.body, segment.content_type) == (b"segment 1", "video/iso.segment")
    ranged = serve(store, ledger, POLICY, grant, "v0/seg_00001.m4s", byte_range="bytes=2-4")
    assert (ranged.status, ranged.body, ranged.content_range) == (206, b"gme", "bytes 2-4/9")


def test_on_a_cloud_farm_segments_come_from_the_bucket(farm) -> None:
    store, ledger, master, item = farm
    policy = PlayPolicy(key=POLICY.key, segments="presigned")
    grant = verify(policy, sign(policy, item))
    got = serve(store, ledger, policy, grant, "v0/seg_00001.m4s")
    prefix = attempt_prefix(KEY, master.metadata[META_PARTS])
    assert got.status == 307
    assert got.redirect == store.presign_get(prefix + "v0/seg_00001.m4s", policy.ttl_s)
    assert serve(store, ledger, policy, grant, MASTER).body.decode() == MASTER_TEXT


@pytest.mark.parametrize(
    "path", ["manifest.json", "../../hevc/x.mp4", "v0/../../../TODO/a.mp4", ".x", "nope.m4s"]
)
def test_nothing_outside_the_ladder_is_reachable(farm, path: str) -> None:
    store, ledger, _, item = farm
    grant = verify(POLICY, sign(POLICY, item))
    with pytest.raises(PlayRefused) as refused:
        serve(store, ledger, POLICY, grant, path)
    assert refused.value.status == 404


def test_a_forged_altered_or_expired_grant_is_refused(farm) -> None:
    _, _, _, item = farm
    grant = sign(POLICY, item, now=1000.0)
    body, mac = grant.split(".")
    for forged in (f"{body}.{mac[:-2]}xx", f"{body[:-3]}AAA.{mac}", "nothing", body, "." + mac):
        with pytest.raises(PlayRefused, match="not a play link"):
            verify(POLICY, forged, now=1000.0)
    with pytest.raises(PlayRefused, match="not a play link"):
        verify(PlayPolicy(key=b"another key" * 3), grant, now=1000.0)
    with pytest.raises(PlayRefused, match="expired"):
        verify(POLICY, grant, now=1000.0 + POLICY.ttl_s + 1)


def test_a_grant_ends_when_a_newer_output_is_committed(tmp_path: Path) -> None:
    store, ledger = FakeStore(), MemoryLedger()
    committed(tmp_path, store, ledger, "w1")
    old = verify(POLICY, sign(POLICY, ledger.items[(SOURCE, "hls")]))
    ledger2 = MemoryLedger()
    newer = committed(tmp_path, store, ledger2, "w2")  # a re-encode replaced the master
    ledger.items[(SOURCE, "hls")] = ledger2.items[(SOURCE, "hls")]
    with pytest.raises(PlayRefused) as refused:
        serve(store, ledger, POLICY, old, MASTER)
    assert refused.value.status == 410  # never the new ladder's parts under the old grant
    grant = verify(POLICY, sign(POLICY, ledger.items[(SOURCE, "hls")]))
    assert grant.etag == newer.etag
    assert serve(store, ledger, POLICY, grant, MASTER).body.decode() == MASTER_TEXT


def test_no_grant_for_an_output_not_done() -> None:
    item = LedgerItem(key=SOURCE, pool="hls", etag="e", state=State.RUNNING)
    with pytest.raises(PermanentError):
        sign(POLICY, item)
