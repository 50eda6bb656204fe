"""The upload API end to end: presigned POST, a worker encodes it, the link downloads HEVC,
the raw upload goes after the last pool; the endpoint enforces the signed policy."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from hevcq.media.probe import probe
from hevcq.media.samples import make_clip
from hevcq.web.app import CSRF_HEADER
from tests.e2e.farmkit import WorkerProc, pool_dir, stack, wait_for
from tests.e2e.webkit import AUTH, served

pytestmark = pytest.mark.e2e
POST = {CSRF_HEADER: "1", **AUTH}


def _upload(ticket: dict, data: bytes) -> httpx.Response:
    return httpx.post(
        ticket["url"], data=ticket["fields"], files={"file": ("clip.mp4", data)}, timeout=30
    )


def test_an_upload_is_encoded_and_its_output_downloads_as_hevc(tmp_path: Path) -> None:
    """With ``raw: delete-when-settled`` the source stays while a pool has not settled it
    (its worker is not even started yet), and goes once the last pool has."""
    clip = make_clip(tmp_path / "clip.mp4", width=320, height=180, seconds=1.0, fps=12)
    pools = pool_dir(tmp_path, ("hevc", "720p"))
    with stack(tmp_path, pools) as farm, served(farm, raw="delete-when-settled") as url:
        workers = [WorkerProc(farm, "hevc", tmp_path / "hevc.log")]
        try:
            api = httpx.Client(base_url=url, timeout=30, headers=AUTH)
            ticket = api.post("/api/uploads", json={"filename": "clip.mp4"}, headers=POST).json()
            assert ticket["key"] == f"TODO/{ticket['id']}/clip.mp4"
            sent = _upload(ticket, clip.read_bytes())
            assert sent.status_code == 204, sent.text
            assert farm.clients is not None
            s3, bucket = farm.clients.s3, farm.refs.bucket

            def todo() -> list[str]:
                listed = s3.list_objects_v2(Bucket=bucket, Prefix="TODO/")
                return [o["Key"] for o in listed.get("Contents", [])]

            head = s3.head_object(Bucket=bucket, Key=ticket["key"])
            assert todo() == [ticket["key"]]
            assert head["Metadata"]["hevcq-owner"] == "local"

            def pools_now() -> dict[str, str]:
                v = api.get(f"/api/videos/{ticket['id']}").json()
                return {p["pool"]: p["state"] for p in v["pools"]}

            assert wait_for(lambda: pools_now()["hevc"] in ("done", "failed"), 180, every_s=1.0)
            video = api.get(f"/api/videos/{ticket['id']}").json()
            assert pools_now() == {"hevc": "done", "720p": "waiting"}, video
            assert (video["state"], video["raw_deleted"]) == ("processing", False)
            assert todo() == [ticket["key"]]  # 720p has not settled it

            workers.append(WorkerProc(farm, "720p", tmp_path / "720p.log"))
            # Settled, not merely started: a running 720p job still holds the source.
            settled = ("done", "skipped", "failed")
            assert wait_for(lambda: pools_now()["720p"] in settled, 180, every_s=1.0)
            video = api.get(f"/api/videos/{ticket['id']}").json()
            assert pools_now() == {"hevc": "done", "720p": "skipped"}, video
            assert (video["state"], video["raw_deleted"]) == ("done", True)
            assert todo() == []
            [hevc] = [p for p in video["pools"] if p["pool"] == "hevc"]
            out = tmp_path / "out.mp4"
            out.write_bytes(httpx.get(hevc["download_url"], timeout=30).raise_for_status().content)
            info = probe(out)
            assert info.main_video is not None
            assert info.main_video.codec == "hevc"
        finally:
            for w in workers:
                w.proc.terminate()
                w.proc.wait(timeout=60)


def test_the_presigned_policy_caps_the_size(tmp_path: Path) -> None:
    """The endpoint enforces the policy the API signs, as S3 does: over the limit or with
    another owner the upload is refused and nothing reaches ``TODO/``; within it, stored."""
    with stack(tmp_path, pool_dir(tmp_path)) as farm, served(farm, max_bytes=1000) as url:
        ticket = httpx.post(
            f"{url}/api/uploads", json={"filename": "big.mov"}, headers=POST, timeout=30
        ).json()
        policy = json.loads(base64.b64decode(ticket["fields"]["policy"]))
        assert ["content-length-range", 1, 1000] in policy["conditions"]
        assert {"x-amz-meta-hevcq-owner": "local"} in policy["conditions"]
        assert {"key": ticket["key"]} in policy["conditions"]
        assert ticket["max_bytes"] == 1000
        assert farm.clients is not None

        def todo() -> list[str]:
            listed = farm.clients.s3.list_objects_v2(Bucket=farm.refs.bucket, Prefix="TODO/")
            return [o["Key"] for o in listed.get("Contents", [])]

        too_big = _upload(ticket, b"x" * 1001)
        assert too_big.status_code == 400, too_big.text
        assert "<Code>EntityTooLarge</Code>" in too_big.text
        owned = {**ticket, "fields": {**ticket["fields"], "x-amz-meta-hevcq-owner": "mallory"}}
        tampered = _upload(owned, b"x" * 10)
        assert tampered.status_code == 403, tampered.text
        assert "<Code>AccessDenied</Code>" in tampered.text
        assert todo() == []
        assert _upload(ticket, b"x" * 1000).status_code == 204
        assert todo() == [ticket["key"]]
