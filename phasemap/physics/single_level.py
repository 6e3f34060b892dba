"""Closed form of the single-level quantum dot, evaluated to the last digit.

Model (Zhang & Lü, Phys. Rev. E 111, 044112 (2025), Sec. II, natural units k_B = e = 1)::

    T_L = T + dT/2,  T_R = T - dT/2,  mu_L = mu + dV/2,  mu_R = mu - dV/2
    x_v = (eps - mu_v) / T_v,  f_v = 1 / (1 + exp(x_v))
    J_L = gamma (f_L - f_R),  gamma = gamma_L gamma_R / (gamma_L + gamma_R)     (eq. 6, corrected)
    Q_L = (eps - mu_L) J_L,   Q_R = (eps - mu_R) J_L                            (eqs. 7, 8)
    P   = dV J_L = Q_R - Q_L,  s = Q_R/T_R - Q_L/T_L = J_L (x_R - x_L)          (eq. 9)

The difference of Fermi functions is never formed by subtraction. With
``d = x_R - x_L = ((eps - mu) dT + T dV) / (T_L T_R)`` (no cancellation) ::

    f_L - f_R = sinh(d/2) / (2 cosh(x_L/2) cosh(x_R/2))

and both factors are evaluated scaled by ``exp(-|x_L|/2 - |x_R|/2)`` so nothing overflows for
any finite input. ``J_L`` therefore has the sign of ``d`` exactly, ``s = J_L d >= 0`` always,
and the relative error stays near a few ulp times ``max|x_v|``. Where the true current is
below the smallest subnormal double, ``J_L`` is returned as ``+-5e-324`` so its sign (on which
the regime depends) survives underflow.
"""

from __future__ import annotations

import math

import numba

OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1")
TINY = 5e-324


@numba.njit(cache=True, inline="always")
def fermi(x):
    """Fermi function 1/(1+e^x) without overflow."""
    if x >= 0.0:
        e = math.exp(-x)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(x))


@numba.njit(cache=True, inline="always")
def fermi_difference(xL, xR, d):
    """f(x_L) - f(x_R) given d = x_R - x_L computed without cancellation."""
    a = 0.5 * abs(xL)
    b = 0.5 * abs(xR)
    c = 0.5 * d
    if abs(c) <= 1.0:
        num = math.sinh(c)
        expo = -(a + b)
    else:
        num = math.copysign(-0.5 * math.expm1(-2.0 * abs(c)), c)
        expo = abs(c) - a - b  # <= 0 since |x_R - x_L| <= |x_L| + |x_R|
    den = (1.0 + math.exp(-2.0 * a)) * (1.0 + math.exp(-2.0 * b))
    value = 2.0 * num * math.exp(expo) / den
    if value == 0.0 and d != 0.0:
        value = math.copysign(TINY, d)
    return value + 0.0  # turn -0.0 into +0.0


@numba.njit(cache=True, inline="always")
def point(eps, T, dT, dV, mu, gamma_L, gamma_R):
    """All outputs of the single-level dot at one point.

    Returns ``(J_L, Q_L, Q_R, P, s, p1)``; see the module docstring for units and equations.
    """
    TL = T + 0.5 * dT
    TR = T - 0.5 * dT
    de = eps - mu
    eL = de - 0.5 * dV  # eps - mu_L
    eR = de + 0.5 * dV  # eps - mu_R
    xL = eL / TL
    xR = eR / TR
    d = (de * dT + T * dV) / (TL * TR)
    gamma = gamma_L * gamma_R / (gamma_L + gamma_R)
    J = gamma * fermi_difference(xL, xR, d)
    p1 = (gamma_L * fermi(xL) + gamma_R * fermi(xR)) / (gamma_L + gamma_R)
    return J, eL * J, eR * J, dV * J, J * d, p1


@numba.guvectorize(
    ["void(f8, f8, f8, f8, f8, f8, f8, f8[:], f8[:], f8[:], f8[:], f8[:], f8[:])"],
    "(),(),(),(),(),(),()->(),(),(),(),(),()",
    cache=True,
    target="parallel",
)
def _single_level_gufunc(eps, T, dT, dV, mu, gL, gR, J, QL, QR, P, s, p1):
    J[0], QL[0], QR[0], P[0], s[0], p1[0] = point(eps, T, dT, dV, mu, gL, gR)


def single_level(eps, T, dT, dV, mu=0.0, gamma_L=2.0, gamma_R=2.0):
    """Steady state of the single-level dot, broadcast over its arguments.

    Parameters
    ----------
    eps : array_like
        Level energy epsilon [energy, k_B = 1 units].
    T : array_like
        Mean temperature (T_L + T_R)/2 [energy]. Must exceed ``|dT|/2``.
    dT : array_like
        Temperature difference T_L - T_R [energy].
    dV : array_like
        Bias (mu_L - mu_R)/e [energy/e].
    mu : array_like
        Mean chemical potential [energy].
    gamma_L, gamma_R : array_like
        Bare tunnelling rates [rate]; > 0.

    Returns
    -------
    dict of str to numpy.ndarray
        ``J_L, Q_L, Q_R, P, s, p1`` (float64), broadcast over the inputs. Out-of-domain input
        (``T_R <= 0``) is the caller's to reject; NaN propagates.
    """
    outs = _single_level_gufunc(eps, T, dT, dV, mu, gamma_L, gamma_R)
    return dict(zip(OUTPUTS, outs, strict=True))
