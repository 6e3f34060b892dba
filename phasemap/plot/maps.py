"""Phase maps: categorical images of ``regime``/``machine`` and images of float variables.

Every renderer returns a HoloViews object that works with the bokeh backend (interactive HTML)
and the matplotlib backend (PNG); options are set for both. Large grids are reduced with
HoloViews/datashader ``rasterize`` before they reach a browser, and label codes are reduced
by their *mode* (the most frequent code in each screen pixel), never averaged: the mean of
the codes of ``absolute_negative_mobility`` and ``joule_heating`` would be a code that means
something else entirely.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..regimes import LENSES
from ..variables import VARIABLES, axis_label
from . import _hv
from .boundaries import model_of, select, threshold_lines
from .colors import color_of, palette

#: Above this many grid cells a map is rasterized (categorically) before rendering.
MAX_PIXELS = 1_000_000

#: Default frame size [screen pixels] of a map; also the rasterized resolution.
WIDTH, HEIGHT = 640, 440

_CURVE_STYLE = {
    "J_L": ({"line_width": 2.5, "line_dash": "solid"}, {"linewidth": 2.0, "linestyle": "-"}),
    "Q_R": ({"line_width": 2.0, "line_dash": "dashed"}, {"linewidth": 1.6, "linestyle": "--"}),
    "Q_L": ({"line_width": 2.0, "line_dash": "dotted"}, {"linewidth": 1.6, "linestyle": ":"}),
    "P": ({"line_width": 2.0, "line_dash": "dashdot"}, {"linewidth": 1.6, "linestyle": "-."}),
}
_J_NAMES = {"dV": "ΔV_th", "dT": "ΔT_th", "eps": "ε_r"}
#: Colour of threshold curves on value maps: visible on every colour of the sequential
#: colour maps (no red in viridis) and, in the legend, on its white box.
VALUE_MAP_CURVE_COLOR = "#E6194B"


def dimension(name: str, attrs: dict | None = None):
    """A HoloViews dimension named ``name`` labelled from the metadata table / attrs."""
    h = _hv.hv()
    return h.Dimension(name, label=axis_label(name, attrs or VARIABLES.get(name)))


def curve_label(quantity: str, along: str) -> str:
    """Legend text of a threshold curve, e.g. ``"ΔV_th (J_L = 0)"``."""
    symbol = VARIABLES.get(quantity, {}).get("symbol", quantity)
    if quantity == "J_L" and along in _J_NAMES:
        return f"{_J_NAMES[along]} ({symbol} = 0)"
    if quantity == "Q_R":
        return f"{symbol} = 0 (RHT window edges)"
    return f"{symbol} = 0"


def _thresholds_request(thresholds, x: str, y: str) -> list[tuple[str, str]]:
    if thresholds is None or thresholds is False:
        return []
    if thresholds is True:
        return [("J_L", y), ("Q_R", y), ("Q_L", y)]
    out = []
    for item in thresholds:
        q, along = (item, y) if isinstance(item, str) else item
        out.append((str(q), str(along)))
    return out


def threshold_overlay(ds: xr.Dataset, x: str, y: str,
                      thresholds: bool | Sequence[str | tuple[str, str]] = True,
                      *, num: int = 401, color: str = "#111111", **sel: Any) -> list[Any]:
    """Threshold curves on an ``(x, y)`` map as ``hv.Path`` elements (group ``"Threshold"``).

    ``thresholds`` is True (``J_L``, ``Q_R`` and ``Q_L`` solved along ``y``), a list of
    quantities or ``(quantity, along)`` pairs, or a list of elements this function returned
    before (used as they are). The curves come from
    :func:`phasemap.plot.boundaries.threshold_lines`, i.e. from :func:`phasemap.threshold`.
    Each path's ``data`` holds the curve's points; each is followed by an empty line (group
    ``"LegendLine"``) that gives it a legend entry in both backends.
    """
    h = _hv.hv()
    if not isinstance(thresholds, bool) and thresholds is not None and all(
            isinstance(t, h.core.Element) for t in thresholds):
        return list(thresholds)  # already built (e.g. shared by the two lenses of a map)
    out = []
    kdims = [dimension(x, ds[x].attrs), dimension(y, ds[y].attrs)]
    for quantity, along in _thresholds_request(thresholds, x, y):
        lines = threshold_lines(ds, x, y, quantity, along=along, num=num, **sel)
        if not lines:
            continue
        path = h.Path([{x: seg[:, 0], y: seg[:, 1]} for seg in lines], kdims=kdims,
                      group="Threshold", label=curve_label(quantity, along))
        bk, mp = _CURVE_STYLE.get(quantity, _CURVE_STYLE["P"])
        out.append(_hv.style(path, color=color, show_legend=False, bokeh=bk, mpl=mp))
        out.append(_hv.legend_line(path.label, color, bk, mp))
    return out


def _regular(values: np.ndarray) -> bool:
    d = np.diff(values)
    return values.size >= 2 and bool(np.allclose(d, d[0], rtol=1e-6, atol=0))


def _title(plane: xr.Dataset | xr.DataArray, axes: Sequence[str], model) -> str:
    defaults = model.defaults()
    parts = []
    for name in model.param_names:
        if name in axes or name not in plane.coords or plane[name].size != 1:
            continue
        value = float(np.asarray(plane[name].values).ravel()[0])
        if name in ("mu", "gamma_L", "gamma_R") and value == defaults.get(name):
            continue
        parts.append(f"{VARIABLES.get(name, {}).get('symbol', name)} = {value:g}")
    return ", ".join(parts)


def _present(codes: xr.DataArray, n: int) -> tuple[list[int], bool]:
    """Codes present among ``0..n-1`` and whether any point holds no valid code (e.g. -1,
    which the store writes for points outside a model's domain)."""
    data = codes.data
    if hasattr(data, "map_blocks"):  # dask: count chunk by chunk
        import dask.array as da

        shifted = da.clip(data.ravel().astype(np.int64), -1, n) + 1
        counts = da.bincount(shifted, minlength=n + 2).compute()
    else:
        shifted = np.clip(np.asarray(data).ravel().astype(np.int64), -1, n) + 1
        counts = np.bincount(shifted, minlength=n + 2)
    present = [int(c) - 1 for c in np.nonzero(counts[1:n + 1])[0] + 1]
    return present, bool(counts[0] or counts[n + 1])


def _raster_element(da: xr.DataArray, x: str, y: str, vdim):
    """hv.Image for a regular grid, hv.QuadMesh otherwise."""
    h = _hv.hv()
    kdims = [dimension(x, da[x].attrs), dimension(y, da[y].attrs)]
    if _regular(np.asarray(da[x].values)) and _regular(np.asarray(da[y].values)):
        return h.Image(da, kdims=kdims, vdims=[vdim]), True
    return h.QuadMesh(da, kdims=kdims, vdims=[vdim]), False


def _shrink(element, regular: bool, size: int, max_pixels: int, aggregator: str,
            width: int, height: int, dynamic: bool):
    if size <= max_pixels or not regular:
        return element
    from holoviews.operation.datashader import rasterize

    return rasterize(element, aggregator=aggregator, width=width, height=height,
                     dynamic=dynamic)


def phase_map(ds: xr.Dataset, x: str, y: str, lens: str = "regime", *,
              thresholds: bool | Sequence[str | tuple[str, str]] = True,
              max_pixels: int = MAX_PIXELS, width: int = WIDTH, height: int = HEIGHT,
              dynamic: bool = False, title: str | None = None, **sel: Any):
    """Categorical map of a label variable over two dimensions.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`phasemap.evaluate` / :func:`phasemap.compute` (lazy is fine).
    x, y : str
        Dimensions on the horizontal and vertical axes.
    lens : {"regime", "machine"}
        Which label variable to draw.
    thresholds : bool or sequence
        Threshold curves to overlay (see :func:`threshold_overlay`); False for none.
    max_pixels : int
        Grids with more cells than this are reduced with HoloViews ``rasterize`` using the
        categorical ``mode`` aggregator (the most frequent code per screen pixel), so the
        result holds only valid label codes. The reduction is to ``width`` x ``height``.
    width, height : int
        Frame size in screen pixels (bokeh) and rasterized resolution.
    dynamic : bool
        Rasterize lazily, re-aggregating on zoom (needs a live server or notebook);
        False (default) rasterizes once, which is what static HTML and PNG need.
    title : str, optional
        Plot title; default lists the fixed parameters.
    **sel
        Values of the other dimensions (each must be on the grid), e.g. ``T=7.5``.

    Returns
    -------
    holoviews.Overlay
        The image (codes; colour ``palette(lens)[code]`` for every code, so each label has
        its fixed colour whatever else is present), the threshold paths (group
        ``"Threshold"``) and one legend square (group ``"Legend"``) for exactly the labels
        present in the selected data, in code order. Points without a valid code (the
        store's -1 outside a model's domain) are left blank.
    """
    h = _hv.hv()
    if lens not in LENSES:
        raise ParameterError("lens", lens, f"one of {', '.join(LENSES)}")
    if lens not in ds:
        raise ParameterError("lens", lens, "a label variable present in the dataset")
    labels = LENSES[lens]
    m = model_of(ds)
    plane = select(ds[[lens]], [y, x], sel)
    codes = plane[lens]
    present, invalid = _present(codes, len(labels))
    if invalid:  # no colour for points without a label: draw them as gaps
        codes = codes.where((codes >= 0) & (codes < len(labels))).astype(np.float32)

    vdim = h.Dimension(lens, label=lens, range=(-0.5, len(labels) - 0.5))
    element, regular = _raster_element(codes, x, y, vdim)
    element = _shrink(element, regular, codes.size, max_pixels, "mode", width, height, dynamic)
    image_opts: dict[str, Any] = {"cmap": palette(lens), "clim": (-0.5, len(labels) - 0.5),
                                  "colorbar": False}
    if not isinstance(element, h.DynamicMap):
        _hv.style(element, **image_opts, bokeh={"tools": ["hover"]})
    else:
        element = element.opts(**image_opts, backend="bokeh").opts(**image_opts,
                                                                    backend="matplotlib")

    curves = threshold_overlay(ds, x, y, thresholds, **sel)
    legend = [_hv.legend_entry(labels[c], color_of(labels[c])) for c in present]
    overlay = h.Overlay([element, *curves, *legend])
    if title is None:
        fixed = _title(plane, (x, y), m)
        title = f"{lens}: {fixed}" if fixed else lens
    return _hv.style(
        overlay, title=title,
        bokeh={"width": width, "height": height, "legend_position": "right",
               "xlim": _lim(codes[x]), "ylim": _lim(codes[y])},
        mpl={"fig_inches": (9, 4.8), "legend_position": "right", "aspect": 1.3,
             "xlim": _lim(codes[x]), "ylim": _lim(codes[y])},
    )


def _lim(coord: xr.DataArray) -> tuple[float, float]:
    v = np.asarray(coord.values, dtype=np.float64)
    if v.size < 2:
        return (float(v[0]) - 0.5, float(v[0]) + 0.5)
    half = 0.5 * float(v[1] - v[0])
    return (float(v[0]) - half, float(v[-1]) + half)


def value_map(ds: xr.Dataset, variable: str, x: str, y: str, *,
              thresholds: bool | Sequence[str | tuple[str, str]] = False,
              cmap: str = "viridis", logz: bool = False, max_pixels: int = MAX_PIXELS,
              width: int = WIDTH, height: int = HEIGHT, dynamic: bool = False,
              title: str | None = None, **sel: Any):
    """Map of a float variable (``s``, ``J_L``, ...) over two dimensions, with a colour bar.

    Large grids are rasterized with the ``mean`` aggregator (fine for a continuous variable).
    Other parameters as in :func:`phase_map`.
    """
    h = _hv.hv()
    if variable not in ds or variable in LENSES:
        raise ParameterError("variable", variable,
                             "a float variable of the dataset (labels: use phase_map)")
    m = model_of(ds)
    plane = select(ds[[variable]], [y, x], sel)
    da = plane[variable]
    vdim = dimension(variable, da.attrs)
    element, regular = _raster_element(da, x, y, vdim)
    element = _shrink(element, regular, da.size, max_pixels, "mean", width, height, dynamic)
    opts: dict[str, Any] = {"cmap": cmap, "colorbar": True, "logz": logz}
    if isinstance(element, h.DynamicMap):
        element = element.opts(**opts, backend="bokeh").opts(**opts, backend="matplotlib")
    else:
        _hv.style(element, **opts, bokeh={"tools": ["hover"]})
    curves = threshold_overlay(ds, x, y, thresholds, color=VALUE_MAP_CURVE_COLOR, **sel)
    if title is None:
        fixed = _title(plane, (x, y), m)
        long_name = da.attrs.get("long_name", variable)
        title = f"{long_name}: {fixed}" if fixed else long_name
    return _hv.style(
        h.Overlay([element, *curves]), title=title,
        # the legend outside the plot area (below it: the colour bar is on the right)
        bokeh={"width": width, "height": height, "legend_position": "bottom",
               "xlim": _lim(da[x]), "ylim": _lim(da[y]), "bgcolor": "#444444"},
        mpl={"fig_inches": (8, 4.8), "legend_position": "bottom",
             "xlim": _lim(da[x]), "ylim": _lim(da[y])},
    )
