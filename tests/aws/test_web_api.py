"""The API over a moto farm: auth, owners, cross-site POSTs, redrive and the raw policy."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from hevcq.aws.ledger import DynamoLedger
from hevcq.aws.s3 import S3Store
from hevcq.aws.sqs import ATTR_CLASS, ATTR_REASON
from hevcq.bundle import POSTER, attempt_prefix
from hevcq.farm.client import Farm
from hevcq.ledger import Claimed, JobKey, State
from hevcq.library.results import announced_objects
from hevcq.metadata import META_PARTS, META_SOURCE_ETAG, META_SOURCE_KEY
from hevcq.settings import Settings, load_settings
from hevcq.web.app import CSRF_HEADER, WebConfig, create_app
from hevcq.web.auth import AuthConfig, Authenticator, jwt_owner
from hevcq.web.server import UNREACHABLE_REASON, locate, web_config
from hevcq.web.view import FarmView
from hevcq.worker.fence import FencedWriter
from hevcq.worker.lease import LeaseKeeper
from tests.apiroutes import credentialed_routes
from tests.aws.conftest import MotoFarm
from tests.jwtkit import AUDIENCE, ISSUER, Issuer
from tests.unit.test_bundle import MASTER_TEXT, ladder_folder
from tests.unit.test_events import s3_event

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[Issuer]:
    i = Issuer(tmp_path)
    yield i
    i.close()


# The embedded farm's server on loopback, and its run's token.
LOCAL = AuthConfig(local_token="l" * 32)


def _client(farm: FarmView | None, auth: AuthConfig, *, signed_in: bool = True) -> TestClient:
    """A client of the app; of the local server, one that shows the run's token unless
    ``signed_in`` is false."""
    app = create_app(WebConfig(farm, Authenticator(auth), upload_max_bytes=1000))
    token = auth.local_token if signed_in else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # The local server answers its loopback names only.
    return TestClient(app, base_url="http://127.0.0.1", headers=headers)


def _oidc(issuer: Issuer) -> AuthConfig:
    return AuthConfig(
        token="op-token",
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_url=issuer.jwks_url,
    )


def _view(m: MotoFarm, raw: str = "keep") -> FarmView:
    return FarmView(Farm(m.clients, m.refs, label="test"), raw_policy=raw)


def test_without_a_farm_the_server_says_so() -> None:
    c = _client(None, LOCAL)
    assert c.get("/api/health").json()["status"] == "no farm"
    r = c.get("/api/pools")
    assert r.status_code == 503
    assert "no farm" in r.json()["detail"]
    assert c.get("/").status_code == 200


BAD_JWTS: dict[str, dict[str, Any]] = {
    "expired": {"exp": 1_600_000_000},
    "other-issuer": {"iss": "https://someone-else.test"},
    "other-audience": {"aud": "another-app"},
}


@pytest.mark.parametrize(
    "header", [None, "Bearer nope", "Basic b3A6dG9rZW4=", *(f"jwt:{k}" for k in BAD_JWTS)]
)
def test_bad_credentials_get_a_bare_401(
    moto_farm: MotoFarm, issuer: Issuer, header: str | None
) -> None:
    c = _client(_view(moto_farm), _oidc(issuer))
    if header and header.startswith("jwt:"):
        header = f"Bearer {issuer.token('alice', **BAD_JWTS[header[4:]])}"
    good = {"Authorization": f"Bearer {issuer.token('alice')}"}
    ticket = c.post("/api/uploads", json={"filename": "a.mov"}, headers=good).json()
    for path in ("/api/pools", "/api/videos", f"/api/videos/{ticket['id']}"):
        r = c.get(path, headers={"Authorization": header} if header else {})
        assert r.status_code == 401
        assert r.json() == {"detail": "unauthorized"}
        assert r.headers["www-authenticate"] == "Bearer"
    assert c.get(f"/api/videos/{ticket['id']}", headers=good).status_code == 200
    assert c.get("/api/pools", headers={"Authorization": "Bearer op-token"}).status_code == 200


def test_another_owners_video_is_not_found(moto_farm: MotoFarm, issuer: Issuer) -> None:
    c = _client(_view(moto_farm), _oidc(issuer))
    alice = {"Authorization": f"Bearer {issuer.token('alice')}"}
    bob = {"Authorization": f"Bearer {issuer.token('bob')}"}
    ticket = c.post("/api/uploads", json={"filename": "clip.mov"}, headers=alice).json()
    assert ticket["key"] == f"TODO/{ticket['id']}/clip.mov"
    assert ticket["fields"]["x-amz-meta-hevcq-owner"] == jwt_owner(ISSUER, "alice")
    assert c.get(f"/api/videos/{ticket['id']}", headers=alice).status_code == 200
    hidden = c.get(f"/api/videos/{ticket['id']}", headers=bob)
    assert hidden.status_code == 404
    assert hidden.json() == {"detail": "not found"}
    assert c.get("/api/videos", headers=bob).json() == {"videos": [], "next_cursor": None}
    assert [v["id"] for v in c.get("/api/videos", headers=alice).json()["videos"]] == [ticket["id"]]
    assert c.get("/api/pools", headers=alice).status_code == 403  # apps do not operate


def test_cross_site_posts_are_refused(moto_farm: MotoFarm) -> None:
    c = _client(_view(moto_farm), LOCAL, signed_in=False)
    token = {"Authorization": f"Bearer {LOCAL.local_token}"}
    # A page of another site has no token: nothing it sends is taken.
    assert c.post("/api/uploads", json={"filename": "a.mov"}).status_code == 401
    page = {CSRF_HEADER: "1", "Origin": "http://evil.test"}
    assert c.post("/api/uploads", json={"filename": "a.mov"}, headers=page).status_code == 401
    # Even with it, a POST from another origin is refused.
    evil = {**token, "Origin": "http://evil.test"}
    assert c.post("/api/uploads", json={"filename": "a.mov"}, headers=evil).status_code == 403
    ok = c.post("/api/uploads", json={"filename": "a.mov"}, headers={**token, CSRF_HEADER: "1"})
    assert ok.status_code == 201


@pytest.mark.parametrize(("method", "path"), credentialed_routes())
@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer nope", f"Bearer {'l' * 31}"])
def test_another_user_of_the_machine_gets_nothing_from_the_local_server(
    moto_farm: MotoFarm, method: str, path: str, header: str | None
) -> None:
    """Any user of the machine can connect to 127.0.0.1: the embedded farm's server was
    open to all of them, who read the library's names and took play links to its videos.
    It now answers only who shows the run's token."""
    c = _client(_view(moto_farm), LOCAL, signed_in=False)
    headers = {CSRF_HEADER: "1", **({"Authorization": header} if header else {})}
    body = {"filename": "a.mov"} if path == "/api/uploads" else {"pool": "hevc"}
    r = c.request(method, path, headers=headers, json=body if method == "POST" else None)
    assert (r.status_code, r.json()) == (401, {"detail": "unauthorized"})
    assert c.get("/api/health").json()["status"] == "ok"  # names nothing, needs nothing


