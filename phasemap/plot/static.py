"""Print-ready static figures (PNG, SVG, PDF) drawn with matplotlib from a figure's elements.

The renderers in :mod:`phasemap.plot.maps` and :mod:`phasemap.plot.lines` return HoloViews
objects, which the bokeh backend turns into interactive HTML. For a paper the static
rendering needs what HoloViews' matplotlib backend does not give: one legend per figure,
always *outside* the axes; panel letters that share a line with the panel's title, so the
two can never collide; typeset symbols and units (:math:`\\dot Q_L` [:math:`E_0\\gamma_0`],
not ``Q_L [E0 gamma0]``); one font size scheme; constrained layout (no wide gaps between
columns); and insets where the paper has insets (its Figs. 2 and 3 show Q_L as an inset of
the J_L panel). :func:`render` walks the element tree and draws each element with
matplotlib directly, reading the colours and line styles the renderers set for the
matplotlib backend, so the printed figure shows exactly the numbers and colours of the
interactive one.

Figures follow Y. Zhang and X. Lü, Phys. Rev. E 111, 044112 (2025).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _hv
from .colors import LABEL_COLORS, label_text

#: Static formats :func:`save` writes.
STATIC_FORMATS = ("png", "svg", "pdf")

#: Resolution of PNG output [dots per inch].
PNG_DPI = 200

#: Size of one panel [inches] (a two-column figure of a journal is about 7 in wide).
PANEL_INCHES = (3.1, 2.3)

#: Size of a map panel [inches].
MAP_INCHES = (3.9, 3.0)

#: Width reserved for a legend outside the axes [inches].
LEGEND_INCHES = 2.3

#: Matplotlib settings of every static figure: one font family and a small set of sizes.
RC: Any = {
    "font.family": "DejaVu Sans",
    "mathtext.fontset": "dejavusans",
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "figure.titlesize": 10,
    "axes.linewidth": 0.8,
    "axes.unicode_minus": True,
    "pdf.fonttype": 42,  # TrueType in the PDF: text stays text, as journals ask
    "svg.fonttype": "path",  # self-contained SVG, no font needed to view it
    "savefig.bbox": "standard",
}

#: Fraction of the axes an inset takes (width, height).
INSET_SIZE = (0.34, 0.36)

#: Line widths set for the screen are scaled by this in print (panels are ~3 in wide).
LINE_SCALE = 0.75

# Symbols and units as matplotlib mathtext. Longest names first so that "ΔT_th" wins over
# "ΔT" and "ΔT" over "T"; a name is replaced only where it is not part of a longer word.
_TEX = {
    "E0 gamma0": r"$E_0\gamma_0$",
    "gamma0": r"$\gamma_0$",
    "E0": r"$E_0$",
    "ΔV_th": r"$\Delta V_{\rm th}$",
    "ΔT_th": r"$\Delta T_{\rm th}$",
    "ε_r": r"$\varepsilon_r$",
    "μ_L": r"$\mu_L$",
    "μ_R": r"$\mu_R$",
    "J_L": r"$J_L$",
    "Q_L": r"$\dot{Q}_L$",
    "Q_R": r"$\dot{Q}_R$",
    "ΔT": r"$\Delta T$",
    "ΔV": r"$\Delta V$",
    "σ": r"$\sigma$",
    "ε": r"$\varepsilon$",
    "μ": r"$\mu$",
    "T": r"$T$",
    "P": r"$P$",
}
_TEX_RE = re.compile(
    r"(?<![A-Za-z0-9_])(" + "|".join(re.escape(k) for k in sorted(_TEX, key=len, reverse=True))
    + r")(?![A-Za-z0-9_])")
_MINUS_RE = re.compile(r"(?<![\w.])-(?=\d)")


def tex(text: str) -> str:
    """``text`` with the project's symbols and units typeset as matplotlib mathtext.

    ``"Q_L [E0 gamma0]"`` becomes ``"$\\dot{Q}_L$ [$E_0\\gamma_0$]"``, ``"T = 7.5, ε = -15"``
    becomes ``"$T$ = 7.5, $\\varepsilon$ = −15"`` (a true minus sign). Text that already holds
    mathtext (a ``$``) is returned unchanged.
    """
    if "$" in text:
        return text
    text = _MINUS_RE.sub("\N{MINUS SIGN}", text)
    return _TEX_RE.sub(lambda m: _TEX[m.group(1)], text)


# --- reading the element tree --------------------------------------------------------------

def _opt(el, name: str, default: Any = None) -> Any:
    value = _hv.option(el, name, "matplotlib")
    return default if value is None else value


def _panels(element) -> tuple[list[Any], int]:
    """The panels of a figure (Overlays or single elements) and the number of columns."""
    h = _hv.hv()
    if isinstance(element, h.Layout):
        panels = list(element)
        return panels, int(getattr(element, "_max_cols", None) or len(panels))
    return [element], 1


def _members(panel) -> list[Any]:
    h = _hv.hv()
    if isinstance(panel, h.Overlay):
        return list(panel)
    return [panel]


def _is_map(panel) -> bool:
    h = _hv.hv()
    return any(isinstance(el, h.Image | h.QuadMesh) for el in _members(panel))


def _light(color: str) -> bool:
    """Whether ``color`` is so light that a line of it vanishes on white."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.8


