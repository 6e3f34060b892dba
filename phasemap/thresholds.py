"""Threshold curves by vectorised scanning and bracketing root finding on the model itself.

The paper's ΔT_th and ΔV_th (Zhang & Lü, PRE 111, 044112 (2025), Sec. IV), the reversible
level ε_r (eq. 10) and the edges of the reverse-heat-transport window are all points where a
quantity changes sign along one parameter. :func:`threshold` finds them for any model, not
only those with closed forms, to an absolute tolerance, never by reading a grid:

1. the search range (``bracket``, or the model's declared range of the parameter) is sampled
   at ``scan + 1`` evenly spaced points in one vectorised model call;
2. a sample where the quantity is exactly zero is a root (the models return flows with exact
   signs, so an exact zero is a true zero), unless the quantity is zero at every sample: then
   it vanishes identically along the axis (e.g. ``J_L`` at ``dT = dV = 0``) and there is no
   threshold to find;
3. every interval between samples whose ends have opposite signs is refined by bisection.

Each point gets a ``status`` (a CF flag coordinate): ``found``, ``no_sign_change`` or
``identically_zero``; a NaN root always comes with the reason. Roots closer together than the
sample spacing ``(hi - lo) / scan`` can hide from the scan (two sign changes in one interval
cancel): pass a narrower bracket or a larger ``scan`` where that matters.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from .errors import ParameterError
from .grid import as_input, validate_inputs
from .models import Model, get_model
from .variables import attrs_for

#: ``status`` codes of :func:`threshold`, in order.
STATUS_LABELS: tuple[str, ...] = ("found", "no_sign_change", "identically_zero")
FOUND, NO_SIGN_CHANGE, IDENTICALLY_ZERO = range(3)

#: Bisection steps at most (the interval halves each time; 2**-200 of any float range is
#: below its spacing).
MAX_STEPS = 200


def default_bracket(model: Model, along: str,
                    params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The model's declared range of ``along`` at each point, as closed float bounds.

    The parameter's own ``lower``/``upper`` bounds, narrowed by the model's joint constraint
    on the lead temperatures (``|dT| < 2 T``: ``dT`` in ``(-2T, 2T)``, ``T`` above
    ``|dT|/2``). Open ends move to the nearest float inside. A range that is still unbounded
    is a :class:`ParameterError` asking for ``bracket``.
    """
    p = model.parameter(along)
    defaults = model.defaults()
    shape = np.broadcast_shapes(*(np.shape(v) for v in params.values())) if params else ()
    lo = np.full(shape, p.lower, dtype=np.float64)
    hi = np.full(shape, p.upper, dtype=np.float64)
    lo_open = np.full(shape, p.lower_open)
    hi_open = np.zeros(shape, dtype=bool)
    temps = any(along in c.params for c in model.constraints) and {"T", "dT"} <= set(
        model.param_names)
    if temps and along == "dT":
        T = np.broadcast_to(np.asarray(params.get("T", defaults["T"]), dtype=np.float64), shape)
        lo, hi = np.maximum(lo, -2.0 * T), np.minimum(hi, 2.0 * T)
        lo_open[...] = True
        hi_open[...] = True
    elif temps and along == "T":
        dT = np.broadcast_to(np.asarray(params.get("dT", defaults["dT"]), dtype=np.float64),
                             shape)
        lo = np.maximum(lo, 0.5 * np.abs(dT))
        lo_open[...] = True
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ParameterError(
            "bracket", None,
            f"a (lo, hi) search range for {along!r}: the model {model.name!r} declares "
            f"{along} in {p.allowed().removeprefix('a finite number in ')}, which is "
            "unbounded, so there is no default range to search")
    lo = np.where(lo_open, np.nextafter(lo, np.inf), lo)
    hi = np.where(hi_open, np.nextafter(hi, -np.inf), hi)
    if along == "dT" and temps:
        # T - |dT|/2 > 0 must hold in floats too (the model's own check)
        T = np.broadcast_to(np.asarray(params.get("T", defaults["T"]), dtype=np.float64), shape)
        hi = np.where(T - 0.5 * np.abs(hi) > 0, hi, np.nextafter(hi, -np.inf))
        lo = np.where(T - 0.5 * np.abs(lo) > 0, lo, np.nextafter(lo, np.inf))
    return lo, hi