def _dead_letter(m: MotoFarm, pool: str, key: str, cls: str) -> str:
    body = json.dumps(s3_event(key, bucket=m.refs.bucket))
    attrs: dict[str, MessageAttributeValueTypeDef] = {
        ATTR_CLASS: {"DataType": "String", "StringValue": cls},
        ATTR_REASON: {"DataType": "String", "StringValue": f"{key} broke"},
    }
    sent = m.clients.sqs.send_message(
        QueueUrl=m.refs.pools[pool].dlq_url, MessageBody=body, MessageAttributes=attrs
    )
    return sent["MessageId"]


def test_one_dead_letter_is_redriven(moto_farm: MotoFarm) -> None:
    c = _client(_view(moto_farm), LOCAL)
    one = _dead_letter(moto_farm, "hevc", "TODO/a.mov", "permanent")
    _dead_letter(moto_farm, "hevc", "TODO/b.mov", "permanent")
    listed = c.get("/api/deadletters").json()
    assert {d["message_id"] for d in listed} >= {one}
    assert {tuple(d["keys"]) for d in listed} == {("TODO/a.mov",), ("TODO/b.mov",)}
    assert listed[0]["reason"].endswith("broke")
    r = c.post("/api/redrive", json={"pool": "hevc", "message_id": one}, headers={CSRF_HEADER: "1"})
    assert r.json() == {"pool": "hevc", "moved": 1}
    left = c.get("/api/deadletters").json()
    assert [d["keys"] for d in left] == [["TODO/b.mov"]]


