"""The paper's Figs. 2-9, and the phase maps it never drew, as PNG, SVG, PDF and HTML.

Every figure is built from grid specs in ``pipelines/paper/`` (one YAML file per figure or
panel, read with :meth:`phasemap.GridSpec.load`), so the numbers in a figure are exactly
those the store holds for the same spec. Figure numbers and parameters follow Y. Zhang and
X. Lü, Phys. Rev. E 111, 044112 (2025), arXiv:2408.07882; where the paper leaves a parameter
out the spec file says so and states the choice.

PNG, SVG and PDF are drawn for print by :mod:`phasemap.plot.static` (one legend outside the
axes, typeset symbols, insets where the paper has them); HTML is the interactive bokeh view
of the same elements. ``phasemap figures --out DIR --format png,pdf`` calls
:func:`write_figures`.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import phasemap

from ..errors import ParameterError, PhasemapError
from ..grid import GridSpec
from ..thresholds import threshold
from ..variables import axis_label
from . import _hv, static
from . import beyond as _beyond
from .boundaries import Band, regime_bands
from .colors import LINE_COLORS
from .lines import line_plot
from .maps import curve_label, phase_map, threshold_overlay, value_map

#: Output formats and what writes each: the print renderer (:mod:`.static`) or bokeh.
FORMATS = {"png": "static", "svg": "static", "pdf": "static", "html": "bokeh"}

#: What :func:`write_figures` and ``phasemap figures`` write when not told otherwise.
DEFAULT_FORMATS = ("png", "svg", "pdf", "html")

#: Environment variable naming a directory that holds ``paper/*.yaml`` (overrides the default).
PIPELINES_ENV = "PHASEMAP_PIPELINES"


# --- specs and data -----------------------------------------------------------------------

def pipelines_dir() -> Path:
    """The directory holding ``paper/fig2.yaml`` ...: ``$PHASEMAP_PIPELINES`` or the repo's.

    The default is ``pipelines/`` next to the ``phasemap`` package, which exists in a source
    checkout (including an editable install). Raises :class:`PhasemapError` saying where it
    looked if the specs are not there.
    """
    env = os.environ.get(PIPELINES_ENV)
    path = Path(env) if env else Path(phasemap.__file__).resolve().parent.parent / "pipelines"
    if not (path / "paper").is_dir():
        raise PhasemapError(
            f"the grid specs of the paper's figures were not found: {path / 'paper'} does not "
            f"exist. They ship with the source tree (pipelines/paper/*.yaml), not with a wheel; "
            f"run from a checkout or set {PIPELINES_ENV} to a directory containing paper/.")
    return path


def load_spec(name: str) -> GridSpec:
    """The grid spec ``pipelines/paper/<name>.yaml``, or ``pipelines/<name>.yaml`` for a name
    with a folder (``beyond/anderson_eps_dV``)."""
    path = pipelines_dir() / (f"{name}.yaml" if "/" in name else f"paper/{name}.yaml")
    if not path.exists():
        raise PhasemapError(f"grid spec {name!r} not found: {path} does not exist")
    return GridSpec.load(path)


def _dataset(spec: GridSpec, store: Any = None, client: Any = None) -> xr.Dataset:
    """The data of ``spec``: from the store via ``phasemap.compute`` when the package has it,
    otherwise computed directly with ``phasemap.evaluate_spec`` (the same numbers, uncached).

    ``client`` (a ``distributed.Client``) is handed to ``phasemap.compute`` when given.

    The result is loaded into memory (figure grids are small) and carries the spec's fixed
    parameters as scalar coordinates, which the threshold and band computations read.
    """
    compute = getattr(phasemap, "compute", None)
    if compute is not None:
        ds = compute(spec, store=store, **({"client": client} if client is not None else {}))
    else:
        if store is not None:
            warnings.warn("phasemap.compute is not available: computing the figures' data "
                          "directly, without the store", stacklevel=2)
        ds = phasemap.evaluate_spec(spec)
    ds = ds.load()
    missing = {k: v for k, v in spec.params.items() if k not in ds.coords}
    if missing:
        ds = ds.assign_coords(missing)
    ds.attrs.setdefault("model", spec.model)
    return ds


# --- figures ------------------------------------------------------------------------------

@dataclass
class PaperFigure:
    """A built figure: the HoloViews object and what it shows, in numbers.

    ``bands`` maps a panel name (``"a"``, ``"b"`` or ``"main"``) to the shaded
    :class:`~phasemap.plot.boundaries.Band` list of that panel.
    """

    name: str
    title: str
    element: Any
    specs: tuple[str, ...]
    bands: dict[str, list[Band]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    inset: bool = False

    def render(self):
        """The print version: a matplotlib figure from :func:`phasemap.plot.static.render`."""
        return static.render(self.element, title=self.title, inset=self.inset)


Builder = Callable[[Mapping[str, xr.Dataset]], tuple[Any, dict[str, list[Band]], dict]]


@dataclass(frozen=True)
class FigureDef:
    """How to build one figure: its specs, a title and a builder of the HoloViews object.

    ``inset``: the print version draws the second panel as an inset of the first, as the
    paper does (Figs. 2 and 3); the interactive version keeps two panels side by side.
    """

    name: str
    title: str
    specs: tuple[str, ...]
    build: Builder
    inset: bool = False


def _layout(panels: Sequence[Any], cols: int = 2):
    return _hv.hv().Layout(list(panels)).cols(cols)


def line_colors(by: str) -> dict[float, str]:
    """One colour per value of ``by`` over every figure, so that, e.g., the ΔT = 5 line has
    the same colour in Figs. 3 and 4: the sorted union of the listed values of ``by`` in all
    the figures' specs, coloured in :data:`~phasemap.plot.colors.LINE_COLORS` order."""
    values: set[float] = set()
    for spec in sorted({s for f in FIGURES.values() for s in f.specs}):
        axis = load_spec(spec).axes.get(by)
        if isinstance(axis, list | tuple):
            values.update(float(v) for v in axis)
    return {v: LINE_COLORS[i % len(LINE_COLORS)] for i, v in enumerate(sorted(values))}


