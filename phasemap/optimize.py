"""Maximum power and linear-response coefficients, computed on any registered model.

Both work through ``phasemap.models.get_model(name)(**params)`` only, so they apply to every
model, closed form or not, the way :func:`phasemap.threshold` does.

- :func:`max_power`: the largest power output ``-P`` of a heat engine over one parameter or a
  pair, the efficiency at that maximum and the argmax. For the single level in linear response
  and tight coupling the efficiency at maximum power over ``(eps, dV)`` is
  ``eta_C/2 + eta_C**2/8 + c3 eta_C**3 + O(eta_C**4)``: the first two terms universal for tight
  coupling (M. Esposito, K. Lindenberg and C. Van den Broeck, Phys. Rev. Lett. 102, 130602
  (2009)), ``c3 = (7/96)(1 + 0.0627) = 0.07749`` for this model (the same authors, EPL 85,
  60010 (2009); reproduced to 2e-5 by a 40-digit computation in tests/test_optimize.py). In
  linear response the optimal level obeys ``x tanh(x/2) = 2``, ``x = (eps - mu)/T = 2.39936``.
- :func:`linear_response`: the conductance ``G``, thermopower ``S``, thermal conductance
  ``K`` and figure of merit ``ZT`` at equilibrium (``dV = dT = 0``), by Richardson-extrapolated
  central differences of the model with an error estimate for each.

Conventions as in Zhang & Lü, Phys. Rev. E 111, 044112 (2025) (k_B = e = 1): ``J_L`` and
``Q_L`` flow out of the left reservoir, ``dV = (mu_L - mu_R)/e``, ``dT = T_L - T_R``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from .errors import ParameterError
from .grid import as_input, validate_inputs
from .models import Model, get_model
from .physics.merit import figures_of_merit
from .variables import attrs_for

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0   # 0.618...


# --- shared plumbing ----------------------------------------------------------------------

def _broadcast_params(m: Model, params: dict[str, Any], extra: dict[str, xr.DataArray]):
    """Validate ``params`` (plus the ``extra`` probe values) and broadcast them.

    Returns the template DataArray (dims and coords of the result) and a dict of numpy arrays
    of its shape, one per given parameter.
    """
    inputs = {k: as_input(k, v) for k, v in params.items()}
    validate_inputs(m, {**inputs, **extra})
    template = xr.broadcast(*inputs.values())[0] if inputs else xr.DataArray(0.0)
    template = xr.zeros_like(template, dtype=np.float64)
    args = {k: np.broadcast_to(v.broadcast_like(template).values, template.shape)
            for k, v in inputs.items()}
    return template, args


def _check_names(m: Model, names: Sequence[str], role: str, params: dict[str, Any]):
    for name in names:
        if name not in m.param_names:
            raise ParameterError(role, name, f"one of {', '.join(m.param_names)}")
        if name in params:
            raise ParameterError(name, params[name],
                                 f"no value: {role} {name!r} is the variable optimised over")


def _bracket_of(m: Model, name: str, bracket) -> tuple[float, float]:
    """The search interval of ``name``: ``bracket`` or the model's declared finite range."""
    if bracket is None:
        p = m.parameter(name)
        if not (math.isfinite(p.lower) and math.isfinite(p.upper)):
            raise ParameterError("bracket", None,
                                 f"(lo, hi) for {name!r}: model {m.name!r} declares no finite "
                                 f"range for it ({p.allowed()})")
        lo, hi = p.lower, p.upper
        if p.lower_open:
            lo = math.nextafter(lo, math.inf)
        return lo, hi
    try:
        lo, hi = (float(b) for b in bracket)
    except (TypeError, ValueError):
        raise ParameterError("bracket", bracket, "two finite numbers lo < hi") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ParameterError("bracket", bracket, "two finite numbers lo < hi")
    return lo, hi


def _lead_temperatures(m: Model, args: dict[str, np.ndarray]):
    """``T_L, T_R, dT`` from the model's ``T`` and ``dT`` (defaults filled in)."""
    if "T" not in m.param_names or "dT" not in m.param_names:
        raise ParameterError("model", m.name, "a model with parameters 'T' and 'dT'")
    d = m.defaults()
    T = np.asarray(args.get("T", d["T"]), dtype=np.float64)
    dT = np.asarray(args.get("dT", d["dT"]), dtype=np.float64)
    return T + 0.5 * dT, T - 0.5 * dT, dT


