"""Phase maps beyond the paper: do its anomalies survive interaction, broadening, a second dot?

Zhang & Lü (Phys. Rev. E 111, 044112 (2025)) find anomalous thermodiffusion (AT), absolute
negative mobility (ANM) and reverse heat transport (RHT) in a single non-interacting level in
sequential tunnelling. This module draws the same regime maps for

* ``anderson``: the spin-degenerate level with charging energy U (a second channel at ε + U),
* ``resonant_level``: the coherent level of width Γ = γ_L + γ_R (exact at any coupling),
* ``coulomb_coupled_dots``: a conductor dot capacitively coupled to a gate dot fed by a hot
  third reservoir G,

from the grid specs in ``pipelines/beyond/``, marks where a label differs from the paper's
sequential single level at the same point, and follows the thresholds ΔT_th and ΔV_th of the
paper's Fig. 5 as U/T and Γ/T grow. :func:`findings` returns the numbers docs/beyond.md quotes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

import phasemap

from ..regimes import LENSES
from ..thresholds import threshold
from . import _hv
from .maps import phase_map, value_map

#: The labels whose survival is the question (regime lens).
ANOMALIES = ("anomalous_thermodiffusion", "absolute_negative_mobility",
             "reverse_heat_transport")

#: The paper's Fig. 5 point: ε = -15, T = 7.5; ΔT_th at ΔV = 5 (2.5) and ΔV_th at ΔT = 5 (10).
FIG5 = {"eps": -15.0, "T": 7.5}
DT_TH_AT: dict[str, Any] = {"dV": 5.0}
DV_TH_AT: dict[str, Any] = {"dT": 5.0}

#: U/T and Γ/T at which thresholds are followed.
U_OVER_T = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
GAMMA_OVER_T = (0.005, 0.01, 0.03, 0.1, 0.3, 0.5, 1.0, 2.0)

#: The resonant-level specs, by Γ/T.
RESONANT_SPECS = {0.01: "beyond/resonant_eps_dV_G001", 0.1: "beyond/resonant_eps_dV_G01",
                  0.5: "beyond/resonant_eps_dV_G05", 2.0: "beyond/resonant_eps_dV_G2"}


# --- analysis (numbers; no drawing) -------------------------------------------------------

def sequential_reference(ds: xr.Dataset) -> xr.Dataset:
    """The paper's single level (closed form) on the grid of ``ds`` and at its fixed values.

    Only the parameters the single level has are passed on (U, the width or a gate dot are
    what the comparison is about).
    """
    sl = phasemap.models.get_model("single_level")
    params: dict[str, Any] = {}
    for name in sl.param_names:
        if name in ds.dims:
            params[name] = np.asarray(ds[name].values)
        elif name in ds.coords:
            params[name] = float(ds[name].values)
    ref = phasemap.evaluate("single_level", **params)
    order = [d for d in ds.dims if d in ref.dims]
    return ref.transpose(*order)


def label_changes(ds: xr.Dataset, reference: xr.Dataset, lens: str = "regime") -> xr.DataArray:
    """True where ``ds``'s label differs from ``reference``'s at the same grid point."""
    a, b = xr.align(ds[lens], reference[lens], join="inner")
    return (a != b).rename(f"{lens}_changed")


def fractions(codes: xr.DataArray, lens: str = "regime") -> dict[str, float]:
    """Share of the grid's points carrying each label (labels absent: 0)."""
    values = np.asarray(codes.values).ravel()
    n = max(values.size, 1)
    return {label: float(np.count_nonzero(values == k)) / n
            for k, label in enumerate(LENSES[lens])}


def _first_root(found: xr.DataArray) -> xr.DataArray:
    """The smallest root where a threshold search returns several (a ``root`` dimension)."""
    return found.min("root") if "root" in found.dims else found


