"""A ladder played by hls.js (the copy hevcq ships, from npm) in headless Chromium: the
manifest parses, every H.264 and AV1 rung plays and advances when forced, a seek near the end
reaches ``ended``, and no fatal error is raised. (Chromium on Linux has no HEVC decoder:
HEVC rungs are proven by the full decode of ``check_ladder``.)"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

import pytest

from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import build_ladder
from hevcq.media.probe import probe
from hevcq.media.samples import make_clip
from tests.e2e.test_dashboard_browser import CHROMIUM_ARGS, _chromium

pytestmark = pytest.mark.e2e
HLS_JS = Path(str(resources.files("hevcq.web") / "static" / "vendor" / "hls.min.js"))

PLAYER = """<!doctype html><html><body>
<video id="v" muted playsinline></video>
<script src="hls.min.js"></script>
<script>
const video = document.getElementById("v");
const hls = new Hls({enableWorker: false, capLevelToPlayerSize: false});
window.ladder = {levels: null, fatal: [], switched: []};
hls.on(Hls.Events.ERROR, (_e, d) => {
  if (d.fatal) window.ladder.fatal.push(d.type + ":" + d.details);
});
hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => {
  window.ladder.levels = d.levels.map(l => ({w: l.width, h: l.height, codecs: l.attrs.CODECS}));
});
hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => window.ladder.switched.push(d.level));
hls.loadSource("hls/master.m3u8");
hls.attachMedia(video);
window.hls = hls;
</script></body></html>"""

# Plays rung ``level`` from ``start`` until the clock moves a second on that rung.
PLAY_RUNG = """async ([level, start]) => {
  const video = document.getElementById("v");
  hls.currentLevel = level;
  video.currentTime = start;
  await video.play();
  const t0 = performance.now();
  while (performance.now() - t0 < 20000) {
    if (hls.currentLevel === level && video.currentTime > start + 1) {
      return {level: hls.currentLevel, time: video.currentTime};
    }
    await new Promise(r => setTimeout(r, 100));
  }
  return {level: hls.currentLevel, time: video.currentTime, timedOut: true};
}"""

SEEK_TO_END = """async () => {
  const video = document.getElementById("v");
  const ended = new Promise(r => video.addEventListener("ended", () => r(true), {once: true}));
  video.currentTime = video.duration - 0.5;
  await video.play();
  return await Promise.race([ended, new Promise(r => setTimeout(() => r(false), 20000))]);
}"""


class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {  # noqa: RUF012 - the base class's own attribute, overridden
        **SimpleHTTPRequestHandler.extensions_map,
        ".m3u8": "application/vnd.apple.mpegurl",
        ".m4s": "video/iso.segment",
        ".mp4": "video/mp4",
        ".js": "text/javascript",
    }

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "site"
    root.mkdir()
    src = make_clip(tmp_path / "src.mp4", width=640, height=360, seconds=8, fps=25)
    build_ladder(find_ffmpeg(), src, root / "hls", probe(src), groups=("av1",))
    shutil.copy(HLS_JS, root / "hls.min.js")
    (root / "player.html").write_text(PLAYER)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_hls_js_plays_every_rung_and_reaches_the_end(site: str) -> None:
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{site}/player.html")
            page.wait_for_function("window.ladder && window.ladder.levels", timeout=20_000)
            levels = page.evaluate("window.ladder.levels")
            # Both groups, every rung: H.264 and AV1 (Chromium decodes both; not HEVC).
            sizes = sorted((lv["w"], lv["h"], lv["codecs"][:4]) for lv in levels)
            assert sizes == [
                (426, 240, "av01"),
                (426, 240, "avc1"),
                (640, 360, "av01"),
                (640, 360, "avc1"),
            ]
            for level in range(len(levels)):
                played = page.evaluate(PLAY_RUNG, [level, 0.5 + 1.5 * level])
                assert played.get("timedOut") is not True, played
                assert played["level"] == level
            assert page.evaluate(SEEK_TO_END) is True
            assert page.evaluate("window.ladder.fatal") == []
            assert errors == []
        finally:
            browser.close()