# --- maximum power ------------------------------------------------------------------------

def _golden_max(f, a: np.ndarray, b: np.ndarray, iters: int):
    """Batched golden-section search for a maximum of ``f`` on ``[a, b]`` (elementwise).

    ``f`` maps an array of abscissae (batch shape) to values; returns ``(x, f(x))`` at the
    best point seen. Unimodality is assumed inside each interval (the caller brackets the
    best grid cell), and each step keeps the better interior point, so the result is a local
    maximum to within the final width or the flatness of ``f`` set by rounding.
    """
    a, b = a.copy(), b.copy()
    c = b - GOLDEN * (b - a)
    d = a + GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        left = fc >= fd          # the maximum is in [a, d]
        a = np.where(left, a, c)
        b = np.where(left, d, b)
        new = np.where(left, b - GOLDEN * (b - a), a + GOLDEN * (b - a))
        fn = f(new)
        c, d, fc, fd = (np.where(left, new, d), np.where(left, c, new),
                        np.where(left, fn, fd), np.where(left, fc, fn))
    better = fc >= fd
    return np.where(better, c, d), np.where(better, fc, fd)


def _iterations(width: float, xtol: float) -> int:
    return max(1, math.ceil(math.log(max(width, xtol) / xtol) / -math.log(GOLDEN)))


