"""Attacks from a page of another site in a real headless browser: a DNS-rebound name
reading and posting to the credential-free local dashboard, and a page framing it; and the
dashboard's pages and /docs working under the Content-Security-Policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from hevcq.web.app import WebConfig
from hevcq.web.auth import AuthConfig, Authenticator
from hevcq.web.server import ServerThread
from tests.e2e.test_dashboard_browser import CHROMIUM_ARGS, _chromium
from tests.e2e.webkit import LOCAL_TOKEN, signed_in

pytestmark = pytest.mark.e2e
# Chromium's own guard (Private Network Access) refuses a public page's requests to loopback;
# other browsers have none, and the server must not rely on one: it is switched off here.
NO_PNA = (
    "--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,"
    "PrivateNetworkAccessRespectPreflightResults,LocalNetworkAccessChecks"
)
REASON = "no farm configured (HEVCQ_BUCKET unset) and no embedded farm running"
# The attacker's page reads the dashboard's API from its own origin, then posts to it with
# the custom header (same origin for the browser: no preflight).
STEAL = """<!doctype html><title>loading</title><script>
(async () => {
  const out = {};
  const calls = {
    health: () => fetch("/api/health"),
    redrive: () => fetch("/api/redrive", {method: "POST", body: '{"pool": "hevc"}',
      headers: {"X-Hevcq-Request": "1", "Content-Type": "application/json"}}),
  };
  for (const [name, call] of Object.entries(calls)) {
    try { const r = await call(); out[name] = [r.status, await r.text()]; }
    catch (e) { out[name] = ["error", String(e)]; }
  }
  window.stolen = JSON.stringify(out);
  document.title = "done";
})();
</script>"""


@contextmanager
def _browser(*args: str) -> Iterator[tuple[Any, Any, str]]:
    """A page in headless Chromium, a local server without a farm, and its URL."""
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    auth = Authenticator(AuthConfig(local_token=LOCAL_TOKEN))
    config = WebConfig(None, auth, no_farm_reason=REASON)
    with ServerThread(config) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=[*CHROMIUM_ARGS, *args])
        try:
            yield browser.new_page(), sync_api, server.url
        finally:
            browser.close()


def _serve_attacker(page: Any, url: str, html: str) -> None:
    """The attacker's site answers ``url`` with ``html``; everything else goes through."""
    page.route(url, lambda r: r.fulfill(status=200, content_type="text/html", body=html))


def test_a_rebound_name_reads_and_posts_nothing() -> None:
    """evil.test first served the attacker's page, then resolves to 127.0.0.1: to the
    browser the dashboard's API is the page's own origin, Origin and Host agree."""
    rebound = "--host-resolver-rules=MAP evil.test 127.0.0.1"  # from now on
    with _browser(rebound, NO_PNA) as (page, _, url):
        port = url.rsplit(":", 1)[1]
        attack = f"http://evil.test:{port}/attack"
        _serve_attacker(page, attack, STEAL)
        page.goto(attack)
        page.wait_for_function("document.title === 'done'", timeout=15_000)
        stolen = json.loads(page.evaluate("window.stolen"))
    assert stolen["health"][0] == 421, stolen
    assert REASON not in stolen["health"][1]
    assert stolen["redrive"][0] == 421, stolen


def test_a_page_of_another_site_cannot_frame_the_dashboard() -> None:
    """Clickjacking: the redrive buttons under a decoy; frame-ancestors 'none' refuses."""
    with _browser(NO_PNA) as (page, _, url):
        attack = "http://attacker.test/"
        _serve_attacker(page, attack, f'<!doctype html><iframe src="{url}/"></iframe>')
        page.goto(attack)
        page.wait_for_timeout(1000)
        framed = [f for f in page.frames if f is not page.main_frame]
        assert len(framed) == 1
        assert framed[0].locator("#dashboard").count() == 0
        assert not framed[0].url.startswith(url)


def test_the_pages_and_docs_work_under_the_policy() -> None:
    """No inline script or style is left to refuse: the pages run and no violation is logged."""
    with _browser() as (page, sync_api, url):
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(signed_in(url))
        sync_api.expect(page.locator("#banner")).to_have_text(
            f"No farm to show: {REASON}", timeout=15_000
        )
        page.goto(f"{url}/jobs/01KAAAAAAAAAAAAAAAAAAAAAAA")
        sync_api.expect(page.locator("#banner")).to_be_visible(timeout=15_000)
        page.goto(f"{url}/docs")
        page.get_by_text("/api/uploads").first.wait_for(timeout=15_000)
        page.get_by_text("job-result").first.wait_for(timeout=15_000)
        assert [e for e in errors if "503" not in e] == []
