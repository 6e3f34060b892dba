"""The explorer's decisions as pure functions: no Panel, no Bokeh, no I/O.

Everything the explorer chooses (default map axes, form fields from a model's parameters,
parsing of the form, readable label names, typeset symbols and units, which stored points go
to the screen, colour limits, the model's domain on a plane, the slice-export query) is
decided here from the model registry (:mod:`phasemap.models`) and plain arrays, so that it
is unit-tested without a browser (``tests/test_explorer_logic.py``) and works for any
registered model: no parameter or output name is written here.

One function here touches data: :func:`read_slice`, the explorer's only read of a map's
plane, kept here so that the read path can be swapped (for a direct slice reader of the
store) in one place.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import numpy as np

from ..errors import ParameterError
from ..models import Model

if TYPE_CHECKING:
    import xarray as xr

#: Labels of at least two words and more than this many characters are abbreviated to their
#: initials on the map and spelled out in the legend (ANM, RHT, AT for the paper's lens).
ABBREVIATE_ABOVE = 16

#: Colour of points outside the model's domain (stored as NaN / label code -1).
MASK_COLOR = "#5b5b5b"


# --- names, symbols, units -------------------------------------------------------------------

def readable(label: str) -> str:
    """A label name in words: ``"absolute_negative_mobility"`` -> ``"absolute negative
    mobility"``."""
    return label.replace("_", " ")


def abbreviation(label: str) -> str:
    """Short form of a label: the initials of long multi-word labels (``"ANM"``), otherwise
    the label in words."""
    words = [w for w in label.split("_") if w]
    if len(words) >= 2 and len(label) > ABBREVIATE_ABOVE:
        return "".join(w[0].upper() for w in words)
    return readable(label)


def legend_text(label: str) -> str:
    """Legend entry spelling out an abbreviation: ``"ANM: absolute negative mobility"``."""
    short = abbreviation(label)
    return f"{short}: {readable(label)}" if short != readable(label) else short


_GREEK = {"alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "eps": "ε",
          "mu": "μ", "sigma": "σ", "tau": "τ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ"}
_SUB_DIGITS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def typeset_units(units: str | None) -> str:
    """Units as a physicist writes them: ``"E0 gamma0"`` -> ``"E₀ γ₀"``, ``"1"`` -> ``""``."""
    if not units or units == "1":
        return ""
    out = []
    for word in str(units).split():
        m = re.fullmatch(r"([A-Za-z]+)(\d*)", word)
        if m:
            base = _GREEK.get(m.group(1), m.group(1))
            out.append(base + m.group(2).translate(_SUB_DIGITS))
        else:
            out.append(word)
    return " ".join(out)


def typeset_symbol(symbol: str, html: bool = False) -> str:
    """A symbol with its subscript typeset: ``"J_L"`` -> ``"J<sub>L</sub>"`` (``html``) or
    ``"J_L"`` left as it is in plain text; Greek names become letters (``"gamma_L"`` ->
    ``"γ_L"``)."""
    base, _, sub = str(symbol).partition("_")
    base = _GREEK.get(base, base)
    if not sub:
        return base
    return f"{base}<sub>{sub}</sub>" if html else f"{base}_{sub}"


def quantity_label(attrs: Mapping[str, Any], name: str, html: bool = False) -> str:
    """``"ΔV [E₀]"``, ``"J<sub>L</sub> [γ₀]"``: symbol and units from a variable's attrs."""
    symbol = typeset_symbol(str(attrs.get("symbol") or name), html=html)
    units = typeset_units(attrs.get("units"))
    return f"{symbol} [{units}]" if units else symbol


# --- datasets and axes -----------------------------------------------------------------------

def multi_dims(sizes: Mapping[str, int]) -> list[str]:
    """Dimensions with more than one value, in the dataset's order."""
    return [str(d) for d, n in sizes.items() if n > 1]


def default_axes(sizes: Mapping[str, int], order: Sequence[str] = ()
                 ) -> tuple[str | None, str | None]:
    """The map's (x, y) when a dataset is opened.

    ``x`` is the first dimension with several values in ``order`` (the model's parameter
    order; dimensions it does not name follow in the dataset's order); ``y`` the one with the
    most values among the rest (ties: the earlier in that order). ``None`` where there are
    too few dimensions with several values.
    """
    multi = multi_dims(sizes)
    ranked = [d for d in order if d in multi] + [d for d in multi if d not in order]
    if not ranked:
        return None, None
    x = ranked[0]
    rest = ranked[1:]
    if not rest:
        return x, None
    y = max(rest, key=lambda d: (sizes[d], -rest.index(d)))
    return x, y


def other_axes(sizes: Mapping[str, int], x: str | None, y: str | None) -> list[str]:
    """Dimensions with several values that are not on the map: one slider each."""
    return [d for d in multi_dims(sizes) if d not in (x, y)]


