"""The paper's figures: what they say (bands, edges, labels) and that all of them are written."""

from __future__ import annotations

import numpy as np
import pytest

import phasemap
from phasemap.errors import PhasemapError
from phasemap.plot import color_of, legend_entries, spans_of
from phasemap.plot import figures as F

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
    paper = F.pipelines_dir() / "paper"
    names = sorted({s for f in F.FIGURES.values() for s in f.specs})
    assert sorted(p.stem for p in paper.glob("*.yaml")) == names
    for name in names:
        spec = F.load_spec(name)
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


def test_write_figures_writes_every_figure(tmp_path, store, cache, client):
    messages = []
    out = tmp_path / "figures"
    paths = F.write_figures(out, store, progress=messages.append, client=client)
    expected = {f"{name}.{fmt}" for name in F.FIGURES for fmt in ("png", "html")}
    assert {p.name for p in paths} == expected
    for p in paths:
        assert p.parent == out and p.stat().st_size > 5_000
        head = p.read_bytes()[:4096]
        if p.suffix == ".png":
            assert head.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert b"<html" in head.lower() and b"bokeh" in p.read_bytes()
    assert len(messages) == 2 * len(F.FIGURES)
    with pytest.raises(PhasemapError):
        F.write_figures(out, formats=("gif",))