def thresholds_vs(model: str, name: str, values: Sequence[float], *,
                  scale: Mapping[str, float] | None = None, **fixed: float) -> xr.Dataset:
    """ΔT_th and ΔV_th of the paper's Fig. 5 point as ``name`` runs over ``values``.

    ``scale`` maps further parameters to a multiple of ``name`` (e.g. ``gamma_R: 1`` to move
    γ_R with γ_L). Returns ``dT_th`` (at ΔV = 5) and ``dV_th`` (at ΔT = 5) along ``name``.
    """
    v = xr.DataArray(np.asarray(values, dtype=np.float64), dims=(name,), name=name)
    params: dict[str, Any] = {**FIG5, **fixed, name: v}
    for other, factor in (scale or {}).items():
        params[other] = v * factor
    dT = threshold("dT", model=model, bracket=(1e-9, 2 * FIG5["T"] - 1e-6), roots="all",
                   **params, **DT_TH_AT)
    dV = threshold("dV", model=model, bracket=(1e-9, 60.0), roots="all", **params,
                   **DV_TH_AT)
    dT, dV = (a.drop_vars("status", errors="ignore") for a in (dT, dV))
    return xr.Dataset({"dT_th": _first_root(dT), "dV_th": _first_root(dV),
                       "dT_th_roots": dT.count("root"), "dV_th_roots": dV.count("root")})


def findings(data: Mapping[str, xr.Dataset]) -> dict[str, Any]:
    """The numbers docs/beyond.md states, from the datasets of ``pipelines/beyond/``.

    ``data`` maps spec names (``"beyond/anderson_eps_dV"``, ...) to their datasets.
    """
    out: dict[str, Any] = {}
    T = FIG5["T"]
    if "beyond/anderson_eps_dV" in data:
        ds = data["beyond/anderson_eps_dV"]
        ref = sequential_reference(ds)
        per_u = {}
        for u in ds["U"].values:
            plane = ds.sel(U=u)
            per_u[f"{float(u) / T:g}"] = {
                "fractions": {k: round(f, 4) for k, f in fractions(plane["regime"]).items()
                              if k in ANOMALIES},
                "changed": round(float(label_changes(plane, ref).mean()), 4),
            }
        out["anderson_eps_dV"] = per_u
    for g, spec in RESONANT_SPECS.items():
        if spec in data:
            ds = data[spec]
            ref = sequential_reference(ds)
            out.setdefault("resonant_eps_dV", {})[f"{g:g}"] = {
                "fractions": {k: round(f, 4) for k, f in fractions(ds["regime"]).items()
                              if k in ANOMALIES},
                "changed": round(float(label_changes(ds, ref).mean()), 4),
            }
    if "beyond/ccdd_eps_dV" in data:
        ds = data["beyond/ccdd_eps_dV"]
        out["ccdd_eps_dV"] = {
            "fractions": {k: round(f, 4) for k, f in fractions(ds["regime"]).items() if f},
            "machine": {k: round(f, 4) for k, f in fractions(ds["machine"], "machine").items()
                        if f},
            "J_L_at_zero_bias_max": float(np.abs(ds["J_L"].sel(dV=0.0, method="nearest")).max()),
        }
    return out


# --- figures --------------------------------------------------------------------------------

def _changed_outline(changed: xr.DataArray, x: str, y: str):
    """Black contour around the points whose label differs from the sequential single level."""
    h = _hv.hv()
    from holoviews.operation import contours

    img = h.Image((changed[x].values, changed[y].values,
                   changed.transpose(y, x).values.astype(np.float64)), kdims=[x, y])
    lines = contours(img, levels=[0.5], filled=False)
    return _hv.style(lines, color="black", bokeh={"line_width": 1.5},
                     mpl={"linewidth": 1.2})


def sweep_maps(ds: xr.Dataset, reference: xr.Dataset | None, dim: str | None,
               values: Sequence[float], x: str = "eps", y: str = "dV", lens: str = "regime",
               titles: Sequence[str] | None = None):
    """A row of regime maps (one per value of ``dim``), each with the label-change outline."""
    h = _hv.hv()
    panels = []
    for i, v in enumerate(values):
        plane = ds.sel({dim: v}) if dim else ds
        title = titles[i] if titles else (f"{dim} = {v:g}" if dim else "")
        el = phase_map(plane, x, y, lens=lens, thresholds=False, title=title)
        if reference is not None:
            el = el * _changed_outline(label_changes(plane, reference, lens), x, y)
        panels.append(_hv.style(el, title=title))
    return h.Layout(panels).cols(2)


