"""Quotas and paging of the API's uploads, over the fakes: an owner's uploads in flight are
bounded, a page of videos costs reads for that page only, and the raw sweep reads only the
uploads still in flight."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ulid import ULID

from hevcq.aws.clients import Clients
from hevcq.aws.s3 import S3Store
from hevcq.farm.client import Farm
from hevcq.ledger import Claimed, JobKey, RuleLedger, State
from hevcq.topology import FarmRefs, Names, PoolRefs
from hevcq.web import uploads
from hevcq.web.app import CSRF_HEADER, WebConfig, create_app
from hevcq.web.auth import AuthConfig, Authenticator
from hevcq.web.videos import QuotaExceeded, UploadQuota, UploadSide, check_quota
from hevcq.web.view import FarmView
from tests.fakes import FakeStore, MemoryLedger

POOLS = ("1080p", "720p", "hevc")
ENDPOINT = "http://127.0.0.1:9"  # nothing listens: every read must go to the fakes
POST = {CSRF_HEADER: "1"}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeFarmView(FarmView):
    """A farm view whose bucket and ledger are the fakes."""

    fake_store: FakeStore
    fake_ledger: MemoryLedger

    @property
    def store(self) -> S3Store:
        return self.fake_store  # type: ignore[return-value]

    @property
    def ledger(self) -> RuleLedger:
        return self.fake_ledger


@functools.cache
def _clients() -> Clients:
    # Unused by the fakes; made once, as boto3 takes a while to build clients.
    return Clients.create(region="us-east-1", endpoint_url=ENDPOINT, retries=1)


def _view(raw: str = "keep", quota: UploadQuota | None = None) -> FakeFarmView:
    refs = FarmRefs(
        names=Names.build("hevcq", "hevcq-local", list(POOLS)),
        uploads_topic_arn="arn:aws:sns:us-east-1:123456789012:hevcq-uploads",
        events_topic_arn="arn:aws:sns:us-east-1:123456789012:hevcq-events",
        results_queue_url=f"{ENDPOINT}/1/hevcq-results",
        ledger_table="hevcq-ledger",
        pools={p: PoolRefs(f"{ENDPOINT}/1/{p}", f"{ENDPOINT}/1/{p}-dlq") for p in POOLS},
    )
    extra: dict[str, Any] = {"quota": quota} if quota else {}
    view = FakeFarmView(Farm(_clients(), refs, label="fake"), raw_policy=raw, **extra)
    view.fake_store, view.fake_ledger = FakeStore(), MemoryLedger()
    return view


LOCAL_TOKEN = "l" * 32


def _client(view: FarmView, max_bytes: int = 1000) -> TestClient:
    auth = Authenticator(AuthConfig(local_token=LOCAL_TOKEN))
    app = create_app(WebConfig(view, auth, upload_max_bytes=max_bytes))
    # The local server answers only its loopback names, and whoever shows the run's token.
    token = {"Authorization": f"Bearer {LOCAL_TOKEN}"}
    return TestClient(app, base_url="http://127.0.0.1", headers=token)


def _record(owner: str, n: int) -> uploads.UploadRecord:
    """The n-th upload of ``owner``, made n seconds after T0 (ids sort by time)."""
    at = T0 + timedelta(seconds=n)
    upload_id = str(ULID.from_datetime(at))
    return uploads.UploadRecord(
        id=upload_id,
        owner=owner,
        filename=f"v{n}.mov",
        key=f"TODO/{upload_id}/v{n}.mov",
        created_at=at,
        max_bytes=100,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )


def _store_records(store: FakeStore, owner: str, count: int, *, indexed: bool = False) -> list[str]:
    """Records as the API writes them (``indexed``), or as it did before the newest-first
    index: the record alone."""
    ids = []
    for n in range(count):
        r = _record(owner, n)
        store.put_bytes(uploads.record_key(owner, r.id), r.model_dump_json().encode(), "")
        if indexed:
            store.put_bytes(uploads.newest_key(owner, r.id), b"", "")
        ids.append(r.id)
    if indexed:
        store.put_bytes(uploads.newest_prefix(owner) + uploads.INDEXED_MARK, b"", "")
    return sorted(ids, reverse=True)


def _owner(c: TestClient) -> str:
    ticket = c.post("/api/uploads", json={"filename": "probe.mov"}, headers=POST).json()
    return str(ticket["fields"]["x-amz-meta-hevcq-owner"])


def _reads(view: FakeFarmView) -> int:
    return view.fake_store.reads() + view.fake_ledger.gets


@pytest.mark.parametrize("count", [200, 5000])
def test_a_page_of_videos_costs_reads_for_that_page_only(count: int) -> None:
    """A page listed every record key of its owner, so its cost grew with the owner's
    uploads; now it lists the page's own index keys, after the cursor."""
    view = _view()
    c = _client(view)
    owner = _owner(c)
    _store_records(view.fake_store, owner, count, indexed=True)
    _store_records(view.fake_store, "someone else", 30, indexed=True)
    before = _reads(view)
    listed = view.fake_store.list_page
    asked: list[int] = []

    def counted(prefix: str, *, start_after: str | None, max_keys: int) -> list[str]:
        asked.append(max_keys)
        return listed(prefix, start_after=start_after, max_keys=max_keys)

    view.fake_store.list_page = counted  # type: ignore[method-assign]
    r = c.get("/api/videos", params={"limit": 10})
    assert r.status_code == 200
    assert len(r.json()["videos"]) == 10
    # The index's mark and one listing of 11 keys, then per video on the page: its
    # record, its source, an item per pool.
    assert asked == [11]
    assert _reads(view) - before == 2 + 10 * (1 + 1 + len(POOLS))