def test_a_class_of_dead_letters_is_redriven_and_the_others_stay(moto_farm: MotoFarm) -> None:
    c = _client(_view(moto_farm), LOCAL)
    _dead_letter(moto_farm, "hevc", "TODO/a.mov", "permanent")
    _dead_letter(moto_farm, "hevc", "TODO/b.mov", "permanent")
    _dead_letter(moto_farm, "hevc", "TODO/c.mov", "stalled")
    body = {"pool": "hevc", "failure_class": "permanent"}
    r = c.post("/api/redrive", json=body, headers={CSRF_HEADER: "1"})
    assert r.json() == {"pool": "hevc", "moved": 2}
    left = c.get("/api/deadletters").json()
    assert [(d["keys"], d["failure_class"]) for d in left] == [(["TODO/c.mov"], "stalled")]
    sqs, queue = moto_farm.clients.sqs, moto_farm.refs.pools["hevc"].queue_url
    back = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    # The bucket's own test event is there too; the moved letters are the two permanent ones.
    keys = sorted(o.key for m in back for o in announced_objects(m["Body"]))
    assert keys == ["TODO/a.mov", "TODO/b.mov"]


def _settle(
    ledger: DynamoLedger, key: str, etag: str, pool: str, *, state: State, out: str | None
) -> None:
    job = JobKey(key, pool, etag, "h")
    claim = ledger.claim(job, "w1", "m1", 60)
    assert isinstance(claim, Claimed)
    ledger.finish(claim.lease, state, {"output_key": out})


def test_delete_when_settled_waits_for_the_last_pool(moto_farm: MotoFarm) -> None:
    m = moto_farm
    c = _client(_view(m, raw="delete-when-settled"), LOCAL)
    ticket = c.post(
        "/api/uploads", json={"filename": "clip.mov"}, headers={CSRF_HEADER: "1"}
    ).json()
    key = ticket["key"]
    etag = m.clients.s3.put_object(Bucket=m.refs.bucket, Key=key, Body=b"x" * 100)["ETag"].strip(
        '"'
    )
    ledger = DynamoLedger(m.clients.dynamodb, m.refs.ledger_table)
    pools = sorted(m.refs.pools)
    for pool in pools[:-1]:
        out = f"DONE/{pool}/{ticket['id']}/clip.mp4"
        m.clients.s3.put_object(Bucket=m.refs.bucket, Key=out, Body=b"y")
        _settle(ledger, key, etag, pool, state=State.DONE, out=out)
        v = c.get(f"/api/videos/{ticket['id']}").json()
        assert v["state"] == "processing"
        assert not v["raw_deleted"]
        assert m.clients.s3.head_object(Bucket=m.refs.bucket, Key=key)["ContentLength"] == 100
    _settle(ledger, key, etag, pools[-1], state=State.SKIPPED, out=None)
    v = c.get(f"/api/videos/{ticket['id']}").json()
    assert v["state"] == "done"
    assert v["raw_deleted"]
    listed = m.clients.s3.list_objects_v2(Bucket=m.refs.bucket, Prefix="TODO/").get("Contents", [])
    assert listed == []
    links = [p["download_url"] for p in v["pools"] if p["state"] == "done"]
    assert len(links) == len(pools) - 1


def test_a_failed_pool_keeps_the_raw(moto_farm: MotoFarm) -> None:
    m = moto_farm
    c = _client(_view(m, raw="delete-when-settled"), LOCAL)
    ticket = c.post("/api/uploads", json={"filename": "x.mov"}, headers={CSRF_HEADER: "1"}).json()
    etag = m.clients.s3.put_object(Bucket=m.refs.bucket, Key=ticket["key"], Body=b"x")[
        "ETag"
    ].strip('"')
    ledger = DynamoLedger(m.clients.dynamodb, m.refs.ledger_table)
    for pool in m.refs.pools:
        _settle(ledger, ticket["key"], etag, pool, state=State.FAILED, out=None)
    v = c.get(f"/api/videos/{ticket['id']}").json()
    assert v["state"] == "failed"
    assert not v["raw_deleted"]
    assert m.clients.s3.head_object(Bucket=m.refs.bucket, Key=ticket["key"])


