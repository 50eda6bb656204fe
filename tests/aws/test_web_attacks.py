"""Attacks on the API over a moto farm: file names that lie, and owners that collide."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hevcq.farm.client import Farm
from hevcq.web.app import CSRF_HEADER, WebConfig, create_app
from hevcq.web.auth import AuthConfig, Authenticator
from hevcq.web.view import FarmView
from tests.aws.conftest import MotoFarm
from tests.jwtkit import AUDIENCE, ISSUER, Issuer

TOKEN = "o" * 40
OPERATOR = {"Authorization": f"Bearer {TOKEN}", CSRF_HEADER: "1"}


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[Issuer]:
    i = Issuer(tmp_path)
    yield i
    i.close()


def _client(m: MotoFarm, issuer: Issuer | None = None) -> TestClient:
    oidc = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": issuer.jwks_url} if issuer else {}
    auth = Authenticator(AuthConfig(token=TOKEN, **oidc))
    view = FarmView(Farm(m.clients, m.refs, label="test"))
    return TestClient(create_app(WebConfig(view, auth, upload_max_bytes=1000)))


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("invoice\u202egpj.exe", "bidi"),  # shows as "invoiceexe.jpg"
        ("a\u2066b.mov", "bidi"),
        ("a\u200fb.mov", "bidi"),
        ("a\x85b.mov", "control"),
        ("a\x9bb.mov", "control"),
        ("a\tb.mov", "control"),
        ("a\u2028b.mov", "control"),
        (" ", "blank"),
        ("\u3000\u00a0", "blank"),
        ("dir/ ", "blank"),
        ("invoice\u200b.mp4", "invisible"),  # shows as "invoice.mp4"
        ("\ufeffclip.mov", "invisible"),
        ("clip\u3164.mov", "invisible"),  # a Hangul filler: a letter that draws nothing
        ("a\u00adb.mov", "invisible"),
        ("${filename}", "placeholder"),  # S3 would put the sender's own name here
        ("clip${filename}", "placeholder"),
        ("dir/${filename}", "placeholder"),
    ],
)
def test_a_file_name_that_hides_or_lies_is_refused_naming_the_rule(
    moto_farm: MotoFarm, name: str, rule: str
) -> None:
    c = _client(moto_farm)
    r = c.post("/api/uploads", json={"filename": name}, headers=OPERATOR)
    assert r.status_code == 422, r.text
    assert rule in r.json()["detail"]
    assert moto_farm.clients.s3.list_objects_v2(Bucket=moto_farm.refs.bucket).get("KeyCount") == 0


@pytest.mark.parametrize(
    "name",
    [
        "clip.mov",
        "Ünïcødé 視頻 👩‍👩‍👧.mp4",
        "a b.mkv",
        "$5 {draft}.mp4",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645.mov",
    ],
)
def test_ordinary_names_still_upload(moto_farm: MotoFarm, name: str) -> None:
    """Emoji sequences and Persian keep their joiners; a dollar or a brace alone is a name."""
    r = _client(moto_farm).post("/api/uploads", json={"filename": name}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    ticket = r.json()
    policy = json.loads(base64.b64decode(ticket["fields"]["policy"]))
    # The ticket writes its own key and no other (no "starts-with" on the key).
    assert {"key": ticket["fields"]["key"]} in policy["conditions"]
    assert not [c for c in policy["conditions"] if isinstance(c, list) and c[1] == "$key"]
    assert ticket["fields"]["key"].endswith("/" + name)


def test_a_store_refuses_to_presign_a_post_for_a_placeholder_key(moto_farm: MotoFarm) -> None:
    """Below the name rules: a key boto3 would sign as a prefix is never presigned."""
    store = Farm(moto_farm.clients, moto_farm.refs, label="test").store
    with pytest.raises(ValueError, match="placeholder"):
        store.presign_post("TODO/01/${filename}", {}, [], 60)


def test_a_jwt_named_like_the_operator_sees_none_of_its_uploads(
    moto_farm: MotoFarm, issuer: Issuer
) -> None:
    c = _client(moto_farm, issuer)
    mine = c.post("/api/uploads", json={"filename": "a.mov"}, headers=OPERATOR).json()
    for sub in ("operator", "local"):
        impostor = {"Authorization": f"Bearer {issuer.token(sub)}"}
        assert c.get("/api/videos", headers=impostor).json()["videos"] == []
        assert c.get(f"/api/videos/{mine['id']}", headers=impostor).status_code == 404
    listed = c.get("/api/videos", headers=OPERATOR).json()["videos"]
    assert [v["id"] for v in listed] == [mine["id"]]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"filename": "\\ud800.mov"}', ["body", "filename"]),  # a lone surrogate
        (b'{"filename": "a.mov", "pools": ["\\udfff"]}', ["body", "pools", 0]),
        (b'{"filename": "a.mov", "\\ud800": 1}', ["body"]),
        (b'{"filename": "a.mov", "size": NaN}', ["body", "size"]),
        (b'{"filename": "a.mov", "size": 1e400}', ["body", "size"]),  # inf
        (b'{"filename": "a.mov", "size": "12"}', ["body", "size"]),
        (b'{"filename": "a.mov", "size": true}', ["body", "size"]),
    ],
)
def test_a_body_no_encoder_takes_back_is_a_422_not_a_server_error(
    moto_farm: MotoFarm, body: bytes, where: list[str | int]
) -> None:
    """The 422 once quoted the input, and a lone surrogate or NaN in it made the
    response itself raise: a 500 and a traceback in the server's log, from one request."""
    c = _client(moto_farm)  # the test client raises what the server raised
    r = c.post(
        "/api/uploads", content=body, headers={**OPERATOR, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    r.content.decode("ascii")  # escaped: valid JSON in any encoding a client assumes
    errors = r.json()["detail"]
    assert [e["loc"] for e in errors] == [where]
    assert all(set(e) == {"type", "loc", "msg"} for e in errors)  # the input is not echoed
    assert moto_farm.clients.s3.list_objects_v2(Bucket=moto_farm.refs.bucket).get("KeyCount") == 0


def test_a_filter_that_names_no_pool_or_state_is_refused(moto_farm: MotoFarm) -> None:
    c = _client(moto_farm)
    for path in ("/api/jobs?pool=hevcc", "/api/deadletters?pool=hevcc"):
        r = c.get(path, headers=OPERATOR)
        assert r.status_code == 422
        assert r.json()["detail"] == "unknown pool 'hevcc'; known: 1080p, 720p, hevc, hls"
    r = c.get("/api/jobs?state=finished", headers=OPERATOR)
    assert r.status_code == 422
    assert "'done'" in r.json()["detail"][0]["msg"]
    assert c.get("/api/jobs?state=done&pool=hevc", headers=OPERATOR).json() == {
        "jobs": [],
        "next_cursor": None,
    }


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1001",
        "limit=1e3",
        "limit=ten",
        "cursor=1700000000000000",
        "cursor=1700000000000000.../../x",
        "cursor=-1.0123456789abcdef",
        "cursor=1700000000000000.0123456789ABCDEF",
        "cursor=" + "9" * 21 + ".0123456789abcdef",
    ],
)
def test_a_page_of_jobs_with_a_bad_size_or_cursor_is_refused(
    moto_farm: MotoFarm, query: str
) -> None:
    c = _client(moto_farm)
    r = c.get(f"/api/jobs?{query}", headers=OPERATOR)
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["query", query.split("=", maxsplit=1)[0]]]
    ok = c.get(
        "/api/jobs?limit=1000&cursor=99999999999999999999.0123456789abcdef", headers=OPERATOR
    )
    assert ok.json() == {"jobs": [], "next_cursor": None}