def swap_if_equal(x: str, y: str, changed: str, options: Sequence[str]) -> tuple[str, str]:
    """Keep the two map axes different: when the user sets ``changed`` (``"x"`` or ``"y"``)
    to the other axis, the other one takes the first remaining option."""
    if x != y:
        return x, y
    others = [o for o in options if o != x]
    if not others:
        return x, y
    return (x, others[0]) if changed == "x" else (others[0], y)


def describe_dataset(record: Mapping[str, Any]) -> str:
    """Menu text of a stored dataset: name, axes with sizes and the fixed parameters,
    e.g. ``"paper map (eps 401 × dV 201; T = 7.5)"``."""
    spec = record.get("spec") or {}
    name = str(spec.get("name") or record.get("id"))
    if len(name) > 60:
        name = name[:59] + "…"
    dims = record.get("dims") or []
    shape = record.get("shape") or []
    axes = " × ".join(f"{d} {n}" for d, n in zip(dims, shape, strict=True) if n > 1)
    fixed = fixed_parameters(record)
    text = axes + ("; " if axes and fixed else "") + fixed
    return f"{name} ({text})" if text else name


def fixed_parameters(record: Mapping[str, Any]) -> str:
    """The dataset's fixed parameters (one-value axes and stated params) as text,
    ``"T = 7.5, gamma_L = 2"``; parameters left at the model's defaults are not stated."""
    spec = record.get("spec") or {}
    parts = {str(k): v for k, v in (spec.get("params") or {}).items()}
    for d, n in zip(record.get("dims") or [], record.get("shape") or [], strict=True):
        axis = (spec.get("axes") or {}).get(d)
        if n == 1 and axis is not None:
            value = axis[0] if isinstance(axis, list) else axis.get("start")
            parts[str(d)] = value
    return ", ".join(f"{k} = {float(v):g}" for k, v in parts.items()
                     if isinstance(v, int | float))


# --- the new-grid form -----------------------------------------------------------------------

@dataclass(frozen=True)
class FormField:
    """One field of the new-grid form, made from a model parameter."""

    name: str
    label: str
    default: float
    help: str


def form_fields(model: Model) -> list[FormField]:
    """One field per parameter of ``model``, in its order, with symbol, units and range."""
    out = []
    for p in model.parameters:
        attrs = p.attrs()
        label = f"{quantity_label(attrs, p.name)} ({p.name})"
        desc = p.description or attrs.get("long_name", p.name)
        out.append(FormField(p.name, label, p.default,
                             f"{desc}; default {p.default:g}; {p.allowed()}"))
    return out