def test_status_is_the_same_document_as_the_cli(moto_farm: MotoFarm) -> None:
    view = _view(moto_farm)
    c = _client(view, LOCAL)
    got = c.get("/api/status").json()
    assert [p["pool"] for p in got["pools"]] == sorted(moto_farm.refs.pools)
    assert set(got) == {"pools", "running", "totals"}


def test_a_job_page_shows_its_objects_steps_attempts_and_the_versions_before_it(
    moto_farm: MotoFarm,
) -> None:
    m = moto_farm
    ledger = DynamoLedger(m.clients.dynamodb, m.refs.ledger_table)
    key, pool = "TODO/trip.mov", sorted(m.refs.pools)[0]
    out = f"DONE/{pool}/trip.mp4"
    s3, bucket = m.clients.s3, m.refs.bucket
    s3.put_object(Bucket=bucket, Key=key, Body=b"s" * 300, Metadata={"camera": "phone"})
    s3.put_object(Bucket=bucket, Key=out, Body=b"o" * 120)
    first = ledger.claim(JobKey(key, pool, "v1", "h", sequencer="01"), "w1", "m1", 60)
    assert isinstance(first, Claimed)
    ledger.finish(first.lease, State.DONE, {"output_etag": "out-1", "encode_s": 30.0})
    v2 = JobKey(key, pool, "v2", "h", sequencer="02")
    tried = ledger.claim(v2, "w1", "m2", 60)
    assert isinstance(tried, Claimed)
    ledger.release(tried.lease, State.QUEUED, {}, failed=True)  # one failed try
    second = ledger.claim(v2, "w2", "m2", 60)
    assert isinstance(second, Claimed)
    steps = {"download_s": 1.5, "probe_s": 0.25, "encode_s": 12.0, "verify_s": 0.5}
    done = {**steps, "upload_s": 0.75, "output_etag": "out-2", "output_key": out}
    ledger.finish(second.lease, State.DONE, done)
    c = _client(_view(m), LOCAL)
    job_id = JobKey(key, pool, "v2", "h").job_id
    d = c.get(f"/api/jobs/{job_id}").json()
    assert (d["job"]["key"], d["job"]["state"], d["job"]["attempts"]) == (key, "done", 1)
    assert d["timings_s"] == {**steps, "upload_s": 0.75}
    assert (d["source"]["key"], d["source"]["size"]) == (key, 300)
    assert d["source"]["metadata"] == {"camera": "phone"}
    assert (d["output"]["key"], d["output"]["size"]) == (out, 120)
    assert [(v["etag"], v["state"]) for v in d["versions"]] == [("v2", "done"), ("v1", "done")]
    assert d["versions"][1]["output_etag"] == "out-1"
    assert c.get("/api/jobs/no-such-job").status_code == 404


