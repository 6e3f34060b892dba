"""Threshold curves by vectorised bracketing root finding on the model itself.

The paper's ΔT_th and ΔV_th (Zhang & Lü, PRE 111, 044112 (2025), Sec. IV), the reversible
level ε_r (eq. 10) and the edges of the reverse-heat-transport window are all points where a
quantity changes sign along one parameter. :func:`threshold` finds them for any model, not
only those with closed forms, to an absolute tolerance, never by reading a grid.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from .errors import ParameterError
from .grid import as_input, validate_inputs
from .models import get_model
from .variables import attrs_for


def threshold(along: str, model: str = "single_level", *, bracket: tuple[float, float],
              quantity: str = "J_L", xtol: float = 1e-10, **params: Any) -> xr.DataArray:
    """Value of ``along`` in ``bracket`` where ``quantity`` changes sign.

    Parameters
    ----------
    along : str
        The parameter to solve for (``"dT"``, ``"dV"``, ``"eps"``, ...).
    model : str
        Registered model name.
    bracket : (lo, hi)
        Search interval of ``along``; both ends must be valid for the model everywhere.
    quantity : str
        A float output of the model (``"J_L"``, ``"Q_R"``, ``"Q_L"``, ``"P"``).
    xtol : float
        Absolute tolerance on the root (default 1e-10).
    **params
        Every other parameter, as in :func:`phasemap.evaluate` (scalars, 1-D sequences,
        DataArrays); the result is broadcast over them.

    Returns
    -------
    xarray.DataArray
        The root, NaN where ``quantity`` has the same sign at both ends of the bracket. If it
        changes sign more than once inside the bracket, one of the roots is returned.
    """
    m = get_model(model)
    if along not in m.param_names:
        raise ParameterError("along", along, f"one of {', '.join(m.param_names)}")
    if along in params:
        raise ParameterError(along, params[along], "no value: it is the unknown being solved for")
    float_outputs = [o for o in m.outputs if o not in ("regime", "machine")]
    if quantity not in float_outputs:
        raise ParameterError("quantity", quantity, f"one of {', '.join(float_outputs)}")
    lo, hi = (float(b) for b in bracket)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ParameterError("bracket", bracket, "two finite numbers lo < hi")
    if not (xtol > 0):
        raise ParameterError("xtol", xtol, "a positive tolerance")

    inputs = {k: as_input(k, v) for k, v in params.items()}
    validate_inputs(m, {**inputs, along: xr.DataArray([lo, hi], dims=("_bracket",))})
    template = xr.broadcast(*inputs.values())[0] if inputs else xr.DataArray(0.0)
    shape = template.shape
    args = {k: np.broadcast_to(v.broadcast_like(template).values, shape) for k, v in inputs.items()}

    def f(x):
        return m(**args, **{along: x})[quantity]

    a = np.full(shape, lo)
    b = np.full(shape, hi)
    fa, fb = f(a), f(b)
    found = np.sign(fa) * np.sign(fb) <= 0
    # Bisection: guaranteed, branch-free across points, and xtol-exact.
    for _ in range(max(1, math.ceil(math.log2((hi - lo) / xtol)))):
        mid = 0.5 * (a + b)
        fm = f(mid)
        left = np.sign(fa) * np.sign(fm) <= 0
        b = np.where(left, mid, b)
        a = np.where(left, a, mid)
        fa = np.where(left, fa, fm)
    root = np.where(fa == 0.0, a, 0.5 * (a + b))
    root = np.where(found, root, np.nan)
    out = template.copy(data=root)
    out.name = f"{along}_threshold"
    attrs = attrs_for(along)
    out.attrs = {"units": attrs.get("units", ""),
                 "long_name": f"value of {along} where {quantity} changes sign",
                 "quantity": quantity, "model": m.name, "model_version": m.version,
                 "bracket": [lo, hi], "xtol": xtol}
    return out