def parse_field(name: str, text: str) -> Any:
    """One form field: ``""`` -> None (the model's default), ``"7.5"`` -> 7.5,
    ``"a:b:n"`` -> a range dict, ``"a, b"`` -> a list. Bad text raises
    :class:`~phasemap.errors.ParameterError` naming the field."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        if ":" in text:
            start, stop, num = (part.strip() for part in text.split(":"))
            return {"start": float(start), "stop": float(stop), "num": int(num)}
        if "," in text:
            return [float(part) for part in text.split(",") if part.strip()]
        return float(text)
    except ValueError:
        raise ParameterError(name, text, "a number, start:stop:num or a list a, b, c") from None


def parse_form(model: Model, texts: Mapping[str, str], name: str = "") -> dict[str, Any]:
    """The form as a grid-spec dict (validated by :meth:`phasemap.grid.GridSpec.from_dict`):
    numbers become ``params``, ranges and lists ``axes``; unknown fields are refused."""
    params: dict[str, float] = {}
    axes: dict[str, Any] = {}
    known = set(model.param_names)
    for field_name, text in texts.items():
        if field_name not in known:
            raise ParameterError(field_name, text, f"a parameter of model {model.name!r}: "
                                                   f"{', '.join(model.param_names)}")
        value = parse_field(field_name, text)
        if value is None:
            continue
        if isinstance(value, float):
            params[field_name] = value
        else:
            axes[field_name] = value
    spec: dict[str, Any] = {"model": model.name, "params": params, "axes": axes}
    if name.strip():
        spec["name"] = name.strip()[:200]
    return spec


# --- what goes to the screen ------------------------------------------------------------------

def cell_edges(coord: np.ndarray) -> np.ndarray:
    """Edges of the cells around sorted coordinate values (midpoints; the end cells extend
    by half the neighbouring gap, a lone value by 0.5 either side)."""
    c = np.asarray(coord, dtype=np.float64)
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def is_regular(coord: np.ndarray) -> bool:
    c = np.asarray(coord, dtype=np.float64)
    if c.size < 3:
        return True
    d = np.diff(c)
    return bool(np.allclose(d, d[0], rtol=1e-6, atol=0.0))


@dataclass(frozen=True)
class ScreenAxis:
    """The stored points shown along one axis: pixel ``j`` (``lo + j (hi - lo)/n`` to the
    next) shows stored index ``index[j]``."""

    index: np.ndarray
    lo: float
    hi: float

    @property
    def n(self) -> int:
        return int(self.index.size)

    def pixel(self, value: float) -> int:
        """The pixel under data coordinate ``value`` (clipped), as Bokeh's image hover finds
        it: ``floor((value - lo) / (hi - lo) * n)``."""
        j = math.floor((value - self.lo) / (self.hi - self.lo) * self.n)
        return min(max(j, 0), self.n - 1)

    def stored_index(self, value: float) -> int:
        return int(self.index[self.pixel(value)])


def screen_axis(coord: np.ndarray, window: tuple[float, float] | None, pixels: int
                ) -> ScreenAxis:
    """Which stored points to send for one axis of a window at ``pixels`` resolution.

    Only stored points are sent, never averages (labels stay valid codes). A regular axis
    with at most ``pixels`` points in the window gets one pixel per point, placed on its
    cell; otherwise the window's span is cut into ``pixels`` equal pixels, each showing the
    stored point whose cell holds the pixel's centre.
    """
    c = np.asarray(coord, dtype=np.float64)
    edges = cell_edges(c)
    lo_all, hi_all = float(edges[0]), float(edges[-1])
    lo, hi = (lo_all, hi_all) if window is None else (max(lo_all, min(window)),
                                                      min(hi_all, max(window)))
    if not hi > lo:
        lo, hi = lo_all, hi_all
    # stored points whose cells meet the window
    first = int(np.clip(np.searchsorted(edges, lo, side="right") - 1, 0, c.size - 1))
    last = int(np.clip(np.searchsorted(edges, hi, side="left") - 1, 0, c.size - 1))
    count = last - first + 1
    if is_regular(c) and count <= pixels:
        return ScreenAxis(np.arange(first, last + 1), float(edges[first]),
                          float(edges[last + 1]))
    n = max(1, min(pixels, 4 * count if not is_regular(c) else pixels))
    centres = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    index = np.clip(np.searchsorted(edges, centres, side="right") - 1, 0, c.size - 1)
    return ScreenAxis(index.astype(np.int64), lo, hi)


#: After a pan or zoom the view is re-sent only when it lacks something the new window
#: could show: data beyond the view's extent, or resolution: fewer screen pixels of the view
#: across the window than this fraction of the stored points (at most one per pixel) the
#: window holds. Above it the browser's own redraw of the view it has is what the user sees.
REFETCH_BELOW = 0.7


def view_suffices(axis: ScreenAxis, coord: np.ndarray, window: tuple[float, float],
                  pixels: int) -> bool:
    """Whether the view along one axis (``axis``, cut from ``coord``) already shows
    ``window`` well enough for a screen of ``pixels``: the window (clipped to the data)
    lies inside the view, and the view either holds every stored point there or at least
    :data:`REFETCH_BELOW` of the detail a fresh view of the window would have."""
    c = np.asarray(coord, dtype=np.float64)
    edges = cell_edges(c)
    lo, hi = max(min(window), float(edges[0])), min(max(window), float(edges[-1]))
    if not hi > lo:
        return True  # the window shows no data at all: nothing to fetch
    span = axis.hi - axis.lo
    tol = 1e-9 * max(abs(span), abs(axis.lo), abs(axis.hi), 1e-300)
    if lo < axis.lo - tol or hi > axis.hi + tol:
        return False
    if is_regular(c) and axis.n > 0 and bool(np.all(np.diff(axis.index) == 1)):
        return True  # every stored point of the window is in the view, one pixel each
    first = int(np.clip(np.searchsorted(edges, lo, side="right") - 1, 0, c.size - 1))
    last = int(np.clip(np.searchsorted(edges, hi, side="left") - 1, 0, c.size - 1))
    shown = axis.n * (hi - lo) / span  # pixels of the view across the window
    return shown >= REFETCH_BELOW * min(last - first + 1, pixels)


def neighbour_values(coords: Mapping[str, np.ndarray], fixed: Mapping[str, float]
                     ) -> list[tuple[str, float]]:
    """The values one slider step away from ``fixed``: for each fixed dimension, the grid
    values just after and just before its current one (in that order, dimensions in the
    order of ``fixed``), as ``(dimension, value)`` pairs."""
    out = []
    for d, value in fixed.items():
        c = np.asarray(coords[d], dtype=np.float64)
        k = int(np.argmin(np.abs(c - value)))
        out += [(d, float(c[j])) for j in (k + 1, k - 1) if 0 <= j < c.size]
    return out


def exact_text(value: float) -> str:
    """A float as its shortest round-trip decimal, the way the browser prints it
    (``String(x)``: ``-10`` for -10.0, ``NaN``): parsing it gives the same float back."""
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    text = repr(v)
    return text[:-2] if text.endswith(".0") else text


def color_limits(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour-map limits: symmetric about 0 for a signed quantity (diverging map centred on
    0), the finite range otherwise; a flat or empty field gets a unit-wide range."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return (-1.0, 1.0) if signed else (0.0, 1.0)
    if signed:
        m = float(np.max(np.abs(finite)))
        m = m if m > 0 else 1.0
        return -m, m
    lo, hi = float(finite.min()), float(finite.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def present_codes(codes: np.ndarray, n: int) -> tuple[list[int], bool]:
    """Label codes present among ``0..n-1`` and whether any point has none (code < 0 or
    out of range: outside the model's domain)."""
    c = np.asarray(codes).ravel().astype(np.int64)
    shifted = np.clip(c, -1, n) + 1
    counts = np.bincount(shifted, minlength=n + 2)
    present = [int(k) - 1 for k in np.nonzero(counts[1:n + 1])[0] + 1]
    return present, bool(counts[0] or counts[n + 1])


def domain_mask(model: Model, params: Mapping[str, np.ndarray]) -> np.ndarray:
    """True where the parameters (broadcast arrays; missing ones take the model's
    defaults) lie outside the model's domain: a parameter's range or a joint constraint."""
    defaults = model.defaults()
    arrays = {n: np.asarray(params.get(n, defaults[n]), dtype=np.float64)
              for n in model.param_names}
    shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
    bad = np.zeros(shape, dtype=bool)
    for p in model.parameters:
        if p.name in params:
            bad |= np.broadcast_to(p.violates(arrays[p.name]), shape)
    for con in model.constraints:
        bad |= np.broadcast_to(np.asarray(con.check(*(arrays[n] for n in con.params)),
                                          dtype=bool), shape)
    return bad


def domain_text(model: Model) -> str:
    """What the model's domain requires, for the legend of the masked region."""
    parts = [con.allowed for con in model.constraints]
    if not parts:
        parts = [f"{p.name}: {p.allowed()}" for p in model.parameters
                 if not (math.isinf(p.lower) and math.isinf(p.upper))]
    return "; ".join(parts)


def slice_query(dataset_id: str, fixed: Mapping[str, float], fmt: str = "netcdf") -> str:
    """The HTTP API's slice export of the map's plane (``/api/grids/{id}/slice?...``)."""
    query = {k: repr(float(v)) for k, v in fixed.items()}
    query["format"] = fmt
    return f"/api/grids/{dataset_id}/slice?{urlencode(query)}"


# --- the one read of map data ------------------------------------------------------------------

def slice_index(coords: Mapping[str, np.ndarray], dims: Sequence[str], x: str, y: str,
                fixed: Mapping[str, float]) -> dict[str, int]:
    """Integer positions of the plane ``(x, y)`` at ``fixed`` values: each fixed dimension
    at its grid value nearest to the one asked for, every other dimension off the map at 0."""
    index = {}
    for d, value in fixed.items():
        coord = np.asarray(coords[d], dtype=np.float64)
        index[d] = int(np.argmin(np.abs(coord - value)))
    for d in dims:
        if d not in (x, y) and d not in index:
            index[d] = 0
    return index


def read_slice(ds: xr.Dataset, x: str, y: str, fixed: Mapping[str, float],
               outputs: Sequence[str]) -> xr.Dataset:
    """The 2-D slice ``(y, x)`` of ``ds`` at ``fixed`` values with ``outputs`` (every output
    and both labels, as stored or derived on read), loaded into memory.

    This is the explorer's only read of map data (the line plot and the CSV export read
    through :mod:`phasemap.query`-style selections of the same dataset). A dataset opened
    from a store is read with :meth:`phasemap.store.Store.slice` (the inner chunks the plane
    touches, straight from the shards, outputs derived for the plane alone: no dask graph);
    any other dataset through its own selection.
    """
    index = slice_index({str(d): ds[d].values for d in ds.dims}, [str(d) for d in ds.dims],
                        x, y, fixed)
    spec, url = ds.attrs.get("spec"), ds.attrs.get("store")
    if isinstance(spec, str) and isinstance(url, str):
        from ..grid import GridSpec

        at = {str(d): float(ds[d].values[i]) for d, i in index.items()}
        return _store(url).slice(GridSpec.from_dict(json.loads(spec)), x=x, y=y, at=at,
                                 variables=list(outputs)).transpose(y, x)
    return ds[list(outputs)].isel(index).transpose(y, x).compute()


@functools.lru_cache(maxsize=8)
def _store(url: str):
    from ..store import Store

    return Store(url)