def anderson_maps(data: Mapping[str, xr.Dataset]):
    ds = data["beyond/anderson_eps_dV"]
    ref = sequential_reference(ds)
    us = [u for u in ds["U"].values if float(u) in (0.0, 7.5, 15.0, 30.0)]
    titles = [f"U = {float(u):g} (U/T = {float(u) / FIG5['T']:g})" for u in us]
    return sweep_maps(ds, ref, "U", us, titles=titles)


def resonant_maps(data: Mapping[str, xr.Dataset]):
    h = _hv.hv()
    panels = []
    for g, spec in RESONANT_SPECS.items():
        ds = data[spec]
        ref = sequential_reference(ds)
        el = phase_map(ds, "eps", "dV", thresholds=False, title=f"Γ/T = {g:g}")
        el = el * _changed_outline(label_changes(ds, ref), "eps", "dV")
        panels.append(_hv.style(el, title=f"Γ/T = {g:g}"))
    return h.Layout(panels).cols(2)


def threshold_curves():
    """ΔT_th and ΔV_th at the paper's Fig. 5 point against U/T and Γ/T."""
    h = _hv.hv()
    T = FIG5["T"]
    u = thresholds_vs("anderson", "U", [r * T for r in U_OVER_T])
    g = thresholds_vs("resonant_level", "gamma_L", [r * T / 2 for r in GAMMA_OVER_T],
                      scale={"gamma_R": 1.0})
    ux = np.asarray(U_OVER_T)
    gx = np.asarray(GAMMA_OVER_T)

    def pair(x, found, kdim):
        dT = h.Curve((x, found["dT_th"].values), kdim, "ΔT_th", label="ΔT_th (ΔV = 5)")
        dV = h.Curve((x, found["dV_th"].values / 4), kdim, "ΔT_th",
                     label="ΔV_th / 4 (ΔT = 5)")
        _hv.style(dT, color="#1F4E9C", bokeh={"line_width": 2}, mpl={"linewidth": 1.8})
        _hv.style(dV, color="#C23B22", bokeh={"line_width": 2, "line_dash": "dashed"},
                  mpl={"linewidth": 1.8, "linestyle": "--"})
        return dT * dV

    a = pair(ux, u, "U/T")
    b = pair(gx, g, "Γ/T")
    lines = [h.HLine(2.5), h.HLine(10.0 / 4)]
    for line in lines:
        _hv.style(line, color="grey", bokeh={"line_dash": "dotted"}, mpl={"linestyle": ":"})
    ref = lines[0] * lines[1]
    _hv.style(b, mpl={"logx": True}, bokeh={"logx": True})
    return h.Layout([a * ref, b * ref]).cols(2), {"anderson": u, "resonant_level": g}


def ccdd_maps(data: Mapping[str, xr.Dataset]):
    h = _hv.hv()
    ds = data["beyond/ccdd_eps_dV"]
    a = phase_map(ds, "eps", "dV", thresholds=False, title="regime (L–R conductor)")
    b = value_map(ds, "J_L", "eps", "dV", cmap="RdBu_r", title="J_L, heat from G at ΔT = 0")
    lim = float(np.nanmax(np.abs(ds["J_L"].values)))
    b = b.map(lambda el: _hv.style(el, clim=(-lim, lim)), [h.Image, h.QuadMesh])
    return h.Layout([a, b]).cols(2)


def _region_outline(codes: xr.DataArray, code: int, x: str, y: str, color: str):
    """Contour around the points whose label code is ``code``."""
    h = _hv.hv()
    from holoviews.operation import contours

    mask = (codes == code).transpose(y, x).values.astype(np.float64)
    img = h.Image((codes[x].values, codes[y].values, mask), kdims=[x, y])
    return _hv.style(contours(img, levels=[0.5], filled=False), color=color,
                     bokeh={"line_width": 2}, mpl={"linewidth": 1.4})


