"""Rendering: phase maps, line plots with regime bands, and the paper's figures.

Built on HoloViews (bokeh backend for interactive HTML, matplotlib backend for PNG). HoloViews
is imported only when a renderer is first used, so ``import phasemap`` and
``import phasemap.plot`` stay light; :mod:`phasemap.plot.colors` and
:mod:`phasemap.plot.boundaries` never import it.

Main entry points::

    phase_map(ds, x, y, lens="regime", **sel)        # categorical map + thresholds + legend
    value_map(ds, "s", x, y, **sel)                  # float variable with a colour bar
    line_plot(ds, along, variables=(...), **sel)     # lines with the regime bands shaded
    regime_bands(ds, along, lens="regime", **sel)    # the bands as numbers
    threshold_lines(ds, x, y, quantity, **sel)       # the threshold curves as numbers
    write_figures(out_dir, formats=("png", "svg", "pdf", "html"))  # the paper's Figs. 2-9
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .boundaries import Band, regime_bands, threshold_lines
from .colors import LABEL_COLORS, color_of, palette

_LAZY = {
    "phase_map": "maps",
    "value_map": "maps",
    "threshold_overlay": "maps",
    "MAX_PIXELS": "maps",
    "line_plot": "lines",
    "band_spans": "lines",
    "legend_entries": "_hv",
    "spans_of": "_hv",
    "elements": "_hv",
    "write_figures": "figures",
    "build_figure": "figures",
    "FIGURES": "figures",
}

__all__ = ["LABEL_COLORS", "Band", "color_of", "palette", "regime_bands", "threshold_lines",
           *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