def max_power(along: str | Sequence[str], model: str | Model = "single_level",
              bracket=None, *, grid: int = 65, xtol: float = 1e-11,
              **params: Any) -> xr.Dataset:
    """Maximum power output of a heat engine over one parameter or two, and its efficiency.

    The objective is the power produced, ``-P`` (``P`` the power absorbed). Each point of the
    other parameters is searched independently: first on a uniform grid of ``grid`` values per
    searched parameter (whole bracket), then by golden-section search (nested for two
    parameters: the first name inside, the second outside) in the neighbourhood of the best
    grid point. A maximum narrower than a grid cell can be missed; raise ``grid`` then.

    Parameters
    ----------
    along : str or (str, str)
        The parameter(s) maximised over, e.g. ``"eps"`` or ``("eps", "dV")``.
    model : str
        Registered model name.
    bracket : (lo, hi), or ((lo, hi), (lo, hi)) for two parameters, optional
        Search intervals [parameter units]. Default: the parameter's declared range in the
        model (``Parameter.lower/upper``); a :class:`~phasemap.ParameterError` if it has none.
        Every value in them must be valid for the model at every point of ``params``.
    grid : int
        Grid points per searched parameter for the first scan (>= 5).
    xtol : float
        Width, relative to the bracket, at which the golden-section search stops.
    **params
        Every other parameter, as in :func:`phasemap.evaluate` (scalars, 1-D sequences,
        DataArrays); the result is broadcast over them.

    Returns
    -------
    xarray.Dataset
        ``power`` [E0 gamma0]: the maximum of ``-P``; ``eta`` and ``eta_over_carnot`` [1]: the
        efficiency ``-P/Q_h`` at that point and its ratio to Carnot's;
        ``<name>_at_max_power`` [parameter units] for each searched parameter. Everything is NaN
        where the device is no heat engine anywhere in the bracket (``-P <= 0``).
    """
    m = get_model(model)
    names = (along,) if isinstance(along, str) else tuple(along)
    if len(names) not in (1, 2) or len(set(names)) != len(names):
        raise ParameterError("along", along, "a parameter name or a pair of distinct names")
    _check_names(m, names, "along", params)
    if len(names) == 1:
        brackets = [_bracket_of(m, names[0], bracket)]
    elif bracket is None:
        brackets = [_bracket_of(m, n, None) for n in names]
    else:
        try:
            b1, b2 = bracket
        except (TypeError, ValueError):
            raise ParameterError("bracket", bracket,
                                 "a pair of (lo, hi) intervals, one per searched parameter"
                                 ) from None
        brackets = [_bracket_of(m, names[0], b1), _bracket_of(m, names[1], b2)]
    if not (isinstance(grid, int | np.integer) and grid >= 5):
        raise ParameterError("grid", grid, "an integer >= 5")
    if not (0 < xtol < 1e-2):
        raise ParameterError("xtol", xtol, "a relative tolerance in (0, 0.01)")

    probes = {n: xr.DataArray(np.linspace(lo, hi, grid), dims=(f"_{n}",))
              for n, (lo, hi) in zip(names, brackets, strict=True)}
    template, args = _broadcast_params(m, params, probes)
    shape = template.shape

    def power(extra_axes=0, **x):
        a = {k: v.reshape(v.shape + (1,) * extra_axes) for k, v in args.items()}
        return -m(**a, **x)["P"]

    def best_cell(scan):
        return np.argmax(np.nan_to_num(scan, nan=-np.inf), axis=-1)

    it = _iterations(1.0, xtol)
    axes = [np.linspace(lo, hi, grid) for lo, hi in brackets]
    if len(names) == 1:
        (n1,), (g1,) = names, axes
        best = best_cell(power(1, **{n1: g1}))
        lo1, hi1 = g1[np.maximum(best - 1, 0)], g1[np.minimum(best + 1, grid - 1)]
        x1, pmax = _golden_max(lambda x: power(**{n1: x}), lo1, hi1, it)
        argmax = {n1: x1}
    else:
        (n1, n2), (g1, g2) = names, axes
        # scan rows: the second name, columns: the first
        scan = power(2, **{n1: g1, n2: g2[:, None]})
        flat = best_cell(scan.reshape((*shape, grid * grid)))
        j, i = np.divmod(flat, grid)
        lo1, hi1 = g1[np.maximum(i - 2, 0)], g1[np.minimum(i + 2, grid - 1)]
        lo2, hi2 = g2[np.maximum(j - 1, 0)], g2[np.minimum(j + 1, grid - 1)]

        def inner(y):
            return _golden_max(lambda x: power(**{n1: x, n2: y}), lo1, hi1, it)

        y, _ = _golden_max(lambda y: inner(y)[1], lo2, hi2, it)
        x, pmax = inner(y)
        argmax = {n1: x, n2: y}

    at = m(**args, **argmax)
    T_L, T_R, dT = _lead_temperatures(m, {**args, **argmax})
    fom = figures_of_merit(at["P"], at["Q_L"], at["Q_R"], T_L, T_R, dT=dT)
    engine = pmax > 0
    data = {
        "power": np.where(engine, -at["P"], np.nan),
        "eta": np.where(engine, fom["eta"], np.nan),
        "eta_over_carnot": np.where(engine, fom["eta_over_carnot"], np.nan),
    }
    for n, v in argmax.items():
        data[f"{n}_at_max_power"] = np.where(engine, v, np.nan)
    ds = xr.Dataset({k: template.copy(data=np.asarray(v, dtype=np.float64) + 0.0)
                     for k, v in data.items()})
    ds["power"].attrs = {"units": "E0 gamma0", "long_name": "maximum power output -P"}
    ds["eta"].attrs = {"units": "1", "long_name": "efficiency at maximum power"}
    ds["eta_over_carnot"].attrs = {"units": "1",
                                   "long_name": "efficiency at maximum power / Carnot"}
    for n in argmax:
        ds[f"{n}_at_max_power"].attrs = {"units": attrs_for(n).get("units", ""),
                                         "long_name": f"value of {n} at maximum power"}
    ds.attrs = {"model": m.name, "model_version": m.version, "along": list(names),
                "bracket": [list(b) for b in brackets], "grid": int(grid), "xtol": xtol}
    return ds


# --- linear response ----------------------------------------------------------------------

def _richardson(central, h0: float, levels: int):
    """Richardson extrapolation of central differences ``central(h)`` at ``h0 / 2**k``.

    Returns the extrapolated value and the error estimate ``|R[K][K] - R[K-1][K-1]|``
    (elementwise), for a function smooth on the scale of ``h0``.
    """
    rows: list[list[Any]] = []
    for k in range(levels):
        row = [central(h0 / 2**k)]
        for j in range(1, k + 1):
            row.append(row[j - 1] + (row[j - 1] - rows[k - 1][j - 1]) / (4**j - 1))
        rows.append(row)
    best = rows[-1][-1]
    err = np.abs(best - rows[-2][-2])
    return best, err


