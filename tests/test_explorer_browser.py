"""The explorer in a real browser: Debian's Chromium, headless, driven by Playwright.

The page is served by the real ``phasemap serve`` on loopback. Checked (issue #15 §2, issue
#11): the hovered pixel reports the exact stored point (its coordinates, the shown
quantity equal, bit for bit, to the HTTP API's ``/point`` at the same grid point, labels
spelled out), clicking that pixel selects the same point, lists every value of it exactly
under the map, marks it on the map and draws a crosshair at it on the line plot,
the legend lists exactly the labels in view, the dataset's fixed parameters are shown, a
slider step redraws, and on a (T, ΔT) plane the invalid region |ΔT| >= 2T is masked and
drawn as such. Every wait is an explicit condition (the map's view serial, a model
property, a tooltip's text); there are no fixed sleeps. Screenshots go to ``tmp_path``.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from phasemap.service.explorer_logic import MASK_COLOR, legend_text
from phasemap.service.testing import computed_grid, shared_test_server

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SPEC = {"name": "browser test", "params": {"T": 7.5},
        "axes": {"eps": {"start": -20, "stop": 20, "num": 41},
                 "dV": {"start": -10, "stop": 10, "num": 21},
                 "dT": [2.5, 5.0]}}
T_DT_SPEC = {"name": "browser test T-dT", "params": {"eps": -5.0, "dV": 1.0},
             "axes": {"T": {"start": 1, "stop": 10, "num": 10},
                      "dT": {"start": -10, "stop": 10, "num": 21}}}

#: JS: the serial of the last view the server pushed to the map (0 before the first).
SERIAL = "() => { const d = window.Bokeh && Bokeh.documents[0]; " \
         "const f = d && d.get_model_by_name('phasemap-map'); return f ? f.tags[0] : 0; }"
#: JS: page coordinates of the data point (x, y) on the figure named ``name``.
PAGE_XY = """([name, x, y]) => {
  const fig = Bokeh.documents[0].get_model_by_name(name);
  const view = Bokeh.index.find_one(fig);
  const r = view.canvas_view.el.getBoundingClientRect();
  return [r.left + view.frame.x_scale.compute(x), r.top + view.frame.y_scale.compute(y)];
}"""
#: JS: the rows of the visible hover tooltip as [name, value] pairs (inside shadow roots).
TIP_ROWS = """() => {
  const out = [];
  const walk = (n) => {
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.children || []) {
      if (c.classList && c.classList.contains('pm-row')) {
        out.push([c.querySelector('.pm-name').textContent,
                  c.querySelector('.pm-value').textContent]);
      } else walk(c);
    }
  };
  walk(document.body);
  return out;
}"""
#: The clicked point's record under the map as [name, value] pairs (exact values).
RECORD = """() => {
  const out = [];
  const walk = (n) => {
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.children || []) {
      if (c.classList && c.classList.contains('pm-rec'))
        out.push([c.dataset.name, c.dataset.value]);
      else walk(c);
    }
  };
  walk(document.body);
  return out;
}"""
#: Text of an element including what its (open) shadow roots render.
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
def server_and_grids():
    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium "
                    "(apt-get install chromium; .ci/run does it)")
    server = shared_test_server()
    rid = computed_grid(server.url, SPEC)
    rid2 = computed_grid(server.url, T_DT_SPEC)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        page = c.get("/explorer")  # 503 naming what is missing if the explorer cannot run
        assert page.status_code == 200, page.text
    return server.url, rid, rid2


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


def deep_text(page, selector: str) -> str:
    loc = page.locator(selector)
    return " ".join(loc.nth(i).evaluate(DEEP_TEXT) for i in range(loc.count()))


def open_map(page, url: str) -> int:
    page.goto(url, timeout=180_000)
    page.wait_for_function(f"({SERIAL})() > 0", timeout=180_000)
    return int(page.evaluate(SERIAL))


def hover(page, x: float, y: float) -> dict[str, str]:
    """Move the mouse onto data point (x, y) of the map; the tooltip's rows by name."""
    px, py = page.evaluate(PAGE_XY, ["phasemap-map", x, y])
    page.mouse.move(px - 4, py - 4)
    page.mouse.move(px, py)
    page.wait_for_function(f"({TIP_ROWS})().length > 0", timeout=30_000)
    return {re.sub(r"\s+", " ", k).strip(): v.strip() for k, v in page.evaluate(TIP_ROWS)}


def model_prop(page, name: str, expr: str):
    return page.evaluate(f"() => {{ const m = Bokeh.documents[0].get_model_by_name('{name}');"
                         f" return {expr}; }}")