def _eps_family(spec: str, by: str, variables: Sequence[str]) -> Builder:
    def build(data):
        ds = data[spec]
        el = line_plot(ds, "eps", variables, by=by, bands="auto", lens="regime", title="",
                       colors=line_colors(by))
        bands = regime_bands(ds.isel({by: -1}), "eps")
        same = all(_same(regime_bands(ds.isel({by: i}), "eps"), bands)
                   for i in range(ds.sizes[by] - 1))
        return el, ({"main": bands} if same else {}), {}
    return build


def _same(a, b):
    from .boundaries import same_bands

    return same_bands(a, b)


def _fig4(data):
    h = _hv.hv()
    ds = data["fig4"]
    el = line_plot(ds, "eps", ("J_L",), by="dT", bands=False, title="",
                   colors=line_colors("dT"))
    # mark the reversible level eps_r where each J_L(eps) crosses zero (ANM below it)
    dts = [float(v) for v in ds.dT.values if v != 0]
    eps = ds.eps.values
    roots = threshold("eps", bracket=(float(eps[0]), float(eps[-1])), quantity="J_L",
                      T=float(ds.T), dV=float(ds.dV), mu=float(ds.mu),
                      gamma_L=float(ds.gamma_L), gamma_R=float(ds.gamma_R), dT=dts)
    pts = h.Scatter((np.asarray(roots.values), np.zeros(len(dts))), group="Reversible",
                    label="ε_r (J_L = 0): ANM for ε < ε_r")
    _hv.style(pts, color="#000000", bokeh={"size": 8, "marker": "circle"},
              mpl={"s": 40, "marker": "o"})
    x = ds.eps.values
    out = _hv.style(el * pts, show_legend=True, show_grid=True, xlabel=axis_label("eps"),
                    ylabel=axis_label("J_L"), xlim=(float(x[0]), float(x[-1])),
                    bokeh={"width": 860, "height": 420, "legend_position": "right"},
                    mpl={"fig_inches": (8, 5), "legend_position": "right"})
    return out, {}, {"eps_r": dict(zip(dts, map(float, roots.values), strict=True))}