def linear_response(model: str | Model = "single_level", *, levels: int = 5,
                    step: float = 0.125, **params: Any) -> xr.Dataset:
    """Thermoelectric linear-response coefficients at equilibrium (``dV = dT = 0``).

    Around equilibrium, with ``J_L`` and ``Q_L`` out of the left reservoir::

        J_L = G dV + M dT,      Q_L = N dV + L dT
        S  = M/G          (thermopower = -(dV/dT) at J_L = 0)
        K  = L - N M/G    (thermal conductance at J_L = 0: Q_L = K dT)
        ZT = G S**2 T / K

    The four derivatives are central differences of the model in ``dV`` and ``dT`` at steps
    ``step T / 2**k``, ``k < levels``, Richardson-extrapolated (error ``O(h**(2 levels))``);
    the error estimate of each is the difference between the last two extrapolation levels,
    propagated to ``S``, ``K`` and ``ZT`` to first order. Works for every registered model with
    parameters ``T``, ``dT`` and ``dV``.

    Parameters
    ----------
    model : str
        Registered model name.
    levels : int
        Extrapolation levels (>= 2).
    step : float
        First step relative to ``T`` (``0 < step < 1``, so that ``|dT| < 2T``).
    **params
        Every other parameter (not ``dV`` or ``dT``: both are zero here), as in
        :func:`phasemap.evaluate`.

    Returns
    -------
    xarray.Dataset
        ``G`` [gamma0/E0], ``S`` [1, i.e. k_B/e], ``K`` [gamma0 (k_B gamma0 in SI-like
        terms)], ``ZT`` [1] and their error estimates ``G_err``, ``S_err``, ``K_err``,
        ``ZT_err``. ``ZT`` is +inf (``ZT_err`` NaN) where ``K`` is zero within twice its error
        estimate: tight coupling, e.g. the single level, whose ``K`` vanishes exactly.
    """
    m = get_model(model)
    for name in ("dV", "dT"):
        if name in params:
            raise ParameterError(name, params[name],
                                 "no value: linear response is taken at dV = dT = 0")
        if name not in m.param_names:
            raise ParameterError("model", m.name, "a model with parameters 'T', 'dT' and 'dV'")
    if "T" not in m.param_names:
        raise ParameterError("model", m.name, "a model with parameters 'T', 'dT' and 'dV'")
    if not (isinstance(levels, int | np.integer) and levels >= 2):
        raise ParameterError("levels", levels, "an integer >= 2")
    if not (0 < step < 1):
        raise ParameterError("step", step, "a number in (0, 1)")
    template, args = _broadcast_params(m, params, {})
    T = np.asarray(args.get("T", m.defaults()["T"]), dtype=np.float64)

    def central(name, out):
        def d(h):
            hp = h * T
            up = m(**args, **{name: hp})[out]
            down = m(**args, **{name: -hp})[out]
            return (up - down) / (2.0 * hp)
        return d

    G, G_e = _richardson(central("dV", "J_L"), step, levels)
    M, M_e = _richardson(central("dT", "J_L"), step, levels)
    N, N_e = _richardson(central("dV", "Q_L"), step, levels)
    L, L_e = _richardson(central("dT", "Q_L"), step, levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        S = M / G
        S_e = (M_e + np.abs(S) * G_e) / np.abs(G)
        K = L - N * S
        K_e = L_e + np.abs(S) * N_e + np.abs(N) * S_e
        num = G * S * S * T
        tight = np.abs(K) <= 2.0 * K_e
        ZT = np.where(tight, np.inf, num / np.where(tight, 1.0, K))
        num_e = np.abs(num) * (G_e / np.abs(G) + 2.0 * S_e / np.where(S != 0, np.abs(S), 1.0))
        ZT_e = np.where(tight, np.nan, (num_e + np.abs(ZT) * K_e) / np.abs(K))
    data = {"G": G, "S": S, "K": K, "ZT": ZT, "G_err": G_e, "S_err": S_e, "K_err": K_e,
            "ZT_err": ZT_e}
    ds = xr.Dataset({k: template.copy(data=np.asarray(v, dtype=np.float64) + 0.0)
                     for k, v in data.items()})
    meta = {"G": ("gamma0/E0", "electrical conductance dJ_L/ddV at equilibrium"),
            "S": ("1", "thermopower -(dV/dT) at J_L = 0 (k_B/e)"),
            "K": ("gamma0", "thermal conductance dQ_L/ddT at J_L = 0"),
            "ZT": ("1", "thermoelectric figure of merit G S^2 T / K")}
    for k, (units, long_name) in meta.items():
        ds[k].attrs = {"units": units, "long_name": long_name}
        ds[f"{k}_err"].attrs = {"units": units,
                                "long_name": f"error estimate of {k} (Richardson)"}
    ds.attrs = {"model": m.name, "model_version": m.version, "levels": int(levels),
                "step": step}
    return ds
