"""A page from another origin, in the real headless Chromium, attacks the embedded endpoint.

The page knows the endpoint's address (a page can find it by scanning loopback ports) and
tries what the farm's clients do: list ``TODO/``, download a video and plant a new one.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from hevcq.emulator.endpoint import EndpointProcess, start
from tests.e2e.test_dashboard_browser import CHROMIUM_ARGS, _chromium

pytestmark = pytest.mark.e2e

ATTACK = """
<!doctype html><title>cat pictures</title><pre id="out">running</pre>
<script>
const ep = %(endpoint)s, bucket = %(bucket)s;
async function attempt(name, url, options) {
  try {
    const r = await fetch(url, options);
    return [name, r.status, await r.text()];
  } catch (e) {
    return [name, "blocked", String(e)];
  }
}
(async () => {
  const results = [
    await attempt("list", `${ep}/${bucket}?list-type=2&prefix=TODO/`),
    await attempt("read", `${ep}/${bucket}/TODO/home-video.mp4`),
    await attempt("plant", `${ep}/${bucket}/TODO/planted.mp4`, {method: "PUT", body: "planted"}),
    await attempt("plant-simple", `${ep}/${bucket}/TODO/planted2.mp4`,
                  {method: "POST", body: "x", mode: "no-cors"}),
  ];
  document.getElementById("out").textContent = JSON.stringify(results);
})();
</script>
"""


@contextmanager
def attacker_site(page: str) -> Iterator[str]:
    """Another origin on this machine serving the attack page."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def endpoint() -> Iterator[EndpointProcess]:
    ep = start()
    try:
        yield ep
    finally:
        ep.stop()


def test_a_page_from_another_origin_cannot_list_read_or_plant_videos(
    endpoint: EndpointProcess,
) -> None:
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    creds = endpoint.credentials
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint.url,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
    )
    bucket = f"b{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="TODO/home-video.mp4", Body=b"private video")
    page_text = ATTACK % {"endpoint": json.dumps(endpoint.url), "bucket": json.dumps(bucket)}
    with attacker_site(page_text) as site, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(site)
            out = page.locator("#out")
            sync_api.expect(out).not_to_have_text("running", timeout=20_000)
            results = json.loads(out.text_content() or "[]")
        finally:
            browser.close()
    assert [name for name, _, _ in results] == ["list", "read", "plant", "plant-simple"]
    for name, status, text in results:
        assert status in ("blocked", 403, 0), (name, status, text)
        assert "private video" not in text
        assert "home-video" not in text
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["TODO/home-video.mp4"]
