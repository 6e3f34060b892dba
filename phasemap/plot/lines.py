"""Line plots along one axis with the regime bands shaded behind the lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..regimes import LENSES
from ..variables import VARIABLES
from . import _hv
from .boundaries import Band, model_of, regime_bands, same_bands, select
from .colors import LINE_COLOR, LINE_COLORS
from .maps import _title, dimension

#: Opacity of the shaded bands.
BAND_ALPHA = 0.35


def band_spans(bands: Sequence[Band], *, legend: bool = True) -> list[Any]:
    """One ``hv.VSpan`` per band (group ``"Band"``, label = the band's label, data = edges),
    plus a legend square per distinct label when ``legend``."""
    h = _hv.hv()
    spans = []
    for b in bands:
        span = h.VSpan(b.start, b.stop, group="Band", label=b.label)
        spans.append(_hv.style(span, alpha=BAND_ALPHA,
                               bokeh={"color": b.color, "line_alpha": 0},
                               mpl={"facecolor": b.color, "color": None, "linewidth": 0}))
    entries = []
    if legend:
        seen = []
        for b in bands:
            if b.label not in seen:
                seen.append(b.label)
                entries.append(_hv.legend_entry(b.label, b.color))
    return spans + entries


def _by_label(name: str, value: float) -> str:
    return f"{VARIABLES.get(name, {}).get('symbol', name)} = {value:g}"


def line_plot(ds: xr.Dataset, along: str, variables: Sequence[str] = ("J_L", "Q_L", "Q_R", "s"),
              *, by: str | None = None, lens: str | None = "regime",
              bands: bool | str | Sequence[Band] = "auto", cols: int = 2, width: int | None = None,
              height: int = 300,
              legend_panel: int | None = None, title: str | None = None,
              colors: Mapping[float, str] | None = None, **sel: Any):
    """Lines of ``variables`` along ``along`` with the label bands of ``lens`` shaded.

    Parameters
    ----------
    ds : xarray.Dataset
        Data over ``along`` (and ``by``); other dimensions selected by ``sel``.
    along : str
        Horizontal axis.
    variables : sequence of str
        One panel per variable (a single variable gives a single panel).
    by : str, optional
        A dimension drawn as several lines per panel (e.g. ``"T"``), one colour each.
    lens : {"regime", "machine"} or None
        Label variable whose bands are shaded (None: no bands).
    bands : bool, "auto" or sequence of Band
        Shade bands. ``"auto"`` shades when there is one line, or when every ``by`` line has
        the same bands (e.g. anomalous thermodiffusion for ε < μ at any T); a list of
        :class:`~phasemap.plot.boundaries.Band` (from :func:`regime_bands`) is drawn as given.
    cols : int
        Panels per row.
    width, height : int
        Size of each panel [screen pixels]; default width 600 for one panel, 420 for several.
    legend_panel : int, optional
        Index of the panel that carries the legend (the others carry none); default the
        first panel of a single panel, else the last panel of the first row, whose legend
        is drawn outside the axes on the right.
    title : str, optional
        Title of the first panel; default lists the fixed parameters.
    colors : mapping of float to str, optional
        Colour of the line at each ``by`` value, so that one value keeps its colour across
        figures (e.g. ΔT = 5 in Figs. 3 and 4); values not in it, and every line when it is
        None, take :data:`~phasemap.plot.colors.LINE_COLORS` in order.
    **sel
        Values of the remaining dimensions.

    Returns
    -------
    holoviews.Overlay or holoviews.Layout
        Each panel overlays ``hv.VSpan`` bands (group ``"Band"``; read them back with
        :func:`phasemap.plot.spans_of`), a zero line, the ``hv.Curve`` lines and legend
        squares. The band edges are those of :func:`phasemap.plot.regime_bands`.
    """
    h = _hv.hv()
    for v in variables:
        if v not in ds:
            raise ParameterError("variables", v, f"variables of the dataset: "
                                                 f"{', '.join(map(str, ds.data_vars))}")
    if lens is not None and lens not in LENSES:
        raise ParameterError("lens", lens, f"one of {', '.join(LENSES)} or None")
    keep = [along] if by is None else [by, along]
    data = select(ds, keep, sel)
    assert isinstance(data, xr.Dataset)  # select keeps the type it is given
    m = model_of(ds)
    by_values = [None] if by is None else [float(v) for v in data[by].values]

    shaded: list[Band] = []
    if not isinstance(bands, bool | str):
        shaded = list(bands)
    elif lens is not None and bands and lens in data:
        per_line = [regime_bands(data if b is None or by is None else data.sel({by: b}),
                                 along, lens)
                    for b in by_values]
        if bands is True or len(per_line) == 1 or all(same_bands(per_line[0], p)
                                                       for p in per_line[1:]):
            shaded = per_line[0]

    xdim = dimension(along, ds[along].attrs)
    if width is None:
        width = 600 if len(variables) == 1 else 420
    if legend_panel is None:
        legend_panel = 0 if len(variables) == 1 else min(cols, len(variables)) - 1
    outside = len(variables) > 1
    panels = []
    for k, var in enumerate(variables):
        ydim = dimension(var, ds[var].attrs)
        layers = band_spans(shaded, legend=(k == legend_panel))
        layers.append(_hv.style(h.HLine(0.0), color="#777777",
                                bokeh={"line_width": 1}, mpl={"linewidth": 0.8}))
        for i, b in enumerate(by_values):
            line = data if b is None else data.sel({by: b})
            label = "" if b is None or by is None else _by_label(by, b)
            curve = h.Curve((np.asarray(line[along].values), np.asarray(line[var].values)),
                            kdims=[xdim], vdims=[ydim], label=label)
            if b is None:
                color = LINE_COLOR
            elif colors is not None and b in colors:
                color = colors[b]
            else:
                color = LINE_COLORS[i % len(LINE_COLORS)]
            layers.append(_hv.style(curve, color=color,
                                    bokeh={"line_width": 2}, mpl={"linewidth": 1.6}))
        show_legend = k == legend_panel and (bool(shaded) or by is not None)
        panel = h.Overlay(layers)
        x = np.asarray(data[along].values, dtype=np.float64)
        _hv.style(panel, show_legend=show_legend, xlabel=xdim.label, ylabel=ydim.label,
                  xlim=(float(x[0]), float(x[-1])),
                    bokeh={"width": width + (170 if outside and show_legend else 0),
                         "height": height, "show_grid": True,
                         "legend_position": "right" if outside else "top_left"},
                  mpl={"fig_inches": (width / 80, height / 80), "show_grid": True,
                       "legend_position": "right" if outside else "best"})
        panels.append(panel)

    if title is None:
        title = _title(data, [along] + ([by] if by else []), m)
    if title:
        _hv.style(panels[0], title=title)
    if len(panels) == 1:
        return panels[0]
    return h.Layout(panels).cols(cols)