def threshold(along: str, model: str = "single_level", *,
              bracket: tuple[float, float] | None = None, quantity: str = "J_L",
              xtol: float = 1e-10, roots: str = "single", scan: int = 64,
              **params: Any) -> xr.DataArray:
    """Values of ``along`` in ``bracket`` where ``quantity`` changes sign (or is exactly 0).

    Parameters
    ----------
    along : str
        The parameter to solve for (``"dT"``, ``"dV"``, ``"eps"``, ``"T"``, ...).
    model : str
        Registered model name.
    bracket : (lo, hi), optional
        Search interval of ``along``; both ends must be valid for the model everywhere.
        Default: the model's declared range of ``along`` (with ``|dT| < 2T`` for ``dT`` and
        ``T``); a :class:`ParameterError` if that range is unbounded (``eps``, ``dV``).
    quantity : str
        A float output of the model (``"J_L"``, ``"Q_R"``, ``"Q_L"``, ``"P"``).
    xtol : float
        Absolute tolerance on a root found by bisection (default 1e-10).
    roots : {"single", "all"}
        ``"single"``: one root per point, no extra dimension; a point with several roots
        is a :class:`ParameterError` (narrow the bracket, or ask for ``"all"``).
        ``"all"``: every root, ascending, along a dimension ``root`` (NaN-padded).
    scan : int
        Number of intervals the bracket is sampled in before refining (default 64).
    **params
        Every other parameter, as in :func:`phasemap.evaluate` (scalars, 1-D sequences,
        DataArrays); the result is broadcast over them.

    Returns
    -------
    xarray.DataArray
        The root(s) [units of ``along``]; NaN where there is none, and then the coordinate
        ``status`` (int8, CF flags :data:`STATUS_LABELS`) says why: ``no_sign_change`` (the
        quantity has one sign at every sample) or ``identically_zero`` (it is 0 at every
        sample: no threshold along this axis).
    """
    m = get_model(model)
    if along not in m.param_names:
        raise ParameterError("along", along, f"one of {', '.join(m.param_names)}")
    if along in params:
        raise ParameterError(along, params[along], "no value: it is the unknown being solved for")
    float_outputs = [o for o in m.outputs if o not in ("regime", "machine")]
    if quantity not in float_outputs:
        raise ParameterError("quantity", quantity, f"one of {', '.join(float_outputs)}")
    if not (xtol > 0):
        raise ParameterError("xtol", xtol, "a positive tolerance")
    if roots not in ("single", "all"):
        raise ParameterError("roots", roots, "'single' or 'all'")
    if isinstance(scan, bool) or not (isinstance(scan, int | np.integer) and 1 <= scan <= 4096):
        raise ParameterError("scan", scan, "an integer from 1 to 4096")

    inputs = {k: as_input(k, v) for k, v in params.items()}
    template = xr.broadcast(*inputs.values())[0] if inputs else xr.DataArray(0.0)
    shape = template.shape
    args = {k: np.broadcast_to(v.broadcast_like(template).values, shape) for k, v in inputs.items()}
    if bracket is None:
        validate_inputs(m, inputs)
        lo, hi = default_bracket(m, along, args)
        lo, hi = np.broadcast_to(lo, shape), np.broadcast_to(hi, shape)
        bracket_attr: Any = "model range"
    else:
        try:
            lo_f, hi_f = (float(b) for b in bracket)
        except (TypeError, ValueError):
            raise ParameterError("bracket", bracket, "two finite numbers lo < hi") from None
        if not (math.isfinite(lo_f) and math.isfinite(hi_f) and lo_f < hi_f):
            raise ParameterError("bracket", bracket, "two finite numbers lo < hi")
        validate_inputs(m, {**inputs, along: xr.DataArray([lo_f, hi_f], dims=("_bracket",))})
        lo, hi = np.full(shape, lo_f), np.full(shape, hi_f)
        bracket_attr = [lo_f, hi_f]

    found = _find_roots(m, along, quantity, args, lo, hi, xtol, scan)
    values, status = found
    if roots == "single":
        if values.shape[-1] > 1:
            several = int(np.argmax(np.isfinite(values[..., 1]).ravel()))
            where = np.unravel_index(several, shape) if shape else ()
            at = {d: template[d].values[i].item() for d, i in zip(template.dims, where,
                                                                  strict=True)
                  if d in template.coords}
            raise ParameterError(
                "bracket", bracket_attr,
                f"a range in which {quantity} changes sign at most once at every point; "
                f"at {at or 'the point'} it has "
                f"{int(np.isfinite(values.reshape(-1, values.shape[-1])[several]).sum())} "
                f"roots: {values.reshape(-1, values.shape[-1])[several].tolist()}; pass "
                "roots='all' for every root along a 'root' dimension")
        out = template.copy(data=values[..., 0])
    else:
        out = xr.DataArray(values, dims=(*template.dims, "root"),
                           coords=template.coords)
    out.name = f"{along}_threshold"
    out.coords["status"] = (template.dims, status)
    out.coords["status"].attrs = {"long_name": "outcome of the threshold search",
                                  "flag_values": np.arange(len(STATUS_LABELS), dtype=np.int8),
                                  "flag_meanings": " ".join(STATUS_LABELS)}
    attrs = attrs_for(along)
    out.attrs = {"units": attrs.get("units", ""),
                 "long_name": f"value of {along} where {quantity} changes sign",
                 "quantity": quantity, "model": m.name, "model_version": m.version,
                 "bracket": bracket_attr, "xtol": xtol, "scan": int(scan)}
    return out