def _two_panels(a: str, along_a: str, b: str, along_b: str, variable: str,
                titles: tuple[str | None, str | None] = (None, None)) -> Builder:
    """Panels (a) and (b); ``titles`` replace the default panel titles (which list the fixed
    parameters as if all were given), e.g. to say which of them are chosen here."""
    def build(data):
        ba = regime_bands(data[a], along_a)
        bb = regime_bands(data[b], along_b)
        pa = line_plot(data[a], along_a, (variable,), bands=ba, title=titles[0])
        pb = line_plot(data[b], along_b, (variable,), bands=bb, title=titles[1])
        return _layout([pa, pb]), {"a": ba, "b": bb}, {}
    return build


def _four_regions(spec: str) -> Builder:
    def build(data):
        ds = data[spec]
        bands = regime_bands(ds, "eps")
        machine = regime_bands(ds, "eps", "machine")
        el = line_plot(ds, "eps", ("Q_L", "Q_R", "J_L", "s"), bands=bands, title="")
        return el, {"main": bands}, {"machine_bands": machine}
    return build


def _map(spec: str, lens: str, x: str, y: str, thresholds) -> Builder:
    def build(data):
        key = f"_curves:{spec}:{x}:{y}"  # the two lenses of one map share their curves
        if key not in data:
            data[key] = threshold_overlay(data[spec], x, y, thresholds)
        return phase_map(data[spec], x, y, lens, thresholds=data[key]), {}, {}
    return build


def _entropy_map(data):
    """σ over (ε, ΔV) with the J_L = 0 line, where σ vanishes. The colour map is light at
    σ = 0 (``viridis_r``) so the line keeps the dark colour it has on the regime maps: one
    curve, one colour, in every figure."""
    h = _hv.hv()
    ds = data["maps_eps_dV"]
    vm = value_map(ds, "s", "eps", "dV", thresholds=False, cmap="viridis_r")
    key = "_curves:maps_eps_dV:eps:dV"  # the regime maps' curves, when already built
    shared = [el for el in data.get(key, [])
              if el.label == curve_label("J_L", "dV")]
    curves = shared or threshold_overlay(ds, "eps", "dV", [("J_L", "dV")])
    el = h.Overlay([*vm, *curves])
    for backend in _hv.BACKENDS:  # the value map's frame, title and limits
        el.opts(**h.Store.lookup_options(backend, vm, "plot").kwargs, backend=backend)
    _hv.style(el, bokeh={"legend_position": "right", "width": 760},
              mpl={"legend_position": "right"})
    return el, {}, {}


_DT_CURVES = [("J_L", "dT"), ("Q_R", "eps"), ("Q_L", "eps")]