def test_records_from_before_the_index_are_put_in_it_once() -> None:
    view = _view()
    c = _client(view)
    owner = _owner(c)  # an upload made with the index: its entry is written with it
    old = _store_records(view.fake_store, owner, 25)  # records alone, as before the index
    first = c.get("/api/videos", params={"limit": 30}).json()
    assert [v["id"] for v in first["videos"]][1:] == old
    assert first["videos"][0]["filename"] == "probe.mov"  # the newest
    assert view.fake_store.lists.count(uploads.owner_prefix(owner)) == 1
    c.get("/api/videos", params={"limit": 30})
    assert view.fake_store.lists.count(uploads.owner_prefix(owner)) == 1  # never again


def test_indexing_cut_short_goes_on_where_it_stopped() -> None:
    store = FakeStore()
    old = _store_records(store, "app", 10)
    for upload_id in old[:6]:  # a first run wrote these before its time ran out
        store.put_bytes(uploads.newest_key("app", upload_id), b"", "")
    put, written = store.put_bytes, []

    def counted(key: str, body: bytes, content_type: str) -> None:
        written.append(key)
        put(key, body, content_type)

    store.put_bytes = counted  # type: ignore[method-assign]
    records, after = uploads.page_of_records(store, "app", 20)
    assert [r.id for r in records] == old
    assert after is None
    mark = uploads.newest_prefix("app") + uploads.INDEXED_MARK
    assert written == [*(uploads.newest_key("app", i) for i in sorted(old[6:])), mark]


def test_pages_chain_through_the_cursor_newest_first_and_new_uploads_do_not_shift_them() -> None:
    view = _view()
    c = _client(view)
    owner = _owner(c)
    ids = _store_records(view.fake_store, owner, 45)
    seen: list[str] = []
    cursor = None
    for n in range(3):
        params: dict[str, Any] = {"limit": 20} | ({"cursor": cursor} if cursor else {})
        page = c.get("/api/videos", params=params).json()
        seen += [v["id"] for v in page["videos"] if v["filename"] != "probe.mov"]
        cursor = page["next_cursor"]
        if n == 0:  # an upload arriving between pages goes to the front, not into page 2
            c.post("/api/uploads", json={"filename": "new.mov"}, headers=POST)
    assert seen == ids
    assert cursor is None


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 201}, {"cursor": "../x"}, {"cursor": "0" * 27}]
)
def test_a_bad_limit_or_cursor_is_a_422_naming_it(params: dict[str, Any]) -> None:
    r = _client(_view()).get("/api/videos", params=params)
    assert r.status_code == 422
    assert next(iter(params)) in str(r.json()["detail"])


def _finish(ledger: MemoryLedger, key: str, etag: str, state: State = State.DONE) -> None:
    for pool in POOLS:
        claim = ledger.claim(JobKey(key, pool, etag, "h"), "w1", "m1", 60)
        assert isinstance(claim, Claimed)
        out = f"DONE/{pool}/{key}.mp4" if state is State.DONE else None
        ledger.finish(claim.lease, state, {"output_key": out})


