"""The yardstick: the smallest fused kernel of the single-level closed forms.

A numba ``@njit(parallel=True)`` loop over an ``(eps, dV)`` grid (``T``, ``dT``, ``mu`` and the
rates fixed) that computes every output ``phasemap.evaluate`` returns -- ``J_L, Q_L, Q_R, P,
s, p1`` and both labels -- with the same stable formulas (it calls the model's own scalar
function :func:`phasemap.physics.single_level.point` and the regime rules), straight into
preallocated arrays, on every core. No xarray, no dask, no validation: what the arithmetic
costs on this machine, which ``benchmarks/run.py`` holds ``evaluate`` against.

``error_model="numpy"`` (a float division by zero gives inf, as in numpy, instead of raising)
is what lets LLVM vectorise the inner loop; without it every division carries a branch and
the yardstick would be a slow, unfair reference.

:func:`current_grid` is the same loop for ``J_L`` alone (what the store keeps): the compute
limit of ``phasemap.compute``.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from phasemap import _jit, regimes
from phasemap.physics import single_level as sl

# this file inlines the package's kernels: its numba cache must follow the package sources
_jit.key_cache_of(Path(__file__).parent)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _fused(eps, dV, T, dT, mu, gL, gR, J, QL, QR, P, s, p1, regime, machine):
    for i in numba.prange(eps.size):
        for j in range(dV.size):
            j_, ql, qr, pw, sv, occ = sl.point(eps[i], T, dT, dV[j], mu, gL, gR)
            J[i, j], QL[i, j], QR[i, j], P[i, j], s[i, j], p1[i, j] = j_, ql, qr, pw, sv, occ
            sdT, sdV = regimes.sign(dT), regimes.sign(dV[j])
            sJ, sQL, sQR, sP = regimes.sign(j_), regimes.sign(ql), regimes.sign(qr), \
                regimes.sign(pw)
            regime[i, j] = regimes.regime_rule(sdT, sdV, sJ, sQL, sQR, sP)
            machine[i, j] = regimes.machine_rule(sdT, sdV, sJ, sQL, sQR, sP)


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _current(eps, dV, T, dT, mu, gL, gR, J):
    for i in numba.prange(eps.size):
        for j in range(dV.size):
            J[i, j] = sl.current(eps[i], T, dT, dV[j], mu, gL, gR)


def fused_grid(eps, dV, T=7.5, dT=5.0, mu=0.0, gamma_L=2.0, gamma_R=2.0):
    """Every output on the ``eps x dV`` grid; a dict like ``phasemap.evaluate``'s variables."""
    eps = np.ascontiguousarray(eps, dtype=np.float64)
    dV = np.ascontiguousarray(dV, dtype=np.float64)
    shape = (eps.size, dV.size)
    out = {k: np.empty(shape) for k in ("J_L", "Q_L", "Q_R", "P", "s", "p1")}
    out["regime"] = np.empty(shape, dtype=np.int8)
    out["machine"] = np.empty(shape, dtype=np.int8)
    _fused(eps, dV, float(T), float(dT), float(mu), float(gamma_L), float(gamma_R),
           *out.values())
    return out


def current_grid(eps, dV, T=7.5, dT=5.0, mu=0.0, gamma_L=2.0, gamma_R=2.0):
    """``J_L`` alone on the ``eps x dV`` grid."""
    eps = np.ascontiguousarray(eps, dtype=np.float64)
    dV = np.ascontiguousarray(dV, dtype=np.float64)
    J = np.empty((eps.size, dV.size))
    _current(eps, dV, float(T), float(dT), float(mu), float(gamma_L), float(gamma_R), J)
    return J
