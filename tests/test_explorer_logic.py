"""The explorer's decisions without a browser (``phasemap.service.explorer_logic``) and the
data it sends (``read_plane``, ``make_view``, ``render_view``), checked on real datasets.

A model with other parameters and outputs than the single dot is declared here (not
registered) to check that nothing in the explorer's logic assumes the dot's names.
"""

from __future__ import annotations

import math
import re
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasemap.errors import ParameterError
from phasemap.grid import GridSpec
from phasemap.models import Constraint, Model, Output, Parameter, get_model
from phasemap.regimes import REGIME_LABELS
from phasemap.service import explorer_logic as logic


def _toy_kernel(omega, kappa):
    x = np.asarray(omega) * np.asarray(kappa)
    return {"flux": x, "noise": x * x, "phase": np.where(x > 0, 1, 0).astype(np.int8)}


TOY = Model(
    name="toy_for_explorer",
    version="0",
    description="a model with its own names",
    parameters=(Parameter("omega", "E0", 1.0, description="drive frequency"),
                Parameter("kappa", "gamma0", 0.5, lower=0.0, lower_open=True,
                          description="coupling"),),
    kernel=_toy_kernel,
    outputs=(Output("flux", units="gamma0", symbol="Φ_x", long_name="a flux"),
             Output("noise", units="gamma0", symbol="S", signed=False),
             Output("phase", dtype="i1", flags=("quiet_dark_phase", "bright"))),
    constraints=(Constraint(("omega", "kappa"), lambda omega, kappa: omega > 10 * kappa,
                            "omega <= 10 kappa"),),
)


# --- names --------------------------------------------------------------------------------

def test_long_labels_are_abbreviated_and_spelled_out():
    assert logic.abbreviation("absolute_negative_mobility") == "ANM"
    assert logic.abbreviation("reverse_heat_transport") == "RHT"
    assert logic.abbreviation("anomalous_thermodiffusion") == "AT"
    assert logic.abbreviation("heat_engine") == "heat engine"
    assert logic.abbreviation("conventional") == "conventional"
    assert logic.legend_text("absolute_negative_mobility") == "ANM: absolute negative mobility"
    assert logic.legend_text("joule_heating") == "joule heating"
    # distinct labels of the paper's lens stay distinct on the map
    shorts = [logic.abbreviation(lab) for lab in REGIME_LABELS]
    assert len(set(shorts)) == len(shorts)


def test_symbols_and_units_are_typeset():
    assert logic.typeset_units("E0 gamma0") == "E₀ γ₀"
    assert logic.typeset_units("1") == "" and logic.typeset_units(None) == ""
    assert logic.typeset_symbol("J_L", html=True) == "J<sub>L</sub>"
    assert logic.typeset_symbol("gamma_L") == "γ_L"
    sl = get_model("single_level")
    assert logic.quantity_label(sl.attrs_of("dT"), "dT") == "ΔT [E₀]"
    assert logic.quantity_label(sl.attrs_of("Q_L"), "Q_L", html=True) == \
        "Q<sub>L</sub> [E₀ γ₀]"
    assert logic.quantity_label(TOY.attrs_of("flux"), "flux") == "Φ_x [γ₀]"


# --- axes and datasets ---------------------------------------------------------------------

def test_default_axes_follow_the_model_order_and_the_largest_other_axis():
    order = get_model("single_level").param_names
    assert logic.default_axes({"eps": 41, "dV": 21, "dT": 2}, order) == ("eps", "dV")
    assert logic.default_axes({"T": 10, "dT": 11}, order) == ("T", "dT")
    assert logic.default_axes({"dV": 5, "eps": 1}, order) == ("dV", None)
    assert logic.default_axes({"eps": 1}, order) == (None, None)
    assert logic.default_axes({"kappa": 3, "omega": 9}, TOY.param_names) == ("omega", "kappa")
    assert logic.other_axes({"eps": 41, "dV": 21, "dT": 2, "T": 1}, "eps", "dV") == ["dT"]


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]),
                       st.integers(1, 50), min_size=0, max_size=5),
       st.permutations(["e", "d", "c", "b", "a"]))