def _line_kwargs(el) -> dict[str, Any]:
    color = _opt(el, "color", "#222222")
    kw: dict[str, Any] = {"color": color,
                          "linewidth": LINE_SCALE * float(_opt(el, "linewidth", 1.4)),
                          "linestyle": _opt(el, "linestyle", "-")}
    if _light(color):  # a white curve on a map: cased in dark grey so it reads on white too
        from matplotlib import patheffects

        kw["path_effects"] = [patheffects.Stroke(linewidth=kw["linewidth"] + 1.6,
                                                 foreground="#333333"), patheffects.Normal()]
    return kw


# --- drawing -----------------------------------------------------------------------------

class _Legend:
    """Legend handles collected over all panels, one per label, in drawing order."""

    def __init__(self) -> None:
        self.handles: dict[str, Any] = {}

    def add(self, label: str, handle: Any) -> None:
        if label and label not in self.handles:
            self.handles[label] = handle


def _draw_image(ax, el, fig) -> None:
    from matplotlib.colors import ListedColormap, LogNorm, Normalize

    h = _hv.hv()
    xs = np.asarray(el.dimension_values(0, expanded=False), dtype=np.float64)
    ys = np.asarray(el.dimension_values(1, expanded=False), dtype=np.float64)
    z = np.asarray(el.dimension_values(2, flat=False), dtype=np.float64)
    cmap = _opt(el, "cmap", "viridis")
    if isinstance(cmap, list | tuple):
        cmap = ListedColormap(list(cmap))
    else:
        from matplotlib import colormaps

        cmap = colormaps[cmap]
    cmap = cmap.with_extremes(bad=(0, 0, 0, 0))  # points without a value stay blank
    clim = _opt(el, "clim")
    if _opt(el, "logz", False):
        positive = z[np.isfinite(z) & (z > 0)]
        norm: Any = LogNorm(*(clim or (positive.min(), positive.max())))
    else:
        norm = Normalize(*(clim or (np.nanmin(z), np.nanmax(z))))
    masked = np.ma.masked_invalid(z)
    if isinstance(el, h.Image):
        l, b, r, t = (float(v) for v in el.bounds.lbrt())
        art = ax.imshow(masked, origin="lower", extent=(l, r, b, t), cmap=cmap, norm=norm,
                        aspect="auto", interpolation="nearest", rasterized=True)
    else:
        art = ax.pcolormesh(xs, ys, masked, shading="nearest", cmap=cmap, norm=norm,
                            rasterized=True)
    if _opt(el, "colorbar", False):
        bar = fig.colorbar(art, ax=ax, pad=0.02, fraction=0.06)
        bar.set_label(tex(el.vdims[0].label))