FIGURES: dict[str, FigureDef] = {f.name: f for f in [
    FigureDef("fig2", "Fig. 2: anomalous thermodiffusion, J_L and (inset) Q_L at several T "
              "(ΔT = 5, ΔV = 0)",
              ("fig2",), _eps_family("fig2", "T", ("J_L", "Q_L")), inset=True),
    FigureDef("fig3", "Fig. 3: anomalous thermodiffusion, J_L and (inset) Q_L at several ΔT "
              "(T = 7.5, ΔV = 0)",
              ("fig3",), _eps_family("fig3", "dT", ("J_L", "Q_L")), inset=True),
    FigureDef("fig4", "Fig. 4: absolute negative mobility appears with ΔT > 0 "
              "(T = 7.5, ΔV = 5)", ("fig4",), _fig4),
    FigureDef("fig5", "Fig. 5: J_L against ΔT (a, ΔV = 5) and ΔV (b, ΔT = 5); "
              "T = 7.5, ε = −15", ("fig5a", "fig5b"),
              _two_panels("fig5a", "dT", "fig5b", "dV", "J_L")),
    FigureDef("fig6", "Fig. 6: reverse heat transport, Q_R at ΔV = 0, 2.5, 5 "
              "(T = 7.5, ΔT = 5)", ("fig6",), _eps_family("fig6", "dV", ("Q_R",))),
    FigureDef("fig7", "Fig. 7: reverse heat transport, Q_R against ΔV (a, ΔT = 5 as in the "
              "paper) and ΔT (b); T, ε and the ΔV of (b) are not given by the paper and "
              "chosen here", ("fig7a", "fig7b"),
              _two_panels("fig7a", "dV", "fig7b", "dT", "Q_R",
                          ("ΔT = 5; chosen: T = 7.5, ε = −15",
                           "chosen: T = 7.5, ε = −15, ΔV = 5"))),
    FigureDef("fig8", "Fig. 8: anomalous transport, four regions (T = 7.5, ΔT = 5, ΔV = 5)",
              ("fig8",), _four_regions("fig8")),
    FigureDef("fig9", "Fig. 9: thermoelectric transport, four regions "
              "(T = 7.5, ΔT = 5, ΔV = −5)",
              ("fig9",), _four_regions("fig9")),
    FigureDef("map_regime_eps_dV", "Regimes over (ε, ΔV) at T = 7.5, ΔT = 5",
              ("maps_eps_dV",), _map("maps_eps_dV", "regime", "eps", "dV", True)),
    FigureDef("map_machine_eps_dV", "Machines over (ε, ΔV) at T = 7.5, ΔT = 5",
              ("maps_eps_dV",), _map("maps_eps_dV", "machine", "eps", "dV", True)),
    FigureDef("map_regime_eps_dT", "Regimes over (ε, ΔT) at T = 7.5, ΔV = 5",
              ("maps_eps_dT",), _map("maps_eps_dT", "regime", "eps", "dT", _DT_CURVES)),
    FigureDef("map_machine_eps_dT", "Machines over (ε, ΔT) at T = 7.5, ΔV = 5",
              ("maps_eps_dT",), _map("maps_eps_dT", "machine", "eps", "dT", _DT_CURVES)),
    FigureDef("map_s_eps_dV", "Entropy production over (ε, ΔV) at T = 7.5, ΔT = 5",
              ("maps_eps_dV",), _entropy_map),
    *(FigureDef(**d) for d in _beyond.figure_definitions()),
]}


def build_figure(name: str, store: Any = None,
                 datasets: dict[str, Any] | None = None, client: Any = None) -> PaperFigure:
    """Build one figure of :data:`FIGURES` (data from :func:`_dataset`).

    ``datasets`` is a cache of spec name -> dataset shared between calls.
    """
    if name not in FIGURES:
        raise ParameterError("figure", name, f"one of {', '.join(FIGURES)}")
    fig = FIGURES[name]
    cache: dict[str, Any] = {} if datasets is None else datasets
    for spec in fig.specs:
        if spec not in cache:
            cache[spec] = _dataset(load_spec(spec), store, client)
    element, bands, notes = fig.build(cache)
    if isinstance(element, _hv.hv().Layout):
        _hv.style(element, title=fig.title, mpl={"sublabel_format": "({alpha})"})
    else:
        _hv.style(element, title=fig.title)
    return PaperFigure(fig.name, fig.title, element, fig.specs, bands, notes, fig.inset)


