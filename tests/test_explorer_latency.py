"""How the explorer buys its latency (issue #15), checked on real datasets in process:
which pans and zooms need new data, one read per plane however many threads ask, the
planes one slider step away read ahead, the first plane decoded at server start, and the
line plot through a click cut from the plane on screen with the values a fresh read gives.

Nothing here is timed (the machine is shared): the latency figures come from
``benchmarks/explorer_latency.py``.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasemap.models import get_model
from phasemap.service import explorer_logic as logic

# --- which windows need new data ---------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), pixels=st.integers(2, 64),
       a=st.floats(0.0, 1.0), b=st.floats(0.0, 1.0), regular=st.booleans())
def test_a_fresh_view_of_a_window_suffices_for_that_window(n, pixels, a, b, regular):
    coord = np.linspace(-3.0, 5.0, n) if regular else np.cumsum(np.linspace(1.0, 2.0, n))
    lo, hi = coord[0] + (coord[-1] - coord[0]) * min(a, b), \
        coord[0] + (coord[-1] - coord[0]) * max(a, b)
    if not hi > lo:
        hi = lo + 1e-3 * (coord[-1] - coord[0])
    axis = logic.screen_axis(coord, (lo, hi), pixels)
    assert logic.view_suffices(axis, coord, (lo, hi), pixels)


def test_zooming_past_the_views_resolution_or_extent_needs_new_data():
    coord = np.linspace(0.0, 999.0, 1000)  # 1000 stored points, a 100-pixel screen
    whole = logic.screen_axis(coord, None, 100)
    assert logic.view_suffices(whole, coord, (-50.0, 2000.0), 100)  # beyond the data: nothing
    assert logic.view_suffices(whole, coord, (100.0, 900.0), 100)  # 80 of 100 pixels: enough
    assert not logic.view_suffices(whole, coord, (300.0, 633.0), 100)  # a third: 33 pixels
    part = logic.screen_axis(coord, (300.0, 633.0), 100)
    assert not logic.view_suffices(part, coord, (200.0, 633.0), 100)  # beyond the view sent
    small = np.linspace(0.0, 9.0, 10)  # every stored point on screen: any zoom inside it
    full = logic.screen_axis(small, None, 100)
    assert logic.view_suffices(full, small, (2.2, 3.1), 100)


def test_neighbour_values_are_one_step_either_side():
    coords = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([0.5, 0.7])}
    assert logic.neighbour_values(coords, {"a": 2.0, "b": 0.5}) == [
        ("a", 3.0), ("a", 1.0), ("b", 0.7)]
    assert logic.neighbour_values(coords, {"a": 3.0}) == [("a", 2.0)]


# --- the session, in process ---------------------------------------------------------------

@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    from phasemap.service.api import DatasetCache
    from phasemap.store import Store
    from phasemap.store.core import compute

    root = tmp_path_factory.mktemp("latency") / "s"
    store = Store(root)
    spec = {"name": "latency test", "params": {"T": 7.5},
            "axes": {"eps": {"start": -20, "stop": 20, "num": 41},
                     "dV": {"start": -10, "stop": 10, "num": 31},
                     "dT": [1.0, 2.5, 5.0, 7.0]}}
    ds = compute(spec, store)
    return root, store, DatasetCache(store), ds


def _explorer(stored):
    from phasemap.service.config import ServiceConfig
    from phasemap.service.explorer import Explorer

    root, store, datasets, _ = stored
    return Explorer(ServiceConfig(store=str(root)), store, None, datasets)


def test_one_read_per_plane_however_many_threads_ask(stored):
    from phasemap.service.explorer import PlaneCache, read_plane

    *_, ds = stored
    model = get_model("single_level")
    cache = PlaneCache()
    go, calls = threading.Event(), []

    def load():
        calls.append(1)
        go.wait(60)
        return read_plane(ds, model, "eps", "dV", {"dT": 2.5})

    got, started = [], [threading.Event() for _ in range(4)]

    def ask(i):
        started[i].set()
        got.append(cache.get(("k",), load))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for e in started:
        e.wait(60)
    go.set()
    for t in threads:
        t.join(60)
    assert len(calls) == 1 and len(got) == 4 and all(p is got[0] for p in got)
    assert ("k",) in cache


def test_the_planes_one_slider_step_away_are_read_ahead(stored):
    from phasemap.service.explorer import PLANES, PREFETCH, read_plane

    ex = _explorer(stored)
    *_, ds = stored
    assert ex.state.fixed == {"dT": 5.0}  # the middle of 1, 2.5, 5, 7
    assert PREFETCH.idle(120)
    rid = ex.state.dataset
    for value in (2.5, 7.0):
        key = (rid, "eps", "dV", (("dT", value),))
        assert key in PLANES
        fresh = read_plane(ds, get_model("single_level"), "eps", "dV", {"dT": value})
        cached = PLANES.get(key, lambda: pytest.fail("not prefetched"))
        for name, values in fresh.arrays.items():
            np.testing.assert_array_equal(cached.arrays[name], values)
    # the step itself takes the prefetched plane
    key = (rid, "eps", "dV", (("dT", 7.0),))
    prefetched = PLANES.get(key, lambda: pytest.fail("not prefetched"))
    ex.sliders["dT"].value = 7.0
    assert ex.plane is prefetched and "ΔT = 7" in ex._title_model.text


def test_the_first_plane_is_decoded_at_server_start(stored):
    from phasemap.service.explorer import (
        PLANES,
        default_dataset,
        first_view_key,
        model_of,
        paper_map_ids,
        warm_explorer,
    )

    _root, store, datasets, _ = stored
    rid = default_dataset(store.requests(), paper_map_ids())  # what a new page opens
    ds = datasets.open(rid)
    key, x, y, fixed = first_view_key(ds, model_of(ds), rid)
    PLANES._items.pop(key, None)
    warm_explorer(store, datasets)
    assert key in PLANES
    warmed = PLANES.get(key, lambda: pytest.fail("not warmed"))
    ex = _explorer(stored)  # a new session shows exactly that plane, read nothing
    assert ex.plane is warmed
    assert (ex.state.x, ex.state.y, ex.state.fixed) == (x, y, fixed)


def test_pans_inside_the_view_send_nothing_and_zooms_past_it_send_stored_points(stored):
    from bokeh.events import RangesUpdate

    *_, ds = stored
    ex = _explorer(stored)
    serial, view = ex.fig.tags[0], ex.view  # 41 x 31 points: the whole plane, one pixel each
    ex._on_ranges(RangesUpdate(ex.fig, x0=-12.0, x1=3.0, y0=-4.0, y1=6.0))
    assert ex.fig.tags[0] == serial and ex.view is view
    assert ex.state.window == ((-12.0, 3.0), (-4.0, 6.0))  # the next plane uses the window
    ex.sliders["dT"].value = 2.5
    assert ex.fig.tags[0] > serial and ex.view.ax.lo <= -12.0 and ex.view.ax.hi >= 3.0
    serial = ex.fig.tags[0]
    ex._on_ranges(RangesUpdate(ex.fig, x0=-30.0, x1=30.0, y0=-15.0, y1=15.0))  # zoom out
    assert ex.fig.tags[0] > serial
    j_l = ds["J_L"].sel(dT=2.5).transpose("dV", "eps").values
    xs, ys = ex.view.data["xs"][0], ex.view.data["ys"][0]
    assert xs.size == 41 and ys.size == 31
    np.testing.assert_array_equal(ex.view.column("J_L"), j_l)
    regime = ds["regime"].sel(dT=2.5).transpose("dV", "eps").values
    np.testing.assert_array_equal(ex.view.data["regime"][0], regime)  # the lens, as sent


def test_the_line_through_a_click_has_the_values_of_a_fresh_read(stored):
    from bokeh.events import DoubleTap, Tap

    *_, ds = stored
    ex = _explorer(stored)
    ex._on_tap(Tap(ex.fig, x=-10.2, y=3.1))
    dv = float(ds.dV.sel(dV=3.1, method="nearest"))  # one pixel per point: the nearest
    sel = ds.sel(dV=dv, dT=5.0)
    assert ex.state.tapped == {"eps": -10.0, "dV": dv}
    assert ex.crosshair.visible and ex.crosshair.location == -10.0
    names = [q for q in get_model("single_level").quantities
             if get_model("single_level").output(q).signed]
    for q, r in ex.line_renderers.items():
        if q in names:
            np.testing.assert_array_equal(r.data_source.data["y"], sel[q].values)
            np.testing.assert_array_equal(r.data_source.data["x"], sel["eps"].values)
    assert ex.line_marks.data["y"] == [float(sel[q].sel(eps=-10.0)) for q in names]
    # a second click within Bokeh's double-tap interval arrives as a DoubleTap only, a
    # click held over 300 ms as a PressUp only: the server listens to all three
    assert {"tap", "doubletap", "pressup"} <= set(ex.fig.subscribed_events)
    ex._on_tap(DoubleTap(ex.fig, x=4.1, y=-2.2))
    assert ex.state.tapped == {"eps": 4.0,
                               "dV": float(ds.dV.sel(dV=-2.2, method="nearest"))}
    assert ex.crosshair.location == 4.0


def test_a_dataset_switch_folded_into_another_redraw_keeps_its_axes(stored):
    """A switch requested while another view is being drawn is folded into the next draw;
    that draw must still reset the ranges to the new dataset (not keep the old window)."""
    from phasemap.store.core import compute

    _root, store, _datasets, _ = stored
    other = compute({"name": "latency other", "params": {"T": 7.5, "dT": 2.0},
                     "axes": {"eps": {"start": 40, "stop": 60, "num": 21},
                              "dV": {"start": 1, "stop": 2, "num": 11}}}, store)
    ex = _explorer(stored)
    rid = next(r["id"] for r in store.requests() if r["spec"].get("name") == "latency other")
    assert ex.fig.x_range.start < 0  # the first dataset: eps from -20
    ex._lock.acquire()  # a draw in progress in another thread
    try:
        ex.open_dataset(rid)  # its redraw is folded: nothing drawn yet
    finally:
        ex._lock.release()
    ex.request_draw(style_only=True)  # the next request draws the latest state
    eps = other["eps"].values
    assert ex.fig.x_range.start == pytest.approx(eps[0] - 0.5)
    assert ex.fig.x_range.end == pytest.approx(eps[-1] + 0.5)
    assert ex.fig.xaxis[0].axis_label.startswith("ε")
    assert "latency other" in ex._title_model.text


def test_sliders_are_reused_across_datasets_and_still_redraw(stored):
    from phasemap.store.core import compute

    _root, store, _datasets, ds = stored
    compute({"name": "latency third", "params": {"T": 7.5},
             "axes": {"eps": {"start": -5, "stop": 5, "num": 11},
                      "dV": {"start": -1, "stop": 1, "num": 5}, "dT": [0.5, 1.5, 3.0]}},
            store)
    ex = _explorer(stored)
    first = next(r["id"] for r in store.requests() if r["spec"].get("name") == "latency test")
    third = next(r["id"] for r in store.requests() if r["spec"].get("name") == "latency third")
    ex.open_dataset(first)
    slider = ex.sliders["dT"]
    ex.open_dataset(third)
    assert ex.sliders["dT"] is slider and slider.options == [0.5, 1.5, 3.0]
    assert ex.state.fixed == {"dT": 1.5}
    serial = ex.fig.tags[0]
    slider.value = 3.0  # the reused widget still drives the map
    assert ex.fig.tags[0] > serial and ex.state.fixed == {"dT": 3.0}
    assert "ΔT = 3" in ex._title_model.text
    ex.open_dataset(first)
    assert ex.sliders["dT"] is slider and slider.options == [1.0, 2.5, 5.0, 7.0]
    assert ex.plane.arrays["J_L"].shape == (31, 41)
    np.testing.assert_array_equal(
        ex.plane.arrays["J_L"], ds["J_L"].sel(dT=ex.state.fixed["dT"]).transpose("dV", "eps"))


def test_a_view_sends_what_is_drawn_and_a_variable_change_one_column(stored):
    """A view carries the labels, the mask and the shown quantity only; changing the shown
    quantity sends that one column as a data patch into the source on screen (not a new
    source, not every output), with the values of a fresh read."""
    from bokeh.document import Document
    from bokeh.document.events import ColumnDataChangedEvent, ModelChangedEvent

    *_, ds = stored
    model = get_model("single_level")
    ex = _explorer(stored)
    doc = Document()
    doc.add_root(ex.fig)
    events: list = []
    doc.on_change(events.append)
    fixed = {"eps", "dV"}  # the map's axes (dT is on the slider)
    assert fixed == {ex.state.x, ex.state.y}
    sent = set(ex.source.data)
    assert sent == {*model.labels, "masked", "xs", "ys", "x", "y", "dw", "dh"}
    source = ex.source
    ex.shown.value = "Q_L"
    data = [e for e in events if getattr(e, "model", None) is source and (
        isinstance(e, ColumnDataChangedEvent)
        or (isinstance(e, ModelChangedEvent) and e.attr == "data"))]
    assert len(data) == 1 and isinstance(data[0], ColumnDataChangedEvent)
    assert data[0].model is source and list(data[0].cols) == ["Q_L"]
    fresh = ds["Q_L"].sel(dT=ex.state.fixed["dT"]).transpose("dV", "eps").values
    np.testing.assert_array_equal(ex.source.data["Q_L"][0], fresh)
    assert ex.image.glyph.image == "Q_L" and "@{Q_L}" in ex.hover.tooltips
    assert "@{J_L}" not in ex.hover.tooltips and "@{regime}" in ex.hover.tooltips
    ex.sliders["dT"].value = 2.5  # a new view: the shown quantity, labels, mask only
    assert set(ex.source.data) == {"Q_L", *model.labels, "masked", "xs", "ys", "x", "y",
                                   "dw", "dh"}
    np.testing.assert_array_equal(
        ex.source.data["Q_L"][0], ds["Q_L"].sel(dT=2.5).transpose("dV", "eps").values)


def test_the_clicked_points_record_holds_every_value_exactly(stored):
    """The hover shows only the shown quantity; the record under the map after a click
    has every output of the point, as the shortest round-trip decimal of the stored value."""
    import re

    from bokeh.events import Tap

    *_, ds = stored
    model = get_model("single_level")
    ex = _explorer(stored)
    ex._on_tap(Tap(ex.fig, x=-10.2, y=3.1))
    record = dict(re.findall(r'data-name="([^"]+)" data-value="([^"]+)"',
                             ex.point_info.object))
    sel = ds.sel(eps=-10.0, dT=5.0).sel(dV=3.1, method="nearest").compute()
    for q in model.quantities:
        assert float(record[q]) == float(sel[q]) or (np.isnan(float(sel[q]))
                                                    and record[q] == "NaN"), q
    assert float(record["eps"]) == -10.0 and record["eps"] == "-10"
    flags = model.output("regime").flags
    assert record["regime"] == logic.legend_text(flags[int(sel["regime"])])

