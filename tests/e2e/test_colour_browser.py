"""What Chromium shows: every rung of a ladder, and every poster, in its source's colours
(decision 0036).

Chromium takes a picture that states no colours for BT.709 from 720 coded lines up and
for BT.601 below. Before, an unstated 1280x720 source's rungs under 720 lines showed
pure red as (233, 0, 3) where its top rung showed (255, 1, 3): the picture changed
colour as the player changed rungs. An RGB source's rungs were BT.601 and unstated, so
its HD rungs were shown wrong instead.
"""

from __future__ import annotations

import functools
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from hevcq.media.ffmpeg import find_ffmpeg
from hevcq.media.ladder import build_ladder
from hevcq.media.poster import make_poster
from hevcq.media.probe import probe
from tests.e2e.test_colour import RED_SOURCES, UNSTATED, red_source, rung_starts
from tests.e2e.test_dashboard_browser import CHROMIUM_ARGS, _chromium
from tests.e2e.test_ladder_browser import _Handler

pytestmark = pytest.mark.e2e

# Each video's centre pixel once it has shown a frame, as the page's canvas reads it. On a
# loaded machine "seeked" can come before the frame is ready to draw, and drawing it then
# left the canvas blank (CI saw black for a red rung): a blank draw (transparent or black)
# is tried again for up to 10 s, and what it shows then is the answer.
PAGE = """<html><body><div id="out">pending</div><script>
const names = NAMES, seen = {};
function next(i) {
  if (i >= names.length) {
    document.getElementById("out").textContent = JSON.stringify(seen);
    return;
  }
  const v = document.createElement("video");
  v.muted = true;
  v.src = names[i];
  v.addEventListener("loadeddata", () => { v.currentTime = 0.5; });
  function draw(tries) {
    const c = document.createElement("canvas");
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext("2d");
    g.drawImage(v, 0, 0);
    const px = g.getImageData(c.width / 2, c.height / 2, 1, 1).data;
    const blank = px[3] === 0 || (px[0] === 0 && px[1] === 0 && px[2] === 0);
    if (blank && tries > 0) { setTimeout(() => draw(tries - 1), 50); return; }
    seen[names[i]] = Array.from(px.slice(0, 3));
    next(i + 1);
  }
  v.addEventListener("seeked", () => draw(200));
  v.addEventListener("error", () => { seen[names[i]] = "error"; next(i + 1); });
}
next(0);
</script></body></html>"""

SOURCES = {
    # BT.709 coded, stating nothing: Chromium shows it as BT.709 by its size.
    "unstated.mp4": [
        *("-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"),
        *("-c:v", "libx264", "-bsf:v", UNSTATED),
    ],
    "screen.mov": ["-c:v", "qtrle"],  # RGB
    # Its matrix alone stated: Chromium takes such a picture as if it stated nothing.
    "matrix-only.mp4": [
        *("-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p"),
        *(
            "-c:v",
            "libx264",
            "-bsf:v",
            UNSTATED.replace("matrix_coefficients=2", "matrix_coefficients=1"),
        ),
    ],
}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


# Each picture's centre pixel once it has loaded.
IMAGES = """<html><body><div id="out">pending</div><script>
const names = NAMES, seen = {};
names.forEach((name) => {
  const img = new Image();
  img.onload = () => {
    const c = document.createElement("canvas");
    c.width = img.width; c.height = img.height;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    seen[name] = Array.from(g.getImageData(img.width / 2, img.height / 2, 1, 1).data.slice(0, 3));
    if (Object.keys(seen).length === names.length) {
      document.getElementById("out").textContent = JSON.stringify(seen);
    }
  };
  img.src = name;
});
</script></body></html>"""


def shown(url: str, root: Path, page: str, names: list[str]) -> dict[str, list[int]]:
    """What Chromium shows of each of ``names`` at its centre, through ``page``."""
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    (root / "page.html").write_text(page.replace("NAMES", json.dumps(names)))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            tab.goto(f"{url}/page.html")
            tab.wait_for_function("document.getElementById('out').textContent !== 'pending'")
            seen: dict[str, list[int]] = json.loads(tab.text_content("#out") or "{}")
            return seen
        finally:
            browser.close()


def test_every_poster_shows_red_as_red(site: tuple[str, Path]) -> None:
    """Before, the poster of a BT.709 video (every HD phone clip) showed (233, 0, 2)."""
    url, root = site
    names = []
    for name, size, codec in RED_SOURCES:
        src = red_source(root / name, size, codec)
        make_poster(find_ffmpeg(), src, root / f"{name}.jpg")
        names.append(f"{name}.jpg")
    seen = shown(url, root, IMAGES, names)
    for name in names:
        red, green, blue = seen[name]
        assert red >= 250 and green <= 6 and blue <= 6, (name, seen)  # noqa: PT018


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_every_rung_shows_red_as_red(site: tuple[str, Path], name: str) -> None:
    url, root = site
    src = root / name
    args = [find_ffmpeg(), "-loglevel", "error", "-f", "lavfi"]
    args += ["-i", "color=c=red:size=1280x720:rate=25:duration=2,format=rgb24"]
    subprocess.run([*args, *SOURCES[name], str(src)], check=True)
    build_ladder(find_ffmpeg(), src, root / "hls", probe(src))
    rungs = [str(p.relative_to(root)) for p in rung_starts(root / "hls")]
    assert len(rungs) == 4  # 720, 480, 360 and 240
    seen = shown(url, root, PAGE, rungs)
    for rung in rungs:
        red, green, blue = seen[rung]
        assert red >= 250 and green <= 6 and blue <= 6, (rung, seen)  # noqa: PT018