def _draw_panel(ax, panel, fig, legend: _Legend, *, small: bool = False) -> None:
    """Draw one panel's elements on ``ax`` and collect its legend entries."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    h = _hv.hv()
    span_alpha: dict[str, float] = {}
    xlabel = ylabel = None
    for el in _members(panel):
        if isinstance(el, h.VSpan):
            start, stop = (float(v) for v in el.data)
            alpha = float(_opt(el, "alpha", 1.0))
            span_alpha[el.label] = alpha
            ax.axvspan(start, stop, facecolor=_opt(el, "facecolor", "#DDDDDD"), alpha=alpha,
                       linewidth=0, zorder=0)
        elif isinstance(el, h.HLine):
            ax.axhline(float(el.data), color=_opt(el, "color", "#777777"),
                       linewidth=_opt(el, "linewidth", 0.8), zorder=1)
        elif isinstance(el, h.VLine):
            ax.axvline(float(el.data), color=_opt(el, "color", "#777777"),
                       linewidth=_opt(el, "linewidth", 0.8), zorder=1)
        elif isinstance(el, h.Image | h.QuadMesh):
            _draw_image(ax, el, fig)
            xlabel, ylabel = el.kdims[0].label, el.kdims[1].label
        elif isinstance(el, h.Points) and el.group == "Legend":
            color = _opt(el, "color", "#999999")
            legend.add(label_text(el.label) if el.label in LABEL_COLORS else el.label,
                       Patch(facecolor=color, alpha=span_alpha.get(el.label, 1.0),
                             edgecolor="#555555", linewidth=0.6))
        elif isinstance(el, h.Curve) and el.group == "LegendLine":
            legend.add(el.label, Line2D([], [], **_line_kwargs(el)))
        elif isinstance(el, h.Scatter):
            x = el.dimension_values(0)
            y = el.dimension_values(1)
            art = ax.scatter(x, y, s=_opt(el, "s", 30) * (0.3 if small else 0.5),
                             marker=_opt(el, "marker", "o"), color=_opt(el, "color", "#000000"),
                             zorder=4, clip_on=False)
            legend.add(el.label, art)
        elif isinstance(el, h.Path):
            kw = _line_kwargs(el)
            for seg in el.split():
                ax.plot(seg.dimension_values(0), seg.dimension_values(1), zorder=3, **kw)
        elif isinstance(el, h.Curve):
            (line,) = ax.plot(el.dimension_values(0), el.dimension_values(1), zorder=2,
                              **_line_kwargs(el))
            if el.label:
                legend.add(el.label, line)
            xlabel = xlabel or el.kdims[0].label
            ylabel = ylabel or el.vdims[0].label
    xlabel = _opt(panel, "xlabel", xlabel)
    ylabel = _opt(panel, "ylabel", ylabel)
    if xlabel:
        ax.set_xlabel(tex(str(xlabel)), labelpad=2)
    if ylabel:
        ax.set_ylabel(tex(str(ylabel)), labelpad=2)
    for lim, setter in ((_opt(panel, "xlim"), ax.set_xlim), (_opt(panel, "ylim"), ax.set_ylim)):
        if lim is not None and all(v is not None and np.isfinite(v) for v in lim):
            setter(*lim)
    if _opt(panel, "show_grid", False) and not _is_map(panel):
        ax.grid(True, color="#CCCCCC", linewidth=0.5, alpha=0.6)
    ax.tick_params(direction="out", length=3, width=0.7, pad=2)
    ax.margins(x=0)


def _curve_points(panel) -> np.ndarray:
    """Every data point of the panel's curves, as (n, 2) array (for inset placement)."""
    h = _hv.hv()
    pts = [np.column_stack([el.dimension_values(0), el.dimension_values(1)])
           for el in _members(panel) if isinstance(el, h.Curve) and el.group != "LegendLine"]
    return np.concatenate(pts) if pts else np.empty((0, 2))


#: Lower-left corners an inset may take [axes fraction]: a 5 x 5 grid, each leaving room for
#: the inset's tick labels (left of and below it) inside the main axes.
_INSET_SLOTS = [(float(x0), float(y0))
                for y0 in np.linspace(0.97 - INSET_SIZE[1], 0.15, 5)
                for x0 in np.linspace(0.14, 0.97 - INSET_SIZE[0], 5)]

#: Room kept free of curve points around an inset for its tick labels [axes fraction]:
#: left, bottom, right, top.
_INSET_MARGIN = (0.13, 0.12, 0.02, 0.02)


def inset_slot(ax, points: np.ndarray) -> tuple[float, float, float, float]:
    """Where in ``ax`` an inset (with its tick labels) covers the fewest ``points`` (data
    coordinates), as ``(x0, y0, width, height)`` in axes fractions; among equals the first
    of :data:`_INSET_SLOTS` (top rows first, left first)."""
    w, hgt = INSET_SIZE
    to_axes = ax.transData + ax.transAxes.inverted()
    xy = to_axes.transform(points) if len(points) else np.empty((0, 2))
    best, best_count = None, None
    left, bottom, right, top = _INSET_MARGIN
    for x0, y0 in _INSET_SLOTS:
        inside = ((xy[:, 0] > x0 - left) & (xy[:, 0] < x0 + w + right)
                  & (xy[:, 1] > y0 - bottom) & (xy[:, 1] < y0 + hgt + top))
        count = int(inside.sum())
        if best_count is None or count < best_count:
            best, best_count = (x0, y0, w, hgt), count
    assert best is not None
    return best


def _panel_title(panel) -> str:
    title = _opt(panel, "title", "")
    return "" if title in (None, "", "{label} {group} {dimensions}") else str(title)