def test_an_owner_gets_429_beyond_the_uploads_in_flight_until_the_farm_finishes_one() -> None:
    view = _view(quota=UploadQuota(uploads=3, bytes=10**9))
    c = _client(view)
    tickets = [
        c.post("/api/uploads", json={"filename": f"{i}.mov"}, headers=POST) for i in range(3)
    ]
    assert [t.status_code for t in tickets] == [201, 201, 201]
    over = c.post("/api/uploads", json={"filename": "x.mov"}, headers=POST)
    assert over.status_code == 429
    assert "HEVCQ_UPLOADS_IN_FLIGHT" in over.json()["detail"]
    assert "\n" not in over.json()["detail"]
    # The farm finishes the first upload in every pool: it stops counting.
    first = tickets[0].json()["key"]
    view.fake_store.add(first, etag="e1", size=500)
    _finish(view.fake_ledger, first, "e1", State.FAILED)
    assert c.post("/api/uploads", json={"filename": "y.mov"}, headers=POST).status_code == 201
    assert c.post("/api/uploads", json={"filename": "z.mov"}, headers=POST).status_code == 429


def test_bytes_in_flight_count_each_uploads_declared_size_or_the_largest_allowed() -> None:
    view = _view(quota=UploadQuota(uploads=100, bytes=2500))
    c = _client(view, max_bytes=1000)
    small = c.post("/api/uploads", json={"filename": "a.mov", "size": 600}, headers=POST)
    assert small.status_code == 201
    assert small.json()["max_bytes"] == 600  # the POST accepts no more than declared
    assert c.post("/api/uploads", json={"filename": "b.mov"}, headers=POST).status_code == 201
    over = c.post("/api/uploads", json={"filename": "c.mov"}, headers=POST)  # 1600 + 1000
    assert over.status_code == 429
    assert "HEVCQ_UPLOAD_BYTES_IN_FLIGHT" in over.json()["detail"]
    assert c.post("/api/uploads", json={"filename": "d.mov", "size": 900}, headers=POST).is_success
    too_big = c.post("/api/uploads", json={"filename": "e.mov", "size": 1001}, headers=POST)
    assert too_big.status_code == 422


def test_the_quota_is_per_owner_and_an_expired_ticket_never_used_stops_counting() -> None:
    store, ledger = FakeStore(), MemoryLedger()
    side = UploadSide(store, ledger, POOLS)
    quota = UploadQuota(uploads=2, bytes=10**9)
    for owner in ("alice", "bob"):
        for n in range(2):
            r = _record(owner, n)
            store.put_bytes(uploads.open_key(owner, r.id, 100), r.model_dump_json().encode(), "")
    with pytest.raises(QuotaExceeded, match="IN_FLIGHT"):
        check_quota(side, "alice", 100, quota)
    check_quota(side, "carol", 100, quota)  # another owner is not held back
    # The tickets of alice's uploads expire unused: nothing can arrive any more.
    _expire_all(store)
    check_quota(side, "alice", 100, quota)


def _expire_all(store: FakeStore) -> None:
    for key in [k for k in store.objects if k.startswith(uploads.OPEN_PREFIX)]:
        r = uploads.UploadRecord.model_validate_json(store.data[key])
        past = r.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(days=1)})
        store.data[key] = past.model_dump_json().encode()


def test_the_raw_sweep_reads_only_uploads_still_in_flight() -> None:
    view = _view(raw="delete-when-settled", quota=UploadQuota(uploads=100, bytes=10**9))
    c = _client(view)
    keys = [
        c.post("/api/uploads", json={"filename": f"{i}.mov"}, headers=POST).json()["key"]
        for i in range(30)
    ]
    store, ledger = view.fake_store, view.fake_ledger
    for i, key in enumerate(keys):
        store.add(key, etag=f"e{i}", size=100)
    for i, key in enumerate(keys[:28]):  # the farm finished 28 of them
        for pool in POOLS:
            store.add(f"DONE/{pool}/{key}.mp4")
        _finish(ledger, key, f"e{i}")
    assert view.sweep_raw() == 28
    assert [k for k in keys if k in store.objects] == keys[28:]  # finished raws went
    before = _reads(view)
    assert view.sweep_raw() == 0
    # One listing, then for each of the 2 still in flight: its marker, its source, its items.
    assert _reads(view) - before == 1 + 2 * (1 + 1 + len(POOLS))