def test_default_axes_are_two_different_dims_with_several_values(sizes, order):
    x, y = logic.default_axes(sizes, order)
    multi = [d for d, n in sizes.items() if n > 1]
    assert (x is None) == (not multi)
    assert (y is None) == (len(multi) < 2)
    if y is not None:
        assert x != y and sizes[x] > 1 and sizes[y] > 1
        assert sizes[y] == max(sizes[d] for d in multi if d != x)


def test_axis_swap_keeps_the_axes_different():
    opts = ["eps", "dV", "dT"]
    assert logic.swap_if_equal("dV", "dV", "x", opts) == ("dV", "eps")
    assert logic.swap_if_equal("eps", "eps", "y", opts) == ("dV", "eps")
    assert logic.swap_if_equal("eps", "dV", "x", opts) == ("eps", "dV")


def test_dataset_menu_names_the_fixed_parameters():
    record = {"id": "abc", "dims": ["eps", "dV", "T"], "shape": [41, 21, 1],
              "spec": {"name": "paper map", "params": {"gamma_L": 2.0},
                       "axes": {"eps": {"start": -20, "stop": 20, "num": 41},
                                "dV": {"start": -10, "stop": 10, "num": 21}, "T": [7.5]}}}
    assert logic.describe_dataset(record) == "paper map (eps 41 × dV 21; gamma_L = 2, T = 7.5)"
    long = dict(record, spec=dict(record["spec"], name="x" * 5000))
    assert len(logic.describe_dataset(long)) < 120


# --- the form ------------------------------------------------------------------------------

def test_form_fields_come_from_the_models_parameters():
    fields = logic.form_fields(TOY)
    assert [f.name for f in fields] == ["omega", "kappa"]
    assert fields[1].label == "kappa [γ₀] (kappa)"
    assert "coupling" in fields[1].help and "(0, inf)" in fields[1].help
    sl = logic.form_fields(get_model("single_level"))
    assert [f.name for f in sl] == list(get_model("single_level").param_names)
    assert sl[1].default == 7.5


def test_form_parsing_gives_a_spec_the_one_validation_path_accepts():
    sl = get_model("single_level")
    spec = logic.parse_form(sl, {"eps": "-20:20:81", "T": "7.5", "dT": "2.5, 5", "dV": ""},
                            name="  my grid  ")
    assert spec == {"model": "single_level", "params": {"T": 7.5},
                    "axes": {"eps": {"start": -20.0, "stop": 20.0, "num": 81},
                             "dT": [2.5, 5.0]}, "name": "my grid"}
    grid = GridSpec.from_dict(spec)
    assert set(grid.dims) == {"eps", "dT"} and grid.size == 162
    with pytest.raises(ParameterError) as err:
        logic.parse_form(sl, {"T": "seven"})
    assert err.value.param == "T" and err.value.value == "seven"
    with pytest.raises(ParameterError) as err:
        logic.parse_form(sl, {"omega": "1"})
    assert err.value.param == "omega"
    assert logic.parse_form(TOY, {"omega": "1:2:3"})["axes"] == {
        "omega": {"start": 1.0, "stop": 2.0, "num": 3}}


# --- what is sent -------------------------------------------------------------------------

def test_a_small_regular_axis_is_sent_whole_one_pixel_per_point():
    c = np.linspace(-20, 20, 41)
    a = logic.screen_axis(c, None, 320)
    assert np.array_equal(a.index, np.arange(41))
    assert (a.lo, a.hi) == (-20.5, 20.5)
    for k, v in enumerate(c):
        assert a.stored_index(v) == k
        assert a.stored_index(v + 0.49) == k


@settings(max_examples=80, deadline=None)
@given(n=st.integers(2, 3000), pixels=st.integers(10, 400),
       w0=st.floats(0, 1), w1=st.floats(0, 1), regular=st.booleans(), seed=st.integers(0, 99))
