"""The paper's figures: what they say (bands, edges, labels) and that all of them are written."""

from __future__ import annotations

import itertools
import re
import struct
from xml.etree import ElementTree

import numpy as np
import pytest

import phasemap
from phasemap.errors import ParameterError, PhasemapError
from phasemap.plot import color_of, legend_entries, spans_of, static
from phasemap.plot import figures as F
from phasemap.plot.colors import LABEL_TEXT

pytest.importorskip("holoviews")


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return str(tmp_path_factory.mktemp("figstore") / "store")


@pytest.fixture(scope="module")
def cache():
    return {}


@pytest.fixture(scope="module")
def build(store, cache, client):
    def _build(name):
        return F.build_figure(name, store, cache, client)
    return _build


def _labels_edges(bands):
    return [b.label for b in bands], [b.stop for b in bands[:-1]]


def test_every_spec_loads_and_is_named_after_its_file():
    root = F.pipelines_dir()
    names = sorted({s for f in F.FIGURES.values() for s in f.specs})
    paper = sorted(p.stem for p in (root / "paper").glob("*.yaml"))
    beyond = sorted(f"beyond/{p.stem}" for p in (root / "beyond").glob("*.yaml"))
    assert [n for n in names if "/" not in n] == paper   # every paper spec drawn
    assert set(names) - set(paper) <= set(beyond)        # beyond specs exist
    for name in names:
        spec = F.load_spec(name)
        if name.startswith("beyond/"):  # the models beyond the paper, named after the file
            assert spec.name == "beyond_" + name.split("/", 1)[1]
            assert spec.model != "single_level"
            continue
        assert spec.name == name and spec.model == "single_level"
        assert spec.params.get("gamma_L") == spec.params.get("gamma_R") == 2.0  # γ = 1