def _configure(m: MotoFarm, monkeypatch: pytest.MonkeyPatch, prefix: str) -> Settings:
    refs = m.refs
    env = {
        "HEVCQ_BUCKET": refs.bucket,
        "HEVCQ_NAME_PREFIX": prefix,
        "HEVCQ_REGION": "us-east-1",
        "HEVCQ_LEDGER_TABLE": refs.ledger_table,
        "HEVCQ_API_TOKEN": "o" * 40,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(os.environ)


def test_serve_finds_the_configured_farm_or_serves_the_reason_it_cannot(
    moto_farm: MotoFarm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _configure(moto_farm, monkeypatch, moto_farm.refs.names.prefix)
    found = locate(settings, moto_farm.pools, tmp_path)
    assert (found.embedded, found.reason) == (False, "")
    assert found.farm is not None
    assert found.farm.farm.refs == moto_farm.refs
    # Its queues are not there: no exception, a server with no farm that says why.
    settings = _configure(moto_farm, monkeypatch, "missing")
    lost = locate(settings, moto_farm.pools, tmp_path)
    assert (lost.farm, lost.embedded) == (None, False)
    assert lost.reason.startswith("configured farm unreachable: queue 'missing-")
    c = TestClient(create_app(web_config(settings, lost, "127.0.0.1")))
    assert c.get("/api/health").json() == {"status": "no farm", "farm": None, "detail": lost.reason}
    # Served beyond this machine, health (open to anyone) does not name the queues.
    public = TestClient(create_app(web_config(settings, lost, "0.0.0.0")))  # noqa: S104
    assert public.get("/api/health").json()["detail"] == UNREACHABLE_REASON
    assert c.get("/").status_code == 200


def test_an_upload_names_its_pools_and_is_settled_by_those_alone(moto_farm: MotoFarm) -> None:
    m = moto_farm
    c = _client(_view(m, raw="delete-when-settled"), LOCAL)
    chosen = sorted(m.refs.pools)[0]
    ticket = c.post(
        "/api/uploads", json={"filename": "clip.mov", "pools": [chosen]}, headers={CSRF_HEADER: "1"}
    ).json()
    # Signed into the POST: every other pool's workers skip the upload at once.
    assert ticket["fields"]["x-amz-meta-hevcq-pools"] == chosen
    key = ticket["key"]
    etag = m.clients.s3.put_object(Bucket=m.refs.bucket, Key=key, Body=b"x")["ETag"].strip('"')
    v = c.get(f"/api/videos/{ticket['id']}").json()
    assert [p["pool"] for p in v["pools"]] == [chosen]
    ledger = DynamoLedger(m.clients.dynamodb, m.refs.ledger_table)
    out = f"DONE/{chosen}/{ticket['id']}/clip.mp4"
    m.clients.s3.put_object(Bucket=m.refs.bucket, Key=out, Body=b"y")
    _settle(ledger, key, etag, chosen, state=State.DONE, out=out)
    v = c.get(f"/api/videos/{ticket['id']}").json()
    assert (v["state"], v["raw_deleted"]) == ("done", True)  # no other pool is waited for


def test_an_unknown_pool_is_refused_and_the_operator_default_applies(moto_farm: MotoFarm) -> None:
    m = moto_farm
    first, *_ = sorted(m.refs.pools)
    view = FarmView(Farm(m.clients, m.refs, label="test"), api_pools=(first,))
    c = _client(view, LOCAL)
    bad = c.post(
        "/api/uploads", json={"filename": "a.mov", "pools": ["nope"]}, headers={CSRF_HEADER: "1"}
    )
    assert bad.status_code == 422
    assert "unknown pool(s) nope" in bad.json()["detail"]
    ticket = c.post("/api/uploads", json={"filename": "a.mov"}, headers={CSRF_HEADER: "1"}).json()
    assert ticket["fields"]["x-amz-meta-hevcq-pools"] == first


@dataclass(frozen=True)
class _Claimed:
    """An upload made through the API and claimed by worker ``w1`` for one pool."""

    ticket: dict[str, Any]
    key: str
    ledger: DynamoLedger
    keeper: LeaseKeeper
    store: S3Store
    meta: dict[str, str]


def _claimed_upload(m: MotoFarm, pool: str) -> tuple[_Claimed, TestClient]:
    """An upload of ``clip.mov`` for ``pool`` through the API's client, claimed by hand."""
    c = _client(_view(m), LOCAL)
    ticket = c.post(
        "/api/uploads", json={"filename": "clip.mov", "pools": [pool]}, headers={CSRF_HEADER: "1"}
    ).json()
    key = ticket["key"]
    etag = m.clients.s3.put_object(Bucket=m.refs.bucket, Key=key, Body=b"x")["ETag"].strip('"')
    ledger = DynamoLedger(m.clients.dynamodb, m.refs.ledger_table)
    claim = ledger.claim(JobKey(key, pool, etag, "h"), "w1", "m1", 60)
    assert isinstance(claim, Claimed)
    meta = {META_SOURCE_KEY: key, META_SOURCE_ETAG: etag}
    store = S3Store(m.clients.s3, m.refs.bucket)
    return _Claimed(ticket, key, ledger, LeaseKeeper(ledger, claim.lease), store, meta), c


def test_a_file_pool_that_stores_posters_gives_its_committed_poster(
    moto_farm: MotoFarm, tmp_path: Path
) -> None:
    m = moto_farm
    job, c = _claimed_upload(m, "hevc")
    out = f"DONE/hevc/{job.ticket['id']}/clip.mp4"
    encoded, parts = tmp_path / "clip.mp4", tmp_path / "parts"
    encoded.write_bytes(b"mp4")
    parts.mkdir()
    (parts / POSTER).write_bytes(b"\xff\xd8jpeg")
    info = FencedWriter(job.store, job.keeper, "w1").put_with_parts(encoded, parts, out, job.meta)
    job.keeper.finish(State.DONE, {"output_key": out, "output_etag": info.etag})

    pool = c.get(f"/api/videos/{job.ticket['id']}").json()["pools"][0]
    poster_key = f"{attempt_prefix(out, info.metadata[META_PARTS])}{POSTER}"
    assert pool["download_url"] is not None
    assert f"/{poster_key}?" in pool["poster_url"]
    assert "Signature" in pool["poster_url"]
    head = m.clients.s3.head_object(Bucket=m.refs.bucket, Key=poster_key)
    assert head["ContentType"] == "image/jpeg"
    # A poster named by metadata that is not an attempt token is never turned into a key.
    m.clients.s3.copy_object(
        Bucket=m.refs.bucket,
        Key=out,
        CopySource={"Bucket": m.refs.bucket, "Key": out},
        Metadata={**job.meta, META_PARTS: "../../hls/x"},
        MetadataDirective="REPLACE",
    )
    assert c.get(f"/api/videos/{job.ticket['id']}").json()["pools"][0]["poster_url"] is None


def test_a_done_ladder_has_a_play_link_that_plays_it_whole_and_nothing_else(
    moto_farm: MotoFarm, tmp_path: Path
) -> None:
    m = moto_farm
    job, c = _claimed_upload(m, "hls")
    out = f"DONE/hls/{job.ticket['id']}/clip.m3u8"
    master = FencedWriter(job.store, job.keeper, "w1").put_bundle(
        ladder_folder(tmp_path), out, job.meta
    )
    job.keeper.finish(State.DONE, {"output_key": out, "output_etag": master.etag})

    pool = c.get(f"/api/videos/{job.ticket['id']}").json()["pools"][0]
    assert pool["download_url"] is None  # many objects: no one file to download
    play, poster = pool["play_url"], pool["poster_url"]
    assert play.startswith("http://127.0.0.1/play/")
    assert play.endswith("/master.m3u8")
    got = c.get(play)
    assert got.status_code == 200
    assert got.text == MASTER_TEXT
    assert got.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert got.headers["access-control-allow-origin"] == "*"  # an app's own page plays it
    assert c.get(play.replace("master.m3u8", "v0/index.m3u8")).status_code == 200
    assert c.get(poster).headers["content-type"] == "image/jpeg"
    # On a cloud farm a segment comes from the bucket, by a presigned GET.
    seg = c.get(play.replace("master.m3u8", "v0/seg_00001.m4s"), follow_redirects=False)
    assert seg.status_code == 307
    assert "seg_00001.m4s" in seg.headers["location"]
    assert "Signature" in seg.headers["location"]
    assert c.get(play.replace("master.m3u8", "manifest.json")).status_code == 404
    forged = play.replace("/play/", "/play/x")
    assert c.get(forged).status_code == 403
    # The operator's job page plays it too.
    item = job.ledger.get(job.key, "hls")
    assert item is not None
    detail = c.get(f"/api/jobs/{item.job_id}").json()
    assert detail["play_url"].startswith("/play/")


def test_pages_of_videos_chain_newest_first_over_s3(moto_farm: MotoFarm) -> None:
    """The newest-first index as S3 lists it: flipped ids, StartAfter, MaxKeys."""
    c = _client(_view(moto_farm), LOCAL)
    made = [
        c.post("/api/uploads", json={"filename": f"v{n}.mov"}, headers={CSRF_HEADER: "1"}).json()[
            "id"
        ]
        for n in range(5)
    ]
    seen, cursor = [], None
    for _ in range(3):
        page = c.get("/api/videos", params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
        seen += [v["id"] for v in page.json()["videos"]]
        cursor = page.json()["next_cursor"]
    assert seen == made[::-1]
    assert cursor is None