def test_hover_and_click_give_the_exact_stored_point(page, server_and_grids, tmp_path):
    url, rid, _ = server_and_grids
    open_map(page, f"{url}/explorer?dataset={rid}")
    status = deep_text(page, ".phasemap-status")
    assert rid in status and "eps × dV" in status and "dT=5" in status
    assert "T = 7.5" in status  # the fixed parameter, wherever the dataset is named
    assert "T = 7.5" in deep_text(page, ".bk-input")  # the dataset menu

    # hover: the coordinates and the labels of the stored point under the cursor (the
    # lens is shown: no quantity is sent, so none is hovered)
    eps, dv = -10.0, 3.0
    rows = hover(page, eps + 0.3, dv - 0.3)  # inside the cell of (eps, dV) = (-10, 3)
    page.screenshot(path=str(tmp_path / "explorer-hover.png"))
    with httpx.Client(base_url=url, timeout=60) as c:
        point = c.get(f"/api/grids/{rid}/point", params={"eps": eps, "dV": dv,
                                                         "dT": 5.0}).json()
    assert float(rows["ε [E₀]"]) == eps and float(rows["ΔV [E₀]"]) == dv
    assert rows["regime"] == legend_text(point["regime"])
    assert rows["machine"] == legend_text(point["machine"])
    assert point["regime"] == "absolute_negative_mobility"
    assert rows["regime"] == "ANM: absolute negative mobility"
    assert "JL [γ₀]" not in rows

    # a shown quantity is hovered exactly (bit for bit as GET /point), beside the labels
    for option, name, key in (("J_L [γ₀]", "JL [γ₀]", "J_L"), ("σ [γ₀]", "σ [γ₀]", "s")):
        serial = int(page.evaluate(SERIAL))
        page.locator(".pm-shown select").select_option(label=option)
        page.wait_for_function(f"({SERIAL})() > {serial}", timeout=60_000)
        page.mouse.move(5, 5)
        page.wait_for_function(f"({TIP_ROWS})().length == 0", timeout=30_000)
        rows = hover(page, eps + 0.3, dv - 0.3)
        assert float(rows[name]) == point[key], (name, rows[name], point[key])
        assert float(rows["ε [E₀]"]) == eps and rows["regime"] == legend_text(point["regime"])
    serial = int(page.evaluate(SERIAL))
    page.locator(".pm-shown select").select_option(label="labels")
    page.wait_for_function(f"({SERIAL})() > {serial}", timeout=60_000)

    # the legend names exactly the labels present in view, abbreviations spelled out
    with httpx.Client(base_url=url, timeout=60) as c:
        plane = c.get(f"/api/grids/{rid}/slice", params={"dT": 5.0,
                                                         "vars": "regime"}).json()
    codes = np.asarray(plane["data_vars"]["regime"]["data"])
    present = {plane["labels"]["regime"][k] for k in np.unique(codes)}
    shown = set(page.evaluate("""() => { const out = []; const walk = (n) => {
        if (n.shadowRoot) walk(n.shadowRoot);
        for (const c of n.children || []) { if (c.dataset && c.dataset.label)
          out.push(c.dataset.label); walk(c); } }; walk(document.body); return out; }"""))
    assert shown == present
    assert "ANM: absolute negative mobility" in deep_text(page, ".phasemap-legend")

    # click the same pixel: the same point, marked on the map, crosshair on the line plot
    before = int(page.evaluate(SERIAL))
    px, py = page.evaluate(PAGE_XY, ["phasemap-map", eps + 0.3, dv - 0.3])
    page.mouse.click(px, py)
    page.wait_for_function("() => { const m = Bokeh.documents[0].get_model_by_name("
                           "'crosshair'); return m && m.visible; }", timeout=60_000)
    assert model_prop(page, "crosshair", "m.location") == eps
    marks = model_prop(page, "crosshair-marks", "Array.from(m.data_source.data.y)")
    assert marks == [point[k] for k in ("J_L", "Q_L", "Q_R", "P")]
    info = deep_text(page, ".phasemap-point")
    assert "ε = -10" in info and "ΔV = 3" in info and "ANM" in info
    # the clicked point's record: every value of the point exactly, as GET /point
    record = dict(page.evaluate(RECORD))
    for key in ("J_L", "Q_L", "Q_R", "P", "s"):
        assert float(record[key]) == point[key], (key, record[key], point[key])
    assert record["regime"] == legend_text(point["regime"])
    assert float(record["eps"]) == eps and float(record["dV"]) == dv
    page.screenshot(path=str(tmp_path / "explorer-click.png"), full_page=True)

    # a slider step redraws the map (a new view) and says so
    page.mouse.move(5, 5)
    handle = page.locator(".slider-dT .noUi-handle").first
    handle.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"({SERIAL})() > {before}", timeout=60_000)
    page.wait_for_function("() => !Bokeh.documents[0].get_model_by_name('phasemap-map')"
                           ".title.text.includes('updating')", timeout=60_000)
    assert "ΔT = 2.5" in model_prop(page, "phasemap-map", "m.title.text")
    page.screenshot(path=str(tmp_path / "explorer-slider.png"), full_page=True)