def test_missing_pipelines_give_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(F.PIPELINES_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(PhasemapError, match="PHASEMAP_PIPELINES"):
        F.load_spec("fig8")


def test_dataset_without_compute_is_the_same_numbers(monkeypatch, store, client):
    spec = F.load_spec("fig8")
    cached = F._dataset(spec, store, client)
    monkeypatch.delattr(phasemap, "compute", raising=False)
    direct = F._dataset(spec)
    for var in ("J_L", "Q_L", "Q_R", "s", "regime", "machine"):
        np.testing.assert_allclose(direct[var].values, cached[var].values, rtol=1e-15, atol=0)
    assert float(direct.T) == 7.5 and float(cached.dV) == 5.0


def test_dataset_uses_compute_when_the_package_has_it(monkeypatch):
    calls = []

    def fake_compute(spec, store=None, **kw):
        calls.append((spec.name, store))
        return phasemap.evaluate_spec(spec)

    monkeypatch.setattr(phasemap, "compute", fake_compute, raising=False)
    ds = F._dataset(F.load_spec("fig9"), "memory://x")
    assert calls == [("fig9", "memory://x")] and float(ds.dV) == -5.0


def test_fig5_anm_band_starts_at_dt_th_and_ends_at_dv_th(build):
    fig = build("fig5")
    (anm_a,) = [b for b in fig.bands["a"] if b.label == "absolute_negative_mobility"]
    (anm_b,) = [b for b in fig.bands["b"] if b.label == "absolute_negative_mobility"]
    dT_th = float(phasemap.threshold("dT", eps=-15, T=7.5, dV=5, bracket=(0, 14.9), xtol=1e-12))
    dV_th = float(phasemap.threshold("dV", eps=-15, T=7.5, dT=5, bracket=(0, 20), xtol=1e-12))
    assert abs(anm_a.start - 2.5) < 1e-9 and abs(anm_a.start - dT_th) < 1e-9
    assert abs(anm_a.stop - 14.9) < 1e-12  # ANM for every ΔT > ΔT_th
    assert abs(anm_b.start) < 1e-12 and abs(anm_b.stop - 10.0) < 1e-9
    assert abs(anm_b.stop - dV_th) < 1e-9
    # the drawn spans are these bands, panel by panel
    (a, b) = list(fig.element)
    assert spans_of(a) == [(x.label, x.start, x.stop) for x in fig.bands["a"]]
    assert spans_of(b) == [(x.label, x.start, x.stop) for x in fig.bands["b"]]


def test_fig7_shades_the_rht_window(build):
    fig = build("fig7")
    rht = {p: [b for b in fig.bands[p] if b.label == "reverse_heat_transport"]
           for p in ("a", "b")}
    (ra,), (rb,) = rht["a"], rht["b"]
    assert abs(ra.start - 10.0) < 1e-9 and abs(ra.stop - 30.0) < 1e-9  # ΔV_th < ΔV < 2(μ−ε)
    assert abs(rb.start) < 1e-12 and abs(rb.stop - 2.5) < 1e-9  # 0 < ΔT < ΔT_th


@pytest.mark.parametrize(("name", "labels", "edges", "machines"), [
    ("fig8", ["absolute_negative_mobility", "reverse_heat_transport", "joule_heating",
              "conventional"], [-7.5, -2.5, 2.5],
     ["heat_engine", "refrigerator", "heater", "accelerator"]),
    ("fig9", ["conventional", "joule_heating", "refrigerator", "heat_engine"],
     [-2.5, 2.5, 7.5], ["accelerator", "heater", "refrigerator", "heat_engine"]),
])
def test_figs_8_and_9_four_regions(build, name, labels, edges, machines):
    fig = build(name)
    got_labels, got_edges = _labels_edges(fig.bands["main"])
    assert got_labels == labels
    np.testing.assert_allclose(got_edges, edges, atol=1e-9, rtol=0)
    m_labels, m_edges = _labels_edges(fig.notes["machine_bands"])
    assert m_labels == machines
    np.testing.assert_allclose(m_edges, edges, atol=1e-9, rtol=0)
    panels = list(fig.element)
    assert len(panels) == 4  # Q_L, Q_R, J_L, s
    for panel in panels:
        assert [s[0] for s in spans_of(panel)] == labels
    legend = legend_entries(fig.element)
    assert list(legend) == labels and all(legend[k] == color_of(k) for k in legend)


def test_figs_2_and_3_shade_anomalous_thermodiffusion_below_mu(build):
    for name in ("fig2", "fig3"):
        labels, edges = _labels_edges(build(name).bands["main"])
        assert labels == ["anomalous_thermodiffusion", "conventional"]
        assert abs(edges[0]) < 1e-12


def test_fig4_marks_the_reversible_level(build):
    eps_r = build("fig4").notes["eps_r"]
    assert set(eps_r) == {2.5, 5.0, 10.0}
    for dT, e in eps_r.items():
        assert abs(e - (-7.5 * 5.0 / dT)) < 1e-8  # ε_r = μ − TΔV/ΔT (eq. 10)


def test_extra_maps_list_their_labels(build):
    regime = legend_entries(build("map_regime_eps_dV").element)
    machine = legend_entries(build("map_machine_eps_dV").element)
    assert {"absolute_negative_mobility", "reverse_heat_transport", "heat_engine",
            "refrigerator", "joule_heating", "conventional"} <= set(regime)
    assert {"heat_engine", "refrigerator", "heater", "accelerator"} <= set(machine)
    assert "absolute_negative_mobility" not in machine


def _check_file(p, fmt):
    """The file is a valid ``fmt`` file of a real figure."""
    data = p.read_bytes()
    assert len(data) > 5_000, p
    if fmt == "png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", data[16:24])  # IHDR
        assert width >= 4 * static.PNG_DPI and height >= 2 * static.PNG_DPI  # >= 4 x 2 in
    elif fmt == "pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    elif fmt == "svg":
        root = ElementTree.fromstring(data)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    else:
        assert b"<html" in data[:4096].lower() and b"bokeh" in data


def test_cli_figures_writes_every_figure_in_each_format(tmp_path, store, client):
    # issue #15's must-show: `phasemap figures --format pdf,svg,png`
    from typer.testing import CliRunner

    from phasemap.cli import app

    for name in {s for f in F.FIGURES.values() for s in f.specs}:  # data in the store first
        F._dataset(F.load_spec(name), store, client)
    out = tmp_path / "figures"
    result = CliRunner().invoke(app, ["figures", "--out", str(out), "--store", store,
                                      "--format", "pdf,svg,png"])
    assert result.exit_code == 0, result.output
    expected = {f"{name}.{fmt}" for name in F.FIGURES for fmt in ("pdf", "svg", "png")}
    assert {p.name for p in out.iterdir()} == expected
    for p in out.iterdir():
        _check_file(p, p.suffix[1:])
    bad = CliRunner().invoke(app, ["figures", "--out", str(out), "--format", "png,gif"])
    assert bad.exit_code == 2 and "--format" in bad.output and "gif" in bad.output