def parse_formats(text: str) -> tuple[str, ...]:
    """``"pdf,svg,png"`` -> ``("pdf", "svg", "png")``: a comma-separated subset of
    :data:`FORMATS` (spaces and case ignored, repeats dropped); ``"all"`` is every format."""
    if text.strip().lower() == "all":
        return tuple(FORMATS)
    out: list[str] = []
    for item in text.split(","):
        fmt = item.strip().lower().lstrip(".")
        if fmt not in FORMATS:
            raise ParameterError("format", item.strip(),
                                 f"a comma-separated list of {', '.join(FORMATS)} (or all)")
        if fmt not in out:
            out.append(fmt)
    return tuple(out)


def save(figure: PaperFigure, path: Path, fmt: str, rendered: Any = None) -> Path:
    """Write ``figure`` as ``fmt`` to ``path``: "png", "svg" or "pdf" drawn for print by
    :mod:`phasemap.plot.static` (``rendered``, a figure from :meth:`PaperFigure.render`, is
    reused when given), "html" the interactive bokeh version with BokehJS inlined."""
    if fmt not in FORMATS:
        raise ParameterError("format", fmt, f"one of {', '.join(FORMATS)}")
    if FORMATS[fmt] == "static":
        return static.save(rendered if rendered is not None else figure.render(), path, fmt)
    h = _hv.hv()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # BokehJS inlined: the page works offline, with no CDN to reach.
        h.save(figure.element, os.fspath(path), backend="bokeh", title=figure.title,
               resources="inline")
    return path


def write_figures(out_dir: str | os.PathLike, store: Any = None,
                  formats: Iterable[str] = DEFAULT_FORMATS, *,
                  progress: Callable[[str], None] | None = None,
                  names: Iterable[str] | None = None, client: Any = None) -> list[Path]:
    """Write the paper's Figs. 2-9 and the extra phase maps into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Created if missing. Files are named ``<figure>.<format>`` (``fig5.png``,
        ``map_regime_eps_dV.html``, ...).
    store : Store or URL, optional
        Passed to ``phasemap.compute`` (default store when None).
    formats : iterable of {"png", "svg", "pdf", "html"}
        Default all four. PNG (at :data:`phasemap.plot.static.PNG_DPI` dpi), SVG and PDF
        are the print version drawn once per figure by :mod:`phasemap.plot.static`; HTML is
        the interactive bokeh version (BokehJS inlined, so it works offline).
    progress : callable(str), optional
        Called with one line of text before and after each figure.
    names : iterable of str, optional
        Only these figures (keys of :data:`FIGURES`); default all.
    client : distributed.Client, optional
        Passed to ``phasemap.compute`` for every spec. Without one, ``compute`` computes
        what is missing with dask's threaded scheduler in this process.

    Returns
    -------
    list of pathlib.Path
        The files written, in order.
    """
    formats = tuple(formats)
    if not formats:
        raise ParameterError("formats", formats, f"at least one of {', '.join(FORMATS)}")
    for fmt in formats:
        if fmt not in FORMATS:
            raise ParameterError("formats", fmt, f"some of {', '.join(FORMATS)}")
    wanted = list(FIGURES) if names is None else list(names)
    for name in wanted:
        if name not in FIGURES:
            raise ParameterError("figure", name, f"one of {', '.join(FIGURES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    cache: dict[str, Any] = {}
    written: list[Path] = []
    for i, name in enumerate(wanted, 1):
        t0 = time.perf_counter()
        say(f"[{i}/{len(wanted)}] {name}: {FIGURES[name].title}")
        fig = build_figure(name, store, cache, client)
        rendered = None
        if any(FORMATS[f] == "static" for f in formats):
            rendered = fig.render()  # drawn once, written in each static format
        for fmt in formats:
            written.append(save(fig, out / f"{name}.{fmt}", fmt, rendered))
        say(f"[{i}/{len(wanted)}] {name}: wrote {', '.join(formats)} "
            f"in {time.perf_counter() - t0:.1f} s")
    return written
