"""Where the labels change: regime bands along a line and threshold curves across a map.

Pure numerics, no plotting library. Both are *located on the grid* (which neighbouring
samples differ) and then *refined by root finding* with :func:`phasemap.threshold` on the
model itself, so an edge is exact to the root finder's tolerance, not to the grid spacing.
The renderers in :mod:`phasemap.plot.maps` and :mod:`phasemap.plot.lines` draw what these
functions return, and tests read the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ParameterError
from ..models import Model, get_model
from ..regimes import LENSES
from ..thresholds import threshold
from .colors import color_of

#: Quantities whose sign decides a label (the regime rules compare only these with zero).
SIGN_QUANTITIES: tuple[str, ...] = ("J_L", "Q_L", "Q_R", "P")

#: Relative tolerance for locating a band edge (times the span of the line).
EDGE_RTOL = 1e-13


# --- selecting what to draw ---------------------------------------------------------------

def model_of(obj: xr.Dataset | xr.DataArray, model: str | Model | None = None) -> Model:
    """The model a dataset was computed with (``attrs["model"]``, default single_level)."""
    if model is not None:
        return get_model(model)
    return get_model(obj.attrs.get("model", "single_level"))


def select(obj: xr.Dataset | xr.DataArray, keep: Sequence[str],
           sel: Mapping[str, Any]) -> xr.Dataset | xr.DataArray:
    """Reduce ``obj`` to the dims ``keep`` (in that order) using ``sel`` for every other dim.

    ``sel`` may name a dimension (nearest coordinate within a relative 1e-9, else an error) or a
    scalar coordinate (then it must equal the fixed value). Dimensions of length one are
    squeezed; any other dimension left over is an error naming it.
    """
    for name in keep:
        if name not in obj.dims:
            dims = ", ".join(map(str, obj.dims))
            raise ParameterError(name, name, f"a dimension of the data: {dims}")
    for name, value in sel.items():
        if name in keep:
            raise ParameterError(name, value, f"no selection: {name!r} is an axis of the plot")
        if name in obj.dims:
            coord = np.asarray(obj[name].values, dtype=np.float64)
            tol = 1e-9 * max(1.0, float(np.max(np.abs(coord))))
            k = int(np.argmin(np.abs(coord - float(value))))
            if abs(coord[k] - float(value)) > tol:
                shown = coord.tolist() if coord.size <= 8 else f"{coord[0]:g} ... {coord[-1]:g}"
                raise ParameterError(name, value, f"a value on the grid: {shown}")
            obj = obj.isel({name: k})
        elif name in obj.coords and obj[name].ndim == 0:
            fixed = float(obj[name])
            if not math.isclose(fixed, float(value), rel_tol=1e-9, abs_tol=1e-12):
                raise ParameterError(name, value, f"{fixed:g}, the fixed value in this data")
        else:
            raise ParameterError(name, value, f"a dimension or coordinate of the data: "
                                              f"{', '.join(map(str, obj.coords))}")
    extra = [d for d in obj.dims if d not in keep]
    for d in extra:
        if obj.sizes[d] == 1:
            obj = obj.isel({d: 0})
        else:
            raise ParameterError(str(d), f"{obj.sizes[d]} values",
                                 f"one value: select it with {d}=... (the plot's axes are "
                                 f"{', '.join(keep)})")
    return obj.transpose(*keep)


def fixed_params(obj: xr.Dataset | xr.DataArray, model: Model,
                 exclude: Sequence[str]) -> dict[str, float]:
    """Scalar values of every model parameter of ``obj`` except ``exclude``."""
    out = {}
    for name in model.param_names:
        if name in exclude or name not in obj.coords:
            continue
        coord = obj[name]
        if coord.size != 1:
            raise ParameterError(name, f"{coord.size} values",
                                 "one value: select it before computing boundaries")
        out[name] = float(np.asarray(coord.values).ravel()[0])
    return out


# --- bands along a line -------------------------------------------------------------------

@dataclass(frozen=True)
class Band:
    """A contiguous stretch of one label along a line.

    ``start``/``stop`` are located by root finding (see :func:`regime_bands`); ``exact`` is
    False only if an edge could not be tied to a sign change and is a grid midpoint.
    """

    label: str
    code: int
    start: float
    stop: float
    lens: str = "regime"
    exact: bool = True

    @property
    def color(self) -> str:
        return color_of(self.label)

    @property
    def width(self) -> float:
        return self.stop - self.start


def _edge(model: Model, along: str, a: float, b: float, fixed: Mapping[str, float],
          quantities: Sequence[str], xtol: float) -> tuple[float, bool]:
    """Where between samples ``a < b`` of ``along`` the label changes."""
    fa = model(**fixed, **{along: np.float64(a)})
    fb = model(**fixed, **{along: np.float64(b)})
    for q in quantities:
        va, vb = float(fa[q]), float(fb[q])
        if va == 0.0 and vb == 0.0:
            continue
        if va == 0.0:
            return a, True
        if vb == 0.0:
            return b, True
        if va * vb < 0.0:
            params: dict[str, Any] = dict(fixed)
            root = threshold(along, model.name, bracket=(a, b), quantity=q, xtol=xtol, **params)
            return float(root), True
    if along in ("dT", "dV") and a <= 0.0 <= b:
        return 0.0, True  # the force itself changes sign (forward frame flips)
    return 0.5 * (a + b), False


def regime_bands(obj: xr.Dataset, along: str, lens: str = "regime", *,
                 model: str | Model | None = None,
                 quantities: Sequence[str] = SIGN_QUANTITIES, **sel: Any) -> list[Band]:
    """Contiguous label bands along one axis, edges refined with :func:`phasemap.threshold`.

    Parameters
    ----------
    obj : xarray.Dataset
        Data with the label variable ``lens``; every dimension but ``along`` is selected by
        ``sel`` or has length one.
    along : str
        The axis of the line (``"eps"``, ``"dT"``, ``"dV"``, ...).
    lens : {"regime", "machine"}
        Which label to band.
    model : str, optional
        Model to root-find on (default ``obj.attrs["model"]``).
    quantities : sequence of str
        Sign-deciding outputs tried, in order, at each change of label.
    **sel
        Values for the other dimensions.

    Returns
    -------
    list of Band
        Ordered along ``along``, covering the sampled range. Each edge is the root of the
        first quantity that changes sign between the two samples bracketing the change
        (to ``EDGE_RTOL`` times the span), or exactly a sample where that quantity is zero, or
        0 where ``along`` is a force (``dT``, ``dV``) crossing zero. Bands of zero width (a
        label held by isolated samples only, e.g. ``reversible`` exactly at ε_r) are dropped
        and their equal-labelled neighbours merged; stretches without a valid code get no
        band.
    """
    if lens not in LENSES:
        raise ParameterError("lens", lens, f"one of {', '.join(LENSES)}")
    m = model_of(obj, model)
    line = select(obj, [along], sel)
    codes = np.asarray(line[lens].values).astype(np.int64)
    x = np.asarray(line[along].values, dtype=np.float64)
    if x.size == 0:
        return []
    labels = LENSES[lens]
    fixed = fixed_params(line, m, exclude=[along])
    span = float(x[-1] - x[0]) or 1.0
    xtol = EDGE_RTOL * max(span, float(np.max(np.abs(x))), 1.0)

    change = np.nonzero(codes[1:] != codes[:-1])[0]
    edges = [(float(x[0]), True)]
    edges += [_edge(m, along, float(x[i]), float(x[i + 1]), fixed, quantities, xtol)
              for i in change]
    edges.append((float(x[-1]), True))
    run_codes = [int(codes[0])] + [int(codes[i + 1]) for i in change]

    bands: list[Band] = []
    drop = 1e3 * xtol
    gap = False  # a stretch without a label since the last band: never bridge it
    for k, code in enumerate(run_codes):
        (lo, lo_ok), (hi, hi_ok) = edges[k], edges[k + 1]
        if not 0 <= code < len(labels):
            gap = True  # no label (e.g. -1 outside the model's domain): no band
            continue
        if hi - lo <= drop and len(run_codes) > 1:
            continue
        band = Band(labels[code], code, lo, hi, lens, lo_ok and hi_ok)
        if gap:
            gap = False
        elif bands and bands[-1].code == code:
            prev = bands.pop()
            band = Band(prev.label, code, prev.start, hi, lens, prev.exact and band.exact)
        elif bands and bands[-1].stop != lo and abs(bands[-1].stop - lo) <= drop:
            # the two edges of a dropped zero-width band: let the neighbours meet at one
            prev = bands[-1]
            bands[-1] = Band(prev.label, prev.code, prev.start, lo, lens, prev.exact)
        bands.append(band)
    return bands


def same_bands(a: Sequence[Band], b: Sequence[Band], tol: float = 1e-9) -> bool:
    """True when two band lists have the same labels and edges (to ``tol``)."""
    return len(a) == len(b) and all(
        p.label == q.label and abs(p.start - q.start) <= tol and abs(p.stop - q.stop) <= tol
        for p, q in zip(a, b, strict=True))


# --- threshold curves across a map --------------------------------------------------------

#: Samples along the solving axis used to isolate roots before refining them.
ISOLATION_SAMPLES = 129


def _split(candidates: np.ndarray) -> int:
    """The candidate index with the most trailing zero bits (coarsest dyadic point)."""
    tz = [(int(j) & -int(j)).bit_length() if j else 64 for j in candidates]
    return int(candidates[int(np.argmax(tz))])


def _brackets(sign: np.ndarray) -> tuple[list[int], list[tuple[int, int]]]:
    """Zero samples and one-root brackets (sample indices) for one row of signs."""
    n = sign.size
    zeros = [int(j) for j in np.nonzero(sign == 0)[0]]
    cells = [int(c) for c in np.nonzero(sign[:-1] * sign[1:] < 0)[0]]
    events = sorted([(z, z, "zero") for z in zeros] + [(c, c + 1, "cell") for c in cells])
    out = []
    for k, (left, right, kind) in enumerate(events):
        if kind != "cell":
            continue
        if k == 0:
            lo = 0
        else:
            cand = np.arange(events[k - 1][1], left + 1)
            cand = cand[sign[cand] != 0]
            lo = _split(cand)
        if k == len(events) - 1:
            hi = n - 1
        else:
            cand = np.arange(right, events[k + 1][0] + 1)
            cand = cand[sign[cand] != 0]
            hi = _split(cand)
        out.append((lo, hi))
    return zeros, out


def _track(xs: np.ndarray, roots: list[np.ndarray], max_jump: float) -> list[np.ndarray]:
    """Join roots at successive ``xs`` into polylines (nearest neighbour within max_jump)."""
    done: list[list[tuple[float, float]]] = []
    open_: list[list[tuple[float, float]]] = []
    for x, found in zip(xs, roots, strict=True):
        ys = sorted(float(y) for y in found)
        pairs = sorted((abs(seg[-1][1] - y), i, j)
                       for i, seg in enumerate(open_) for j, y in enumerate(ys))
        used_seg, used_y = set(), set()
        nxt = []
        for dist, i, j in pairs:
            if dist > max_jump or i in used_seg or j in used_y:
                continue
            used_seg.add(i)
            used_y.add(j)
            open_[i].append((float(x), ys[j]))
            nxt.append(open_[i])
        done += [seg for i, seg in enumerate(open_) if i not in used_seg]
        nxt += [[(float(x), ys[j])] for j in range(len(ys)) if j not in used_y]
        open_ = nxt
    done += open_
    return [np.asarray(seg, dtype=np.float64) for seg in done]


def threshold_lines(obj: xr.Dataset, x: str, y: str, quantity: str = "J_L", *,
                    along: str | None = None, num: int = 401,
                    model: str | Model | None = None, xtol: float | None = None,
                    **sel: Any) -> list[np.ndarray]:
    """Curves where ``quantity`` changes sign on the ``(x, y)`` plane of a map.

    For each of up to ``num`` values of the *other* axis (taken from the map's coordinates)
    the sign changes of ``quantity`` along ``along`` (default ``y``) are isolated on
    ``ISOLATION_SAMPLES`` points of the map's range and each is refined with
    :func:`phasemap.threshold` (one call per distinct bracket, vectorised over all the
    points that share it). With ``quantity="J_L"`` this traces ΔV_th (along ``dV``), ΔT_th
    (along ``dT``) or ε_r (along ``eps``); with ``"Q_R"`` both edges of the
    reverse-heat-transport window.

    Returns
    -------
    list of numpy.ndarray
        Polylines, each of shape ``(n, 2)`` holding ``(x, y)`` points in map coordinates.
    """
    along = y if along is None else along
    if along not in (x, y):
        raise ParameterError("along", along, f"one of the map's axes {x!r}, {y!r}")
    other = x if along == y else y
    m = model_of(obj, model)
    plane = select(obj, [y, x], sel)
    fixed = fixed_params(plane, m, exclude=[x, y])
    ovals = np.asarray(plane[other].values, dtype=np.float64)
    avals = np.asarray(plane[along].values, dtype=np.float64)
    if ovals.size > num:
        ovals = ovals[np.unique(np.linspace(0, ovals.size - 1, num).round().astype(int))]
    lo, hi = float(avals[0]), float(avals[-1])
    if not hi > lo:
        return []
    samples = np.linspace(lo, hi, ISOLATION_SAMPLES)
    samples[0], samples[-1] = lo, hi
    vals = m(**fixed, **{other: ovals[:, None], along: samples[None, :]})[quantity]
    sign = np.sign(np.broadcast_to(vals, (ovals.size, samples.size)))
    xtol = xtol if xtol is not None else 1e-9 * (hi - lo)

    roots: list[list[float]] = [[] for _ in ovals]
    groups: dict[tuple[int, int], list[int]] = {}
    for i in range(ovals.size):
        zeros, brackets = _brackets(sign[i])
        roots[i] += [float(samples[z]) for z in zeros]
        for br in brackets:
            groups.setdefault(br, []).append(i)
    for (a, b), rows in groups.items():
        params: dict[str, Any] = {**fixed, other: ovals[rows]}
        found = threshold(along, m.name, bracket=(float(samples[a]), float(samples[b])),
                          quantity=quantity, xtol=xtol, **params)
        for i, r in zip(rows, np.atleast_1d(found.values), strict=True):
            if np.isfinite(r):
                roots[i].append(float(r))

    lines = _track(ovals, [np.asarray(r) for r in roots], max_jump=0.15 * (hi - lo))
    if along == x:  # tracked as (y, x_root): swap into map coordinates
        lines = [seg[:, ::-1] for seg in lines]
    return lines