def test_every_pixel_shows_the_stored_point_whose_cell_holds_it(n, pixels, w0, w1, regular,
                                                              seed):
    rng = np.random.default_rng(seed)
    c = np.linspace(-3.0, 7.0, n) if regular else np.sort(rng.uniform(-3, 7, n))
    if np.any(np.diff(c) <= 0):
        return
    edges = logic.cell_edges(c)
    lo = edges[0] + (edges[-1] - edges[0]) * min(w0, w1)
    hi = edges[0] + (edges[-1] - edges[0]) * max(w0, w1)
    a = logic.screen_axis(c, (lo, hi) if hi > lo else None, pixels)
    assert 1 <= a.n <= max(pixels, 4 * n)
    assert a.index.min() >= 0 and a.index.max() < n
    width = (a.hi - a.lo) / a.n
    for j in range(0, a.n, max(1, a.n // 25)):
        centre = a.lo + (j + 0.5) * width
        assert a.pixel(centre) == j  # Bokeh's hover and the click find the same pixel
        k = a.index[j]
        assert edges[k] <= centre + 1e-9 * (1 + abs(centre))
        assert centre <= edges[k + 1] + 1e-9 * (1 + abs(centre))


def test_color_limits_are_centred_on_zero_for_signed_quantities():
    v = np.array([[-0.2, 0.05], [np.nan, 0.1]])
    assert logic.color_limits(v, signed=True) == (-0.2, 0.2)
    assert logic.color_limits(v, signed=False) == (-0.2, 0.1)
    assert logic.color_limits(np.zeros(3), signed=True) == (-1.0, 1.0)
    assert logic.color_limits(np.full(3, np.nan), signed=False) == (0.0, 1.0)


def test_present_codes_and_points_without_a_label():
    assert logic.present_codes(np.array([[3, 3], [0, 3]], dtype=np.int8), 9) == ([0, 3], False)
    assert logic.present_codes(np.array([-1, 2, 2], dtype=np.int8), 9) == ([2], True)


def test_domain_mask_is_the_models_constraint_and_ranges():
    sl = get_model("single_level")
    T = np.linspace(1, 10, 10)[:, None]
    dT = np.linspace(-10, 10, 21)[None, :]
    bad = logic.domain_mask(sl, {"T": T, "dT": dT})
    assert np.array_equal(bad, np.abs(dT) >= 2 * T)
    bad = logic.domain_mask(TOY, {"omega": np.array([1.0, 6.0, 2.0]),
                                  "kappa": np.array([0.5, 0.5, -1.0])})
    assert bad.tolist() == [False, True, True]
    assert "|dT| < 2 T" in logic.domain_text(sl)


def test_slice_export_link_fixes_the_other_dimensions():
    url = logic.slice_query("abc123", {"dT": 2.5, "T": 0.1}, "netcdf")
    parsed = urlparse(url)
    assert parsed.path == "/api/grids/abc123/slice"
    q = parse_qs(parsed.query)
    assert q == {"dT": ["2.5"], "T": ["0.1"], "format": ["netcdf"]}
    assert float(q["T"][0]) == 0.1  # repr keeps the grid value exact


# --- real datasets: the (T, dT) plane, the view and its export -----------------------------

@pytest.fixture(scope="module")
def t_dt_plane(tmp_path_factory):
    from phasemap.service.explorer import read_plane
    from phasemap.store import Store
    from phasemap.store.core import compute

    store = Store(tmp_path_factory.mktemp("store") / "s")
    ds = compute({"name": "T-dT", "axes": {"T": {"start": 1, "stop": 10, "num": 10},
                                           "dT": {"start": -10, "stop": 10, "num": 21}},
                  "params": {"eps": -5.0, "dV": 1.0}}, store)
    return ds, read_plane(ds, get_model("single_level"), "dT", "T", {})


def test_a_t_dt_grid_is_accepted_and_its_invalid_corner_masked(t_dt_plane):
    _, plane = t_dt_plane
    T, dT = plane.ys[:, None], plane.xs[None, :]
    expected = np.abs(dT) >= 2 * T
    assert expected.any() and not expected.all()
    assert np.array_equal(plane.invalid, expected)
    assert np.array_equal(np.isnan(plane.arrays["J_L"]), expected)  # the store's own mask
    for lens in ("regime", "machine"):
        assert (plane.arrays[lens][expected] == -1).all()
        assert (plane.arrays[lens][~expected] >= 0).all()
    with pytest.raises(ParameterError):  # a grid with no valid point is still refused
        GridSpec.from_dict({"axes": {"T": [1.0], "dT": [3.0, 4.0]}})


def test_the_view_holds_exact_stored_points(t_dt_plane):
    from phasemap.service.explorer import make_view

    ds, plane = t_dt_plane
    view = make_view(plane, ((-4.2, 6.9), (2.1, 8.7)), pixels=(7, 5), columns=("J_L",))
    # only what is drawn or hovered is sent: the shown quantity, the labels, the mask
    labels = set(get_model("single_level").labels)
    assert set(view.data) == {"J_L", *labels, "masked", "xs", "ys", "x", "y", "dw", "dh"}
    j_l = ds["J_L"].transpose("T", "dT").values
    for j in range(view.ax.n):
        for i in range(view.ay.n):
            x, y = view.data["xs"][0][j], view.data["ys"][0][i]
            k, m = int(np.argmin(np.abs(ds.dT.values - x))), int(np.argmin(np.abs(ds.T.values - y)))
            stored = j_l[m, k]
            shown = view.data["J_L"][0][i, j]
            assert (math.isnan(stored) and math.isnan(shown)) or stored == shown
            q_l = ds["Q_L"].transpose("T", "dT").values[m, k]  # not sent: cut on demand
            cut = view.column("Q_L")[i, j]
            assert (math.isnan(q_l) and math.isnan(cut)) or q_l == cut


def test_render_view_writes_each_format(t_dt_plane):
    from phasemap.service.explorer import make_view, render_view

    _, plane = t_dt_plane
    view = make_view(plane, None)
    sl = get_model("single_level")
    heads = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}
    for shown in ("regime", "J_L"):
        for fmt, head in heads.items():
            data = render_view(view, sl, shown, "ΔT [E₀]", "T [E₀]", "J_L", "title", fmt)
            assert data.startswith(head), (shown, fmt)
    with pytest.raises(ParameterError):
        render_view(view, sl, "J_L", "", "", "", "", "jpeg")


def test_a_pan_inside_a_full_resolution_view_needs_no_new_data(t_dt_plane):
    from phasemap.service.explorer import covers, make_view

    _, plane = t_dt_plane
    whole = make_view(plane, None)  # 21 x 10 points: sent whole, one pixel each
    assert covers(whole, plane, ((-5.0, 5.0), (2.0, 6.0)))
    assert covers(whole, plane, ((-30.0, 5.0), (2.0, 6.0)))  # beyond the grid: nothing new
    part = make_view(plane, ((-5.0, 5.0), (2.0, 6.0)))
    assert not covers(part, plane, ((-8.0, 5.0), (2.0, 6.0)))  # beyond the data sent
    coarse = make_view(plane, None, pixels=(7, 5))  # every third point: zooming needs more
    assert not covers(coarse, plane, ((-5.0, 5.0), (2.0, 6.0)))


def test_every_shown_variable_is_drawn_with_its_colour_map(tmp_path):
    """The session's explorer, in process: each shown variable gives a new view with a
    valid palette, centred on 0 when the model declares the output signed."""
    from phasemap.service.api import DatasetCache
    from phasemap.service.config import ServiceConfig
    from phasemap.service.explorer import Explorer
    from phasemap.store import Store
    from phasemap.store.core import compute

    store = Store(tmp_path / "s")
    compute({"name": "small", "params": {"T": 7.5},
             "axes": {"eps": {"start": -20, "stop": 20, "num": 21},
                      "dV": {"start": -10, "stop": 10, "num": 11}, "dT": [2.5, 5.0]}}, store)
    ex = Explorer(ServiceConfig(store=str(tmp_path / "s")), store, None, DatasetCache(store))
    model = get_model("single_level")
    assert list(ex.shown.options.values()) == ["labels", *model.quantities]
    for name in model.quantities:
        before = ex.fig.tags[0]
        ex.shown.value = name
        assert ex.fig.tags[0] > before and not ex.message.visible, ex.message.object
        assert all(re.fullmatch(r"#[0-9a-fA-F]{6}", c) for c in ex.mapper.palette)
        if model.output(name).signed:
            assert ex.mapper.low == -ex.mapper.high < 0
        assert ex.colorbar.visible and ex.image.glyph.image == name
    ex.shown.value = "labels"
    assert not ex.colorbar.visible and ex.image.glyph.image == "regime"