def test_write_figures_default_is_every_format(tmp_path, store, cache, client):
    messages = []
    out = tmp_path / "figures"
    paths = F.write_figures(out, store, progress=messages.append, client=client,
                            names=["fig5", "map_s_eps_dV"])
    assert F.DEFAULT_FORMATS == ("png", "svg", "pdf", "html")
    assert [p.name for p in paths] == [f"{n}.{fmt}" for n in ("fig5", "map_s_eps_dV")
                                       for fmt in F.DEFAULT_FORMATS]
    for p in paths:
        assert p.parent == out
        _check_file(p, p.suffix[1:])
    assert len(messages) == 4
    with pytest.raises(PhasemapError):
        F.write_figures(out, formats=("gif",))
    with pytest.raises(PhasemapError):
        F.write_figures(out, formats=())


def test_parse_formats():
    assert F.parse_formats("pdf,svg,png") == ("pdf", "svg", "png")
    assert F.parse_formats(" PNG, .pdf ,png") == ("png", "pdf")
    assert F.parse_formats("all") == tuple(F.FORMATS)
    with pytest.raises(ParameterError, match="gif") as info:
        F.parse_formats("png,gif")
    assert info.value.param == "format"
    with pytest.raises(ParameterError):
        F.parse_formats("")


# --- the print versions: layout a referee would accept ------------------------------------

@pytest.fixture(scope="module")
def rendered(build):
    """name -> (PaperFigure, matplotlib Figure, renderer), each built and drawn once."""
    done = {}

    def _get(name):
        if name not in done:
            fig = build(name)
            mfig = fig.render()
            mfig.canvas.draw()
            done[name] = (fig, mfig, mfig.canvas.get_renderer())
        return done[name]
    return _get


def _data_axes(mfig):
    """The axes that hold data (not colour bars)."""
    return [ax for ax in mfig.axes if ax.get_label() != "<colorbar>"]


@pytest.mark.parametrize("name", list(F.FIGURES))
def test_print_layout_legend_outside_and_letters_clear(rendered, name):
    fig, mfig, r = rendered(name)
    (legend,) = mfig.legends  # one legend per figure
    lb = legend.get_window_extent(r)
    texts = [t for t in legend.get_texts()]
    assert texts
    title = mfig._suptitle
    tb = title.get_window_extent(r)
    for ax in mfig.axes:
        ab = ax.get_window_extent(r)  # the data area
        assert not lb.overlaps(ab), (name, ax.get_label())
        assert not tb.overlaps(ab), name
        for line in ax.get_lines():  # the drawn curves, by their own extent
            if len(line.get_xdata()):
                assert not lb.overlaps(line.get_window_extent(r)), name
    assert not tb.overlaps(lb), name
    letters = [ax._left_title for ax in _data_axes(mfig) if ax._left_title.get_text()]
    panels, _ = static._panels(fig.element)
    if len(panels) > 1 and not fig.inset:
        assert [t.get_text()[:3] for t in letters] == [f"({c})" for c in "abcd"[:len(letters)]]
        assert len(letters) == len(panels)
    for t in letters:
        bb = t.get_window_extent(r)
        assert not bb.overlaps(lb) and not bb.overlaps(tb), (name, t.get_text())
        for ax in mfig.axes:
            assert not bb.overlaps(ax.get_window_extent(r)), (name, t.get_text())
        for other in letters:
            assert other is t or not bb.overlaps(other.get_window_extent(r))


@pytest.mark.parametrize("name", ["fig5", "fig7", "fig8", "fig9"])
def test_print_layout_has_no_wide_gap_between_columns(rendered, name):
    _, mfig, r = rendered(name)
    boxes = sorted((ax.get_tightbbox(r) for ax in _data_axes(mfig)), key=lambda b: b.x0)
    rows: dict[float, list] = {}
    for b in boxes:
        rows.setdefault(round(b.y1, -1), []).append(b)
    gaps = [right.x0 - left.x1 for row in rows.values()
            for left, right in itertools.pairwise(row)]
    assert gaps
    assert all(-1 < g < 0.35 * mfig.dpi for g in gaps), gaps  # under 0.35 in, no overlap