def _find_roots(m: Model, along: str, quantity: str, args: dict[str, np.ndarray],
                lo: np.ndarray, hi: np.ndarray, xtol: float, scan: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(roots, status)``: roots ascending along a last axis (NaN-padded, at least 1 long)."""
    shape = lo.shape
    k = np.arange(scan + 1) / scan
    grid = lo[..., None] + (hi - lo)[..., None] * k
    grid[..., -1] = hi  # exactly the bracket end
    grid = np.minimum(grid, hi[..., None])
    f = np.asarray(m(**{n: v[..., None] for n, v in args.items()}, **{along: grid})[quantity])
    f = np.broadcast_to(f, grid.shape)
    zero = f == 0.0
    everywhere = zero.all(axis=-1)
    sg = np.sign(f)
    change = (sg[..., :-1] * sg[..., 1:]) < 0
    zero_root = zero & ~everywhere[..., None]

    npts = math.prod(shape)
    flat_grid = grid.reshape(npts, scan + 1)
    pts_z, idx_z = np.nonzero(zero_root.reshape(npts, scan + 1))
    pts_c, idx_c = np.nonzero(change.reshape(npts, scan))
    a = flat_grid[pts_c, idx_c]
    b = flat_grid[pts_c, idx_c + 1]
    fa = f.reshape(npts, scan + 1)[pts_c, idx_c]
    if pts_c.size:
        sub = {n: np.broadcast_to(v, shape).reshape(npts)[pts_c] for n, v in args.items()}
        width = float(np.max(b - a))
        steps = min(MAX_STEPS, max(1, math.ceil(math.log2(width / xtol)) + 1)) \
            if width > xtol else 1
        for _ in range(steps):
            mid = 0.5 * (a + b)
            fm = np.asarray(m(**sub, **{along: mid})[quantity])
            exact = fm == 0.0
            left = np.sign(fa) * np.sign(fm) < 0
            b = np.where(left | exact, mid, b)
            a = np.where(left, a, mid)
            fa = np.where(left, fa, fm)
            if np.all(b - a <= xtol):
                break
        root_c = np.where(fa == 0.0, a, 0.5 * (a + b))
    else:
        root_c = np.empty(0)

    pts = np.concatenate([pts_z, pts_c])
    vals = np.concatenate([flat_grid[pts_z, idx_z], root_c])
    counts = np.bincount(pts, minlength=npts)
    width = max(1, int(counts.max()) if counts.size else 1)
    out = np.full((npts, width), np.nan)
    order = np.lexsort((vals, pts))
    pts, vals = pts[order], vals[order]
    first = np.searchsorted(pts, np.arange(npts))
    rank = np.arange(pts.size) - first[pts]
    out[pts, rank] = vals
    status = np.where(counts > 0, FOUND,
                      np.where(everywhere.reshape(npts), IDENTICALLY_ZERO, NO_SIGN_CHANGE))
    return out.reshape(*shape, width), status.astype(np.int8).reshape(shape)
