"""The explorer in a real browser: Debian's Chromium, headless, driven by Playwright.

The page is served by the real ``phasemap serve`` on loopback. Checked: the page loads and the
map renders (a Bokeh canvas), hovering shows the values and both labels, moving a slider
redraws the map, clicking draws the line plot; screenshots are saved under ``tmp_path``.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from phasemap.regimes import MACHINE_LABELS, REGIME_LABELS
from phasemap.service.testing import TEST_TOKEN, computed_grid, shared_test_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}
SPEC = {"name": "browser test", "params": {"T": 7.5},
        "axes": {"eps": {"start": -20, "stop": 20, "num": 41},
                 "dV": {"start": -10, "stop": 10, "num": 21},
                 "dT": [2.5, 5.0]}}

#: Text of an element including what its (open) shadow roots render: Bokeh draws its widgets
#: and tooltips inside shadow DOM, where ``innerText`` does not look.
DEEP_TEXT = """(el) => {
  const walk = (n) => {
    let s = "";
    if (n.shadowRoot) s += walk(n.shadowRoot);
    for (const c of n.childNodes) {
      if (c.nodeType === Node.TEXT_NODE) s += c.textContent + " ";
      else s += walk(c);
    }
    return s;
  };
  return walk(el);
}"""


@pytest.fixture(scope="module")
def explorer_url() -> str:
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium "
                    "(apt-get install chromium; .ci/run does it)")
    server = shared_test_server()
    rid = computed_grid(server.url, SPEC)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        page = c.get("/explorer")  # 503 naming what is missing if the explorer cannot run
        assert page.status_code == 200, page.text
    return f"{server.url}/explorer?dataset={rid}"


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM),
            headless=True, args=FLAGS, viewport={"width": 1500, "height": 1250})
        try:
            yield context.new_page()
        finally:
            context.close()


#: The label/value rows of Bokeh's tooltips (inside shadow roots).
TOOLTIP_ROWS = """(el) => {
  const out = [];
  const walk = (n) => {
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of (n.children || [])) {
      if (c.classList && (c.classList.contains("bk-tooltip-row-label") ||
                          c.classList.contains("bk-tooltip-row-value")))
        out.push(c.textContent.trim());
      walk(c);
    }
  };
  walk(el);
  return out;
}"""


def tooltip_rows(page) -> dict[str, str]:
    """``{label: value}`` of the visible tooltip (labels without their trailing colon)."""
    loc = page.locator(".bk-Tooltip")
    cells: list[str] = []
    for i in range(loc.count()):
        cells += loc.nth(i).evaluate(TOOLTIP_ROWS)
    return {k.rstrip(":").strip(): v for k, v in zip(cells[::2], cells[1::2], strict=False)}


def deep_text(page, selector: str) -> str:
    loc = page.locator(selector)
    return " ".join(loc.nth(i).evaluate(DEEP_TEXT) for i in range(loc.count()))


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_explorer_renders_hovers_and_follows_the_slider(page, explorer_url, tmp_path):
    rid = explorer_url.rsplit("=", 1)[-1]
    page.goto(explorer_url)
    page.wait_for_selector(".phasemap-map canvas", state="attached", timeout=90_000)
    wait_for(lambda: rid in deep_text(page, ".phasemap-status"), what="the status line")
    time.sleep(1.0)  # let Bokeh finish its first paint
    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
    assert (tmp_path / "explorer.png").stat().st_size > 10_000

    status = deep_text(page, ".phasemap-status")
    assert "eps × dV" in status and "dT=" in status

    # hovering shows the grid point, the values and both labels
    the_map = page.locator(".phasemap-map").first
    box = the_map.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 200
    x, y = box["x"] + 0.22 * box["width"], box["y"] + 0.3 * box["height"]
    page.mouse.move(x - 5, y - 5)
    page.mouse.move(x, y)
    tip = wait_for(lambda: deep_text(page, ".bk-Tooltip").strip(), timeout=30,
                   what="a hover tooltip")
    assert "regime" in tip and "machine" in tip and "J_L" in tip and "Q_R" in tip
    assert any(label in tip for label in REGIME_LABELS), tip
    assert any(label in tip for label in MACHINE_LABELS), tip
    # ... of the exact stored grid point under the cursor: the same values the API reads
    rows = wait_for(lambda: tooltip_rows(page), timeout=30, what="tooltip rows")
    coords = {name: float(next(v for k, v in rows.items() if k.startswith(label)))
              for name, label in (("eps", "ε"), ("dV", "ΔV"))}
    dT = float(deep_text(page, ".phasemap-status").split("dT=")[1].split()[0].rstrip(";,"))
    with httpx.Client(base_url=explorer_url.split("/explorer")[0], timeout=60) as c:
        point = c.get(f"/api/grids/{rid}/point", params={**coords, "dT": dT}).json()
    assert point["regime"] in rows.values() and point["machine"] in rows.values(), (rows, point)
    shown = float(next(v for k, v in rows.items() if k.startswith("J_L")))
    assert shown == pytest.approx(point["J_L"], rel=1e-6), (rows, point)
    page.screenshot(path=str(tmp_path / "explorer-hover.png"))

    # moving the dT slider (5 -> 2.5) redraws the map
    page.mouse.move(5, 5)  # hide the tooltip
    time.sleep(0.5)
    before = the_map.screenshot()
    handle = page.locator(".slider-dT .noUi-handle").first
    handle.focus()
    page.keyboard.press("ArrowLeft")
    wait_for(lambda: "dT=2.5" in deep_text(page, ".phasemap-status"), what="the slider")
    wait_for(lambda: the_map.screenshot() != before, timeout=30, what="a redrawn map")
    page.screenshot(path=str(tmp_path / "explorer-slider.png"), full_page=True)

    # clicking a point draws the line plot through it
    page.mouse.click(x, y)
    page.wait_for_selector(".phasemap-lines canvas", state="attached", timeout=60_000)
    page.screenshot(path=str(tmp_path / "explorer-lines.png"), full_page=True)