@pytest.mark.parametrize("name", ["fig2", "fig3"])
def test_figs_2_and_3_show_q_l_as_an_inset_clear_of_the_curves(rendered, name):
    fig, mfig, r = rendered(name)
    (main,) = [ax for ax in mfig.axes if "J_L" in ax.get_ylabel()]
    (inset,) = main.child_axes
    assert "Q" in inset.get_ylabel() and fig.inset
    box = inset.get_tightbbox(r)  # with its tick labels
    for line in main.get_lines():
        xy = line.get_transform().transform(line.get_xydata())
        inside = ((xy[:, 0] > box.x0) & (xy[:, 0] < box.x1)
                  & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1))
        if np.ptp(line.get_ydata()) == 0:  # the zero line may pass under it
            continue
        assert inside.sum() == 0, (name, line.get_label())


def test_print_text_is_typeset(rendered):
    for name in ("fig8", "fig4", "fig7", "map_regime_eps_dT", "map_s_eps_dV"):
        _, mfig, _ = rendered(name)
        labels = [ax.get_xlabel() for ax in mfig.axes] + [ax.get_ylabel() for ax in mfig.axes]
        labels = [t for t in labels if t]
        assert labels and all("$" in t for t in labels), labels
        for obj in mfig.findobj(lambda o: hasattr(o, "get_text")):
            plain = re.sub(r"\$[^$]*\$", "", obj.get_text())  # outside mathtext
            for raw in ("gamma0", "E0", "J_L", "Q_L", "Q_R", "_th", "ε_r", "_"):
                assert raw not in plain, (name, obj.get_text())
    _, fig8, _ = rendered("fig8")
    assert {ax.get_ylabel() for ax in fig8.axes} == {
        r"$\dot{Q}_L$ [$E_0\gamma_0$]", r"$\dot{Q}_R$ [$E_0\gamma_0$]",
        r"$J_L$ [$\gamma_0$]", r"$\sigma$ [$\gamma_0$]"}


def _legend_colors(mfig):
    """label text -> RGB of its legend swatch."""
    from matplotlib.colors import to_rgb

    out = {}
    legend = mfig.legends[0]
    for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
        color = (handle.get_facecolor() if hasattr(handle, "get_facecolor")
                 and not hasattr(handle, "get_xdata") else handle.get_color())
        color = np.asarray(color, dtype=float).reshape(-1, 4)[0] if not isinstance(
            color, str) else to_rgb(color)
        out[text.get_text()] = tuple(round(float(c), 4) for c in np.asarray(color)[:3])
    return out


def test_the_same_label_has_the_same_colour_in_every_figure(rendered):
    from matplotlib.colors import to_rgb

    seen: dict[str, dict[tuple, list[str]]] = {}
    for name in F.FIGURES:
        _, mfig, _ = rendered(name)
        for text, rgb in _legend_colors(mfig).items():
            seen.setdefault(text, {}).setdefault(rgb, []).append(name)
    clashes = {t: c for t, c in seen.items() if len(c) > 1}
    assert not clashes, clashes
    for label, text in LABEL_TEXT.items():  # and it is the label's fixed colour
        if text in seen:
            (rgb,) = seen[text]
            assert rgb == tuple(round(c, 4) for c in to_rgb(color_of(label))), label
    # lines of one parameter value too: ΔT = 5 appears in Figs. 3 and 4
    assert len(next(iter(seen[r"$\Delta T$ = 5"].values()))) >= 2


def test_fig7_titles_mark_the_parameters_the_paper_omits(rendered):
    # the paper gives only ΔT = 5 for Fig. 7(a) and nothing for 7(b): every other value
    # shown is said to be chosen here
    fig, mfig, _ = rendered("fig7")
    texts = [mfig._suptitle.get_text()] + [ax._left_title.get_text() for ax in _data_axes(mfig)]
    assert len(texts) == 3
    for text in texts:
        plain = (text.replace("$", "").replace(r"\Delta ", "Δ").replace(r"\varepsilon", "ε")
                 .replace("\n", " "))
        for m in re.finditer(r"(?<![Δ\w])(T|ε|ΔV) = ", plain):
            assert "chosen" in plain[:m.start()], plain
    assert "chosen" in fig.title and "(paper" not in fig.title
