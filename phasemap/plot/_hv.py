"""HoloViews plumbing shared by the renderers: lazy import, per-backend options, legends."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BACKENDS = ("bokeh", "matplotlib")


def hv():
    """Import HoloViews with both plotting backends registered (done once, on first use)."""
    import holoviews
    import holoviews.plotting.bokeh
    import holoviews.plotting.mpl

    return holoviews


def style(obj, *, bokeh: dict[str, Any] | None = None, mpl: dict[str, Any] | None = None,
          **common: Any):
    """Apply options to ``obj`` for both backends (``common`` to each, then the specific)."""
    obj.opts(**{**common, **(bokeh or {})}, backend="bokeh")
    obj.opts(**{**common, **(mpl or {})}, backend="matplotlib")
    return obj


def legend_entry(label: str, color: str):
    """An invisible point whose only job is a square legend entry ``label`` in ``color``.

    HoloViews draws no legend for images or spans; one of these per label gives both backends
    the same legend. Its group is ``"Legend"`` so :func:`legend_entries` can find it.
    """
    h = hv()
    pt = h.Points([(float("nan"), float("nan"))], group="Legend", label=label)
    return style(pt, color=color, bokeh={"size": 12, "marker": "square", "line_color": "#555555"},
                 mpl={"s": 90, "marker": "s", "edgecolors": "#555555"})


def legend_line(label: str, color: str, bokeh: dict[str, Any], mpl: dict[str, Any]):
    """An invisible line giving a legend entry ``label`` drawn in the given line style."""
    h = hv()
    line = h.Curve([(float("nan"), float("nan"))], group="LegendLine", label=label)
    return style(line, color=color, bokeh=bokeh, mpl=mpl)


def option(element, name: str, backend: str = "bokeh"):
    """The value of a style or plot option of ``element`` for ``backend`` (None if unset)."""
    h = hv()
    for kind in ("style", "plot"):
        opts = h.Store.lookup_options(backend, element, kind).kwargs
        if name in opts:
            return opts[name]
    return None


def _walk(obj) -> Iterable[Any]:
    h = hv()
    if isinstance(obj, h.DynamicMap):
        obj = obj[()] if not obj.kdims else obj.last
    if isinstance(obj, h.core.Element):
        yield obj
        return
    for item in obj.values() if hasattr(obj, "values") else obj:
        yield from _walk(item)


def legend_entries(obj) -> dict[str, str]:
    """``{label: colour}`` of the legend squares in a figure, in drawing order."""
    h = hv()
    out: dict[str, str] = {}
    for el in _walk(obj):
        if isinstance(el, h.Points) and el.group == "Legend":
            out.setdefault(el.label, option(el, "color"))
    return out


def spans_of(obj) -> list[tuple[str, float, float]]:
    """``(label, start, stop)`` of every shaded band (``hv.VSpan``) in a figure."""
    h = hv()
    return [(el.label, float(el.data[0]), float(el.data[1]))
            for el in _walk(obj) if isinstance(el, h.VSpan)]


def elements(obj, kind) -> list[Any]:
    """Every element of type ``kind`` (e.g. ``hv.Image``) inside a figure."""
    return [el for el in _walk(obj) if isinstance(el, kind)]