def render(element, *, title: str = "", inset: bool = False,
           panel_titles: Sequence[str] | None = None):
    """Draw a figure's HoloViews element tree as a print-ready matplotlib figure.

    Parameters
    ----------
    element : holoviews.Layout, Overlay or Element
        What :mod:`phasemap.plot` renderers return (line plots, phase and value maps).
    title : str
        Figure title (typeset with :func:`tex`, wrapped to the figure's width).
    inset : bool
        Draw the second panel of a two-panel layout as an inset of the first (the paper's
        Figs. 2 and 3), in the corner where it covers the fewest curve points.
    panel_titles : sequence of str, optional
        Text after each panel's letter; default the panel's own title option.

    Returns
    -------
    matplotlib.figure.Figure
        With constrained layout; one legend (``fig.legends[0]``) outside every axes, right of
        the panels; each panel's letter ``(a)``, ``(b)``, ... is the left-aligned title of
        its axes, followed by the panel title, so the two are one text and cannot overlap.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    panels, cols = _panels(element)
    if inset and len(panels) != 2:
        raise ValueError(f"an inset figure needs two panels, not {len(panels)}")
    drawn = panels[:1] if inset else panels
    cols = 1 if inset else min(cols, len(drawn))
    rows = -(-len(drawn) // cols)
    is_map = _is_map(drawn[0])
    pw, ph = MAP_INCHES if is_map else PANEL_INCHES
    if inset:
        pw, ph = pw * 1.35, ph * 1.35
    legend = _Legend()
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(cols * pw + LEGEND_INCHES, rows * ph + (0.45 if title else 0.1)),
                     layout=ConstrainedLayoutEngine(w_pad=0.03, h_pad=0.03, wspace=0.04,
                                                    hspace=0.04))
        FigureCanvasAgg(fig)  # a canvas that draws: layout and text extents are measured
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax in axes[len(drawn):]:
            ax.remove()
        letters = "abcdefghijklmnopqrstuvwxyz"
        many = len(drawn) > 1
        for k, (ax, panel) in enumerate(zip(axes, drawn, strict=False)):
            _draw_panel(ax, panel, fig, legend)
            text = panel_titles[k] if panel_titles is not None else _panel_title(panel)
            if len(panels) == 1 or inset:
                text = "" if (k == 0 and text == title) else text
            head = f"({letters[k]})" if many else ""
            full = "  ".join(t for t in (head, tex(text) if text else "") if t)
            if full:
                ax.set_title(full, loc="left", fontweight="normal", pad=3)
        if inset:
            main = axes[0]
            fig.canvas.draw()  # data limits final before choosing the corner
            slot = inset_slot(main, _curve_points(drawn[0]))
            ins = main.inset_axes(slot)
            with matplotlib.rc_context({"xtick.labelsize": 7, "ytick.labelsize": 7,
                                        "axes.labelsize": 7}):
                _draw_panel(ins, panels[1], fig, legend, small=True)
                ins.xaxis.label.set_size(7)
                ins.yaxis.label.set_size(7)
                ins.tick_params(labelsize=7, length=2, pad=1)
            ins.set_facecolor("white")
            ins.set_zorder(5)
        if legend.handles:
            fig.legend(list(legend.handles.values()), [tex(k) for k in legend.handles],
                       loc="outside right upper", frameon=False, handlelength=1.8,
                       borderaxespad=0.2)
        if title:
            _title(fig, title, cols * pw + LEGEND_INCHES)
    return fig


def _title(fig, title: str, width: float) -> None:
    """A left-aligned figure title, wrapped until it clears the legend (which sits right of
    the panels, from the top of the figure)."""
    chars = int(width * 72 / (0.5 * RC["figure.titlesize"]))
    while True:
        text = tex("\n".join(textwrap.wrap(title, chars, break_on_hyphens=False)))
        sup = fig.suptitle(text, x=0.01, ha="left")
        if not fig.legends or chars <= 20:
            return
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        if not sup.get_window_extent(renderer).overlaps(
                fig.legends[0].get_window_extent(renderer)):
            return
        chars -= 6


def save(fig, path: str | Path, fmt: str) -> Path:
    """Write a figure from :func:`render` as ``fmt`` (one of :data:`STATIC_FORMATS`).

    PNG at :data:`PNG_DPI`; SVG and PDF are vector (maps embed their image as a raster) and
    carry no creation date, so the same figure gives the same file.
    """
    import matplotlib

    if fmt not in STATIC_FORMATS:
        from ..errors import ParameterError

        raise ParameterError("format", fmt, f"one of {', '.join(STATIC_FORMATS)}")
    metadata: dict[str, Any] = {"png": {}, "svg": {"Date": None},
                                "pdf": {"CreationDate": None, "ModDate": None}}[fmt]
    with matplotlib.rc_context(RC):
        fig.savefig(Path(path), format=fmt, dpi=PNG_DPI, metadata=metadata)
    return Path(path)
