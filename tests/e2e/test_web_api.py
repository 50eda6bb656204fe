"""The upload API end to end: presigned POST, a worker encodes it, the link downloads HEVC."""

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
from tests.e2e.webkit import served

pytestmark = pytest.mark.e2e
POST = {CSRF_HEADER: "1"}


def _upload(ticket: dict, data: bytes) -> httpx.Response:
    return httpx.post(
        ticket["url"], data=ticket["fields"], files={"file": ("clip.mp4", data)}, timeout=30
    )


def test_an_upload_is_encoded_and_its_output_downloads_as_hevc(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", width=320, height=180, seconds=1.0, fps=12)
    with stack(tmp_path, pool_dir(tmp_path, ("hevc", "720p"))) as farm, served(farm) as url:
        worker = WorkerProc(farm, "hevc", tmp_path / "hevc.log")
        other = WorkerProc(farm, "720p", tmp_path / "720p.log")
        try:
            api = httpx.Client(base_url=url, timeout=30)
            ticket = api.post("/api/uploads", json={"filename": "clip.mp4"}, headers=POST).json()
            assert ticket["key"] == f"TODO/{ticket['id']}/clip.mp4"
            sent = _upload(ticket, clip.read_bytes())
            assert sent.status_code == 204, sent.text
            assert farm.clients is not None
            listed = farm.clients.s3.list_objects_v2(Bucket=farm.refs.bucket, Prefix="TODO/")
            head = farm.clients.s3.head_object(Bucket=farm.refs.bucket, Key=ticket["key"])
            assert [o["Key"] for o in listed["Contents"]] == [ticket["key"]]
            assert head["Metadata"]["hevcq-owner"] == "local"

            def done() -> bool:
                v = api.get(f"/api/videos/{ticket['id']}").json()
                return v["state"] in ("done", "failed")

            assert wait_for(done, timeout_s=180, every_s=1.0)
            video = api.get(f"/api/videos/{ticket['id']}").json()
            assert video["state"] == "done", video
            states = {p["pool"]: p["state"] for p in video["pools"]}
            assert states == {"hevc": "done", "720p": "skipped"}
            [hevc] = [p for p in video["pools"] if p["pool"] == "hevc"]
            out = tmp_path / "out.mp4"
            out.write_bytes(httpx.get(hevc["download_url"], timeout=30).raise_for_status().content)
            info = probe(out)
            assert info.main_video is not None
            assert info.main_video.codec == "hevc"
        finally:
            for w in (worker, other):
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