def test_the_invalid_region_of_a_t_dt_plane_is_masked(page, server_and_grids, tmp_path):
    from PIL import Image

    url, _, rid2 = server_and_grids
    open_map(page, f"{url}/explorer?dataset={rid2}")
    status = deep_text(page, ".phasemap-status")
    assert "T × dT" in status or "dT × T" in status
    legend = deep_text(page, ".phasemap-legend")
    assert "outside the model's domain" in legend and "|dT| < 2 T" in legend
    x_axis = model_prop(page, "phasemap-map", "m.below[0].axis_label")
    at = {"T": 1.0, "dT": 8.0} if x_axis.startswith("T") else {"dT": 8.0, "T": 1.0}
    x, y = list(at.values())
    rows = hover(page, x, y)  # |dT| = 8 >= 2T = 2: outside the domain
    assert rows["regime"] == "outside the model's domain"
    assert rows["machine"] == "outside the model's domain"
    page.mouse.move(5, 5)
    page.wait_for_function(f"({TIP_ROWS})().length == 0", timeout=30_000)
    px, py = page.evaluate(PAGE_XY, ["phasemap-map", x, y])
    shot = page.screenshot(clip={"x": px - 1, "y": py - 1, "width": 3, "height": 3})
    rgb = Image.open(io.BytesIO(shot)).convert("RGB").getpixel((1, 1))
    want = tuple(int(MASK_COLOR[i:i + 2], 16) for i in (1, 3, 5))
    assert max(abs(a - b) for a, b in zip(rgb, want, strict=True)) <= 3, (rgb, want)
    # a valid point of the same plane is drawn in its label's colour, not the mask
    inside = {"T": 8.0, "dT": 2.0}
    ix, iy = (inside["T"], inside["dT"]) if x_axis.startswith("T") else \
        (inside["dT"], inside["T"])
    rows = hover(page, ix, iy)
    assert rows["regime"] != "outside the model's domain"
    page.screenshot(path=str(tmp_path / "explorer-masked.png"), full_page=True)
    # a quantity shown: the masked point is hovered as NaN (outside the domain)
    serial = int(page.evaluate(SERIAL))
    page.locator(".pm-shown select").select_option(label="J_L [γ₀]")
    page.wait_for_function(f"({SERIAL})() > {serial}", timeout=60_000)
    page.mouse.move(5, 5)
    page.wait_for_function(f"({TIP_ROWS})().length == 0", timeout=30_000)
    rows = hover(page, x, y)
    assert rows["JL [γ₀]"].startswith("NaN")
    assert rows["regime"] == "outside the model's domain"

def test_two_quick_clicks_both_register(page, server_and_grids):
    """A second click within 300 ms of the first reaches Bokeh as a double tap, not a tap;
    it must still select its point (it used to be lost: the benchmark's clicks timed out)."""
    url, rid, _ = server_and_grids
    open_map(page, f"{url}/explorer?dataset={rid}")
    first = page.evaluate(PAGE_XY, ["phasemap-map", -10.0, 3.0])
    second = page.evaluate(PAGE_XY, ["phasemap-map", 6.0, -4.0])
    page.mouse.click(*first)
    page.mouse.click(*second)  # no wait in between: well within the double-tap interval
    page.wait_for_function("() => { const m = Bokeh.documents[0].get_model_by_name("
                           "'crosshair'); return m && m.visible && m.location == 6; }",
                           timeout=60_000)
    info = deep_text(page, ".phasemap-point")
    assert "ε = 6" in info and "ΔV = -4" in info


def test_latency_benchmark_quick_mode_prints_every_interaction(tmp_path):
    """``benchmarks/explorer_latency.py --quick`` runs and reports each interaction beside
    its target (no wall-clock assert: the machine is shared; the figures are in the JSON)."""
    import json
    import os
    import subprocess
    import sys

    if not CHROMIUM.exists():
        pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium")
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "latency.json"
    env = {k: v for k, v in os.environ.items() if k != "PHASEMAP_STORE"}
    result = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "explorer_latency.py"), "--quick",
         "--repeat", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=1500, env=env, cwd=root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    names = [row["interaction"] for row in figures["rows"]]
    assert names == ["cold page load", "warm page load", "slider step (4-D dataset)",
                     "shown variable change", "lens change", "pan/zoom (1e6-point map)",
                     "zoom-in detail (1e6-point map)", "click to line plot",
                     "dataset switch"]
    for row in figures["rows"]:
        assert row["n"] >= 1 and row["median_ms"] > 0 and row["p95_ms"] >= row["median_ms"]
        line = next(ln for ln in result.stdout.splitlines()
                    if ln.startswith(f"| {row['interaction']} |"))
        assert f"| {row['target_ms']:.0f} |" in line  # the target beside the figure
    assert "load average before" in result.stdout