def merit_maps(data: Mapping[str, xr.Dataset]):
    """η/η_C where the point is a heat engine and COP/COP_C where it is a refrigerator, over
    the paper's (ε, ΔV) map, with both regions outlined (docs/merit.md)."""
    h = _hv.hv()
    from ..regimes import MACHINE_LABELS
    from .colors import color_of

    ds = data["maps_eps_dV"]
    engine, fridge = (MACHINE_LABELS.index(n) for n in ("heat_engine", "refrigerator"))
    red, blue = color_of("heat_engine"), color_of("refrigerator")
    style = ({"line_width": 2}, {"linewidth": 1.4})
    panels = []
    for var, title in (("eta_over_carnot", "η/η_C (heat engines)"),
                       ("cop_over_carnot", "COP/COP_C (refrigerators)")):
        vm = value_map(ds, var, "eps", "dV", cmap="viridis", title=title)
        vm = vm.map(lambda el: _hv.style(el, clim=(0.0, 1.0)), [h.Image, h.QuadMesh])
        el = (vm * _region_outline(ds["machine"], engine, "eps", "dV", red)
              * _region_outline(ds["machine"], fridge, "eps", "dV", blue)
              * _hv.legend_line("heat engines (outlined)", red, *style)
              * _hv.legend_line("refrigerators (outlined)", blue, *style))
        panels.append(_hv.style(el, title=title))
    return h.Layout(panels).cols(2)


# --- the figures `phasemap figures` writes (plot.figures.FIGURES) ---------------------------

def figure_definitions() -> list[dict[str, Any]]:
    """The beyond-the-paper figures of ``phasemap figures``: the keyword arguments of
    :class:`phasemap.plot.figures.FigureDef` (name, title, specs, build), which turns them
    into figures (this module draws; it does not know how figures are listed or written)."""
    T = FIG5["T"]

    def anderson(data):
        return anderson_maps(data), {}, findings(data)

    def resonant(data):
        return resonant_maps(data), {}, findings(data)

    def thresholds(data):
        element, found = threshold_curves()
        return element, {}, {k: {n: ds[n].values.tolist() for n in ds.data_vars}
                             for k, ds in found.items()}

    def ccdd(data):
        return ccdd_maps(data), {}, findings(data)

    def merit(data):
        ds = data["maps_eps_dV"]
        best = {v: float(np.nanmax(ds[v].values)) for v in ("eta_over_carnot",
                                                            "cop_over_carnot")}
        return merit_maps(data), {}, {"max": best}

    return [
        _definition("map_merit_eps_dV", f"How good a machine: η/η_C and COP/COP_C over (ε, ΔV) "
                  f"at T = {T:g}, ΔT = 5",
                  ("maps_eps_dV",), merit),
        _definition("beyond_anderson", f"Beyond the paper: regimes of the Anderson level as U/T "
                  f"grows (T = {T:g}, ΔT = 5; outlined: labels that differ from the single "
                  "level)", ("beyond/anderson_eps_dV",), anderson),
        _definition("beyond_resonant", f"Beyond the paper: regimes of the coherent level as Γ/T "
                  f"grows (T = {T:g}, ΔT = 5; outlined: labels that differ from the single "
                  "level)", tuple(RESONANT_SPECS.values()), resonant),
        _definition("beyond_thresholds", "Beyond the paper: ΔT_th and ΔV_th of Fig. 5 "
                  f"(ε = −15, T = {T:g}) against U/T (Anderson) and Γ/T (coherent level)",
                  (), thresholds),
        _definition("beyond_ccdd", f"Beyond the paper: a conductor dot gated by a hot third "
                  f"reservoir (T_G = 15, T = {T:g}, ΔT = 0, U = 7.5)",
                  ("beyond/ccdd_eps_dV",), ccdd),
    ]


def _definition(name: str, title: str, specs: tuple[str, ...], build) -> dict[str, Any]:
    return {"name": name, "title": title, "specs": specs, "build": build}
