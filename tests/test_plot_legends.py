"""Legends of the maps: outside the plot area, every swatch visible on the legend's box."""

from __future__ import annotations

import numpy as np
import pytest

import phasemap
from phasemap.plot import _hv, phase_map, value_map


def luminance(color: str) -> float:
    """Relative luminance of ``#rrggbb`` (WCAG 2.1)."""
    rgb = [int(color.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def hex_of(color) -> str:
    from matplotlib.colors import to_hex

    return to_hex(color)


@pytest.fixture(scope="module")
def plane():
    _hv.hv()
    return phasemap.evaluate(eps=np.linspace(-20, 20, 81), dV=np.linspace(-20, 20, 81),
                             T=7.5, dT=5.0)


@pytest.mark.parametrize("draw", [
    lambda ds: value_map(ds, "s", "eps", "dV", thresholds=True),
    lambda ds: value_map(ds, "J_L", "eps", "dV", thresholds=True),
    lambda ds: phase_map(ds, "eps", "dV", thresholds=True),
], ids=["value-s", "value-J_L", "phase"])
def test_legends_sit_outside_the_map_with_visible_swatches(plane, draw):
    import holoviews as hv
    from bokeh.models import Legend

    fig = hv.render(draw(plane), backend="bokeh")
    assert not [r for r in fig.center if isinstance(r, Legend)], "legend over the map"
    legends = [r for side in (fig.right, fig.below, fig.left, fig.above) for r in side
               if isinstance(r, Legend)]
    assert len(legends) == 1
    legend = legends[0]
    box = hex_of(legend.background_fill_color or "#ffffff")
    lines = 0
    for item in legend.items:
        for renderer in item.renderers:
            glyph = renderer.glyph
            if type(glyph).__name__ == "Line":  # a threshold curve's swatch
                lines += 1
                assert contrast(hex_of(glyph.line_color), box) >= 3.0, item.label
    assert lines == 3  # J_L, Q_R and Q_L thresholds
