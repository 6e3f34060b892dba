"""phasemap.plot: what the renderers say (labels, colours, bands, curves), not pixels."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import phasemap
from phasemap.errors import ParameterError
from phasemap.plot import (
    LABEL_COLORS,
    _hv,
    color_of,
    elements,
    legend_entries,
    line_plot,
    palette,
    phase_map,
    regime_bands,
    spans_of,
    threshold_lines,
    value_map,
)
from phasemap.plot.colors import LABEL_TEXT
from phasemap.regimes import LENSES, REGIME_LABELS

hv = pytest.importorskip("holoviews")

T, DT = 7.5, 5.0


@pytest.fixture(scope="module")
def eps_dv():
    return phasemap.evaluate(eps=np.arange(-200, 201) / 10, dV=np.arange(-200, 201) / 10,
                             T=T, dT=DT)


@pytest.fixture(scope="module")
def eps_dt():
    return phasemap.evaluate(eps=np.arange(-200, 201) / 10, dT=np.arange(-148, 149) / 10,
                             T=T, dV=5.0)


def _edges(bands):
    return [b.stop for b in bands[:-1]]


# --- import weight and colours -----------------------------------------------------------

def test_import_phasemap_and_plot_stay_light():
    code = ("import sys, phasemap, phasemap.plot; from phasemap.plot import regime_bands; "
            "print(sorted(m for m in ('holoviews', 'bokeh', 'matplotlib', 'datashader') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("lens", list(LENSES))
def test_palette_is_fixed_complete_and_distinct(lens):
    labels = LENSES[lens]
    colors = palette(lens)
    assert len(colors) == len(labels)
    assert len(set(colors)) == len(colors)  # distinguishable within a lens
    for code, label in enumerate(labels):
        assert colors[code] == LABEL_COLORS[label] == color_of(label)
    with pytest.raises(ParameterError):
        palette("nope")


def test_same_physics_same_colour_across_lenses():
    assert color_of("heat_engine") in palette("regime") and color_of("heat_engine") in \
        palette("machine")
    assert color_of("heater") == color_of("joule_heating")


# --- bands along a line --------------------------------------------------------------------

@pytest.mark.parametrize(("dV", "labels", "edges"), [
    (5.0, ["absolute_negative_mobility", "reverse_heat_transport", "joule_heating",
           "conventional"], [-7.5, -2.5, 2.5]),
    (-5.0, ["conventional", "joule_heating", "refrigerator", "heat_engine"],
     [-2.5, 2.5, 7.5]),
])
@pytest.mark.parametrize("num", [801, 333])  # on the grid, and between grid points
def test_bands_of_figs_8_and_9_are_exact(dV, labels, edges, num):
    ds = phasemap.evaluate(eps=np.linspace(-20, 20, num), T=T, dT=DT, dV=dV)
    bands = regime_bands(ds, "eps")
    assert [b.label for b in bands] == labels
    np.testing.assert_allclose(_edges(bands), edges, atol=1e-9, rtol=0)
    assert bands[0].start == -20 and bands[-1].stop == 20
    assert all(b.exact for b in bands)


def test_machine_lens_shows_anm_is_an_engine_and_rht_a_refrigerator():
    ds = phasemap.evaluate(eps=np.linspace(-20, 20, 801), T=T, dT=DT, dV=5.0)
    bands = regime_bands(ds, "eps", "machine")
    assert [b.label for b in bands] == ["heat_engine", "refrigerator", "heater", "accelerator"]
    np.testing.assert_allclose(_edges(bands), [-7.5, -2.5, 2.5], atol=1e-9, rtol=0)


def test_band_edges_along_forces_match_closed_forms():
    a = phasemap.evaluate(dT=np.linspace(0, 14.9, 1000), T=T, eps=-15.0, dV=5.0)
    b = phasemap.evaluate(dV=np.linspace(0, 20, 777), T=T, eps=-15.0, dT=DT)
    ba, bb = regime_bands(a, "dT"), regime_bands(b, "dV")
    assert [x.label for x in ba] == ["reverse_heat_transport", "absolute_negative_mobility"]
    assert [x.label for x in bb] == ["absolute_negative_mobility", "reverse_heat_transport"]
    assert abs(ba[1].start - 2.5) < 1e-9 and abs(bb[0].stop - 10.0) < 1e-9


def test_bands_need_a_line():
    ds = phasemap.evaluate(eps=[-1.0, 1.0], dV=[1.0, 2.0], T=T, dT=DT)
    with pytest.raises(ParameterError, match="dV"):
        regime_bands(ds, "eps")
    assert [b.label for b in regime_bands(ds, "eps", dV=1.0)] == ["reverse_heat_transport",
                                                                  "conventional"]
    with pytest.raises(ParameterError, match="a value on the grid"):
        regime_bands(ds, "eps", dV=1.5)


# --- threshold curves ---------------------------------------------------------------------

def test_threshold_lines_trace_dv_th_and_the_rht_window(eps_dv):
    (jl,) = threshold_lines(eps_dv, "eps", "dV", "J_L")
    np.testing.assert_allclose(jl[:, 1], -jl[:, 0] * DT / T, atol=1e-7)  # ΔV_th, ε_r line
    qr = np.concatenate(threshold_lines(eps_dv, "eps", "dV", "Q_R"))
    on_j = np.abs(qr[:, 1] + qr[:, 0] * DT / T) < 1e-6
    on_mu_r = np.abs(qr[:, 1] + 2 * qr[:, 0]) < 1e-6  # ε = μ_R = -ΔV/2
    assert (on_j | on_mu_r).all() and on_j.sum() > 100 and on_mu_r.sum() > 100


def test_threshold_lines_along_either_axis(eps_dt):
    lines = threshold_lines(eps_dt, "eps", "dT", "J_L")  # ΔT_th(ε) = TΔV/(μ − ε)
    pts = np.concatenate(lines)
    np.testing.assert_allclose(pts[:, 1], T * 5.0 / (-pts[:, 0]), rtol=1e-7)
    pts = np.concatenate(threshold_lines(eps_dt, "eps", "dT", "Q_L", along="eps"))
    vertical = np.abs(pts[:, 0] - 2.5) < 1e-7  # ε = μ_L
    assert vertical.sum() == eps_dt.sizes["dT"]


# --- phase maps -----------------------------------------------------------------------------

@pytest.mark.parametrize("lens", ["regime", "machine"])
def test_phase_map_legend_lists_exactly_the_labels_present_in_fixed_colours(eps_dv, lens):
    pm = phase_map(eps_dv, "eps", "dV", lens)
    codes = np.unique(eps_dv[lens].values)
    legend = legend_entries(pm)
    assert list(legend) == [LENSES[lens][c] for c in codes]
    assert all(legend[label] == color_of(label) for label in legend)
    (img,) = elements(pm, hv.Image)
    for backend in _hv.BACKENDS:
        assert list(_hv.option(img, "cmap", backend)) == palette(lens)
        assert tuple(_hv.option(img, "clim", backend)) == (-0.5, len(LENSES[lens]) - 0.5)
    assert img.kdims[0].label == "ε [E0]" and img.kdims[1].label == "ΔV [E0]"


def test_phase_map_of_a_corner_lists_only_its_labels(eps_dv):
    corner = eps_dv.sel(eps=slice(-20, -12), dV=slice(1, 5))
    pm = phase_map(corner, "eps", "dV", thresholds=False)
    assert list(legend_entries(pm)) == ["absolute_negative_mobility"]


def test_phase_map_threshold_curves_are_labelled_paths(eps_dv):
    pm = phase_map(eps_dv, "eps", "dV")
    paths = [el for el in elements(pm, hv.Path) if el.group == "Threshold"]
    assert [p.label for p in paths] == ["ΔV_th (J_L = 0)", "Q_R = 0 (RHT window edges)",
                                        "Q_L = 0"]
    (first,) = paths[0].split()
    x, y = first.dimension_values(0), first.dimension_values(1)
    np.testing.assert_allclose(y, -x * DT / T, atol=1e-7)


def test_phase_map_selects_other_dims_and_explains_bad_requests():
    ds = phasemap.evaluate(eps=np.linspace(-10, 10, 21), dV=np.linspace(-5, 5, 11),
                           T=[5.0, 7.5], dT=DT)
    with pytest.raises(ParameterError, match="T"):
        phase_map(ds, "eps", "dV")
    pm = phase_map(ds, "eps", "dV", T=7.5, thresholds=False)
    (img,) = elements(pm, hv.Image)
    assert img.data["regime"].shape == (11, 21)
    with pytest.raises(ParameterError, match="lens"):
        phase_map(ds, "eps", "dV", "colour", T=7.5)
    with pytest.raises(ParameterError):
        phase_map(ds, "eps", "mu", T=7.5)


def _stripes(n_y: int, n_x: int) -> xr.Dataset:
    """Alternating single-pixel columns of ANM (3) and conventional (8): their mean, 5.5,
    would round to heat_engine or refrigerator, labels that occur nowhere."""
    codes = np.where(np.arange(n_x) % 2 == 0, 3, 8).astype(np.int8)
    data = np.broadcast_to(codes, (n_y, n_x)).copy()
    data[: n_y // 3] = 7  # a band of joule_heating as well
    eps = np.linspace(-20, 20, n_x)
    dV = np.linspace(-20, 20, n_y)
    return xr.Dataset({"regime": (("dV", "eps"), data)}, coords={"eps": eps, "dV": dV},
                      attrs={"model": "single_level"})


def test_rasterized_maps_hold_only_valid_codes_never_averages(eps_dv):
    ds = _stripes(300, 450)
    pm = phase_map(ds, "eps", "dV", thresholds=False, max_pixels=50_000, width=150,
                   height=100)
    (img,) = elements(pm, hv.Image)
    codes = img.dimension_values("regime")
    assert img.data["regime"].shape == (100, 150)  # reduced on the way to the browser
    assert set(np.unique(codes[np.isfinite(codes)]).astype(int)) <= {3, 7, 8}
    assert set(legend_entries(pm)) == {"absolute_negative_mobility", "joule_heating",
                                       "conventional"}
    # a real map above the threshold (401 x 401 > 100,000 cells)
    pm = phase_map(eps_dv, "eps", "dV", thresholds=False, max_pixels=100_000)
    (img,) = elements(pm, hv.Image)
    assert img.data["regime"].size <= phasemap.plot.maps.WIDTH * phasemap.plot.maps.HEIGHT
    shown = set(np.unique(img.dimension_values("regime")).astype(int))
    assert shown <= set(np.unique(eps_dv.regime.values).tolist())
    assert {3, 4, 5, 6, 7, 8} <= shown  # every label covering an area survives
    assert phasemap.plot.MAX_PIXELS >= 10**6  # the default keeps paper-sized maps exact


def test_points_without_a_label_are_blank_and_unlisted():
    ds = phasemap.evaluate(eps=np.linspace(-20, 20, 81), dV=np.linspace(-20, 20, 41),
                           T=T, dT=DT)
    codes = ds.regime.values.copy()
    codes[:10, :] = -1  # first 10 eps: what the store writes outside a domain
    ds = ds.assign(regime=(ds.regime.dims, codes))
    pm = phase_map(ds, "eps", "dV", thresholds=False)
    (img,) = elements(pm, hv.Image)
    shown = img.dimension_values("regime")
    assert np.isnan(shown).sum() == 10 * 41
    assert set(legend_entries(pm)) == {REGIME_LABELS[c] for c in np.unique(codes) if c >= 0}
    line = ds.sel(dV=5.0)
    bands = regime_bands(line, "eps")
    # no band over the gap; its edge is not a sign change, so it is a grid midpoint
    assert bands[0].start == float(ds.eps[9] + ds.eps[10]) / 2 and not bands[0].exact
    assert [b.label for b in bands] == ["absolute_negative_mobility", "reverse_heat_transport",
                                        "joule_heating", "conventional"]


def test_value_map_has_colorbar_and_units(eps_dv):
    vm = value_map(eps_dv, "s", "eps", "dV", thresholds=["J_L"])
    (img,) = elements(vm, hv.Image)
    assert _hv.option(img, "colorbar", "bokeh") is True
    assert img.vdims[0].label == "σ [gamma0]"
    assert float(np.nanmin(img.dimension_values("s"))) >= 0.0
    with pytest.raises(ParameterError):
        value_map(eps_dv, "regime", "eps", "dV")


# --- line plots -------------------------------------------------------------------------------

def test_line_plot_shades_the_bands_it_computes():
    ds = phasemap.evaluate(eps=np.linspace(-20, 20, 801), T=T, dT=DT, dV=5.0)
    lp = line_plot(ds, "eps")
    assert len(lp) == 4  # one panel per variable
    expected = [(b.label, b.start, b.stop) for b in regime_bands(ds, "eps")]
    panel = next(iter(lp))
    assert spans_of(panel) == expected
    legend = legend_entries(lp)
    assert list(legend) == [b[0] for b in expected]
    for label, color in legend.items():
        assert color == color_of(label)
    for span in elements(panel, hv.VSpan):
        assert _hv.option(span, "color", "bokeh") == color_of(span.label)
        assert _hv.option(span, "facecolor", "matplotlib") == color_of(span.label)
    curve = elements(panel, hv.Curve)[0]
    assert curve.kdims[0].label == "ε [E0]" and curve.vdims[0].label == "J_L [gamma0]"


def test_line_plot_by_dimension_shades_only_shared_bands():
    at = phasemap.evaluate(eps=np.linspace(-20, 20, 401), T=[3.0, 7.5], dT=DT, dV=0.0)
    lp = line_plot(at, "eps", ("J_L",), by="T")
    assert spans_of(lp) == [("anomalous_thermodiffusion", -20.0, 0.0),
                            ("conventional", 0.0, 20.0)]
    assert [c.label for c in elements(lp, hv.Curve)] == ["T = 3", "T = 7.5"]
    anm = phasemap.evaluate(eps=np.linspace(-20, 20, 401), dT=[2.5, 5.0], T=T, dV=5.0)
    assert spans_of(line_plot(anm, "eps", ("J_L",), by="dT")) == []


# --- static (matplotlib) output ----------------------------------------------------------------

def _drawn(element):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = hv.render(element, backend="matplotlib")
    FigureCanvasAgg(fig).draw()
    return fig, fig.canvas.get_renderer()


def test_value_map_legend_sits_outside_with_visible_swatches(eps_dv):
    # issue #11: white threshold-curve swatches on a white legend box, over the map's corner
    from matplotlib.colors import to_rgb

    small = eps_dv.isel(eps=slice(None, None, 5), dV=slice(None, None, 5))
    fig, r = _drawn(value_map(small, "s", "eps", "dV", thresholds=["J_L"]))
    (ax,) = [a for a in fig.axes if a.get_legend() is not None]
    legend = ax.get_legend()
    lb = legend.get_window_extent(r)
    for other in fig.axes:  # the map and its colour bar, with tick labels
        assert not lb.overlaps(other.get_window_extent(r))
        assert not lb.overlaps(other.get_tightbbox(r, for_layout_only=True) if other is not ax
                               else other.get_window_extent(r))
    face = np.asarray(to_rgb(legend.get_frame().get_facecolor()))
    for line in legend.get_lines():
        swatch = np.asarray(to_rgb(line.get_color()))
        assert np.abs(swatch - face).max() > 0.5  # the swatch stands out from its box


def test_tex_typesets_symbols_units_and_minus():
    from phasemap.plot.static import tex

    assert tex("Q_L [E0 gamma0]") == r"$\dot{Q}_L$ [$E_0\gamma_0$]"
    assert tex("T = 7.5, ε = -15") == "$T$ = 7.5, $\\varepsilon$ = \N{MINUS SIGN}15"
    assert tex("ΔT_th (J_L = 0)") == r"$\Delta T_{\rm th}$ ($J_L$ = 0)"
    assert tex("RHT window, AT, T_R") == "RHT window, AT, T_R"  # not inside other words
    assert tex("$x$ already") == "$x$ already"


def test_static_render_of_a_line_plot_keeps_colours_and_bands():
    from matplotlib.colors import to_rgb

    from phasemap.plot import static

    ds = phasemap.evaluate(eps=np.linspace(-20, 20, 201), T=T, dT=DT, dV=5.0)
    fig = static.render(line_plot(ds, "eps", ("J_L", "s")), title="four regions")
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == [LABEL_TEXT[b.label] for b in regime_bands(ds, "eps")]
    for handle, text in zip(legend.legend_handles, texts, strict=True):
        label = next(k for k, v in LABEL_TEXT.items() if v == text)
        assert to_rgb(handle.get_facecolor()) == to_rgb(color_of(label))
    spans = [p for p in fig.axes[0].patches]
    assert [round(p.get_x(), 9) for p in spans][:2] == [-20.0, -7.5]
    with pytest.raises(ParameterError):
        static.save(fig, "x.gif", "gif")
