"""Closed form of the single-level quantum dot, evaluated to the last digit.

Model (Zhang & Lü, Phys. Rev. E 111, 044112 (2025), Sec. II, natural units k_B = e = 1)::

    T_L = T + dT/2,  T_R = T - dT/2,  mu_L = mu + dV/2,  mu_R = mu - dV/2
    x_v = (eps - mu_v) / T_v,  f_v = 1 / (1 + exp(x_v))
    J_L = gamma (f_L - f_R),  gamma = gamma_L gamma_R / (gamma_L + gamma_R)     (eq. 6, corrected)
    Q_L = (eps - mu_L) J_L,   Q_R = (eps - mu_R) J_L                            (eqs. 7, 8)
    P   = dV J_L = Q_R - Q_L,  s = Q_R/T_R - Q_L/T_L = J_L (x_R - x_L)          (eq. 9)

The difference of Fermi functions is never formed by subtraction. With
``d = x_R - x_L = ((eps - mu) dT + T dV) / (T_L T_R)`` (no cancellation) ::

    f_L - f_R =  (1 - f_L) f_R expm1(d)       for d <= 0
    f_L - f_R = -(1 - f_R) f_L expm1(-d)      for d >  0

where every factor is computed to full relative precision (``1 - f`` as ``f(-x)``, each
``f(z) = n / (1 + exp(-|z|))`` with ``n`` = 1 or ``exp(-|z|)``) and
``expm1`` of a non-positive argument never overflows. ``J_L`` therefore has the sign of ``d``
exactly, ``s = J_L d >= 0`` always, and the relative error is a few ulp. Where the true
current is below the smallest subnormal double, ``J_L`` is returned as ``+-5e-324`` so its
sign (on which the regime depends) survives underflow.

Every function here is branch-free arithmetic (selects, no calls), and the exponentials are
:mod:`phasemap.physics._vecmath`'s, not the C library's: a numba loop over points then runs
four points per AVX instruction. Changing how they round changed the last bits of the
results (model version 1.1.0), not their accuracy.

Every product ``Q_v = (eps - mu_v) J_L``, ``P = dV J_L``, ``s = J_L d`` is formed by
:func:`signed_product`: its sign is that of its factors even where it underflows (then it is
``+-5e-324``), and no output is ever ``-0.0``, so the regime labels, read from signs, are
exact (model version 1.2.0; docs/model.md, "signs that survive underflow").

``eps - mu_v`` and the numerator ``(eps - mu) dT + T dV`` are sums that cancel (``eps`` next
to a lead's chemical potential, or next to the reversible level ``eps_r``); they are evaluated
with error-free transformations (TwoSum, TwoProduct), so they keep full relative precision
for the exact float inputs and the sign of ``J_L`` is exactly that of the numerator.
"""

from __future__ import annotations

import math

import numba

from .. import _jit  # noqa: F401  (first: the keyed numba cache, see _jit)
from ._vecmath import exp_nonpos, expm1_nonpos, fma

OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1")
#: The smallest subnormal double: the sign-only stand-in for a true value below it.
TINY = 5e-324
#: The largest finite double.
HUGE = 1.7976931348623157e308


#: Quotients beyond this (2**1022, ~4.5e307) are clamped to it: x_v or d that large leaves
#: every Fermi factor at exactly 0 or 1 (see :func:`_quotient`).
CLAMP = 2.0 ** 1022
_TWO_M1022 = 2.0 ** -1022
_TWO_M513 = 2.0 ** -513


# The guards below are written for branch-free code: when LLVM vectorises a loop it computes
# *both* arms of every ``x if c else y`` and selects, so each arm must be safe (no overflow,
# no 0 * inf) for every finite input, or numpy reports a warning after the loop. The tests
# therefore select operands before the arithmetic, never results of unsafe arithmetic.


@numba.njit(cache=True, inline="always")
def _quotient(a, b):
    """``a / b`` for ``b > 0``, clamped to ``+-CLAMP`` where ``|a / b| > 2**1022``; used by
    :func:`frame` so that valid temperatures as small as 1e-300 never overflow."""
    # |a| 2**-1022 > b: the scaling only rounds in the subnormal range, by less than a
    # factor 1.5 of b, so an unflagged quotient is below 1.5 * 2**1022 < the largest double
    over = abs(a) * _TWO_M1022 > b
    q = (math.copysign(b, a) if over else a) / b
    return math.copysign(CLAMP, a) if over else q


@numba.njit(cache=True, inline="always")
def signed_product(J, f):
    """``J * f`` whose sign is always ``sign(J) sign(f)``; never ``-0.0``.

    A product below the subnormal range is ``+-5e-324`` (:data:`TINY`), as is every product
    with ``|J| = TINY``: that ``J`` is the sign-only stand-in of a current that underflowed,
    so its products are known by their sign only (docs/model.md). A product beyond 2**1022
    is ``+-inf`` (the point is then labelled ``undefined``), without the overflow flag.
    """
    a = abs(J)
    b = abs(f)
    over = (a * _TWO_M513) * (b * _TWO_M513) > 0.0625  # a b > 2**1022, never overflows
    p = J * (math.copysign(1.0, f) if over else f)
    p = math.copysign(math.inf, p) if over else p
    p = math.copysign(TINY, p) if ((a == TINY) | (p == 0.0)) & (a != 0.0) & (b != 0.0) else p
    return p + 0.0


@numba.njit(cache=True, inline="always")
def _two_sum(a, b):
    """``a + b = s + e`` exactly (Knuth's TwoSum); used by ``frame``."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@numba.njit(cache=True, inline="always")
def _two_prod(a, b):
    """``a * b = p + e`` exactly, with one fused multiply-add; used by ``frame``.

    ``e`` is exact unless ``a * b`` is subnormal (then it is the usual rounding error of an
    underflowing product); ``e = 0`` where ``a * b`` overflows.
    """
    p = a * b
    e = fma(a, b, -p)
    return p, (e if abs(p) < math.inf else 0.0)


_TWO_600 = 2.0 ** 600
_TWO_M600 = 2.0 ** -600
_TWO_M900 = 2.0 ** -900


@numba.njit(cache=True, inline="always")
def _numerator(de, de_err, T, dT, dV, scale):
    """``((eps - mu) dT + T dV) scale**2`` with ``eps - mu = de + de_err`` exactly (TwoSum),
    the products exact (TwoProd) and summed so that the sign is that of the exact value
    (``scale = 2**600`` where both products are below 2**-900, else 1)."""
    # a factor whose partner is 0 is dropped (0), so that a large one cannot overflow when
    # scaled; with a nonzero partner, a product below 2**-900 has factors below 2**174
    de_s = fma(de if dT != 0.0 else 0.0, scale, -0.0)
    de_err_s = fma(de_err if dT != 0.0 else 0.0, scale, -0.0)
    T_s = fma(T if dV != 0.0 else 0.0, scale, -0.0)
    dT_s, dV_s = fma(dT, scale, -0.0), fma(dV, scale, -0.0)
    p1, q1 = _two_prod(de_s, dT_s)
    p2, q2 = _two_prod(T_s, dV_s)
    s, e = _two_sum(p1, p2)
    r = de_err_s * dT_s
    num = s + (((e + q1) + q2) + r)
    # The rest, a sum of doubles, is a multiple of 2**-1074: if it is 0, an r that underflowed
    # (|r| < 2**-1075) decides the sign alone (eps - mu inexact, eps exactly on eps_r else).
    lost = (r == 0.0) & (de_err_s != 0.0) & (dT_s != 0.0)
    return math.copysign(TINY, r) if (num == 0.0) & lost else num


@numba.njit(cache=True, inline="always")
def frame(eps, T, dT, dV, mu):
    """``(x_L, x_R, eps - mu_L, eps - mu_R, d)`` at one point, ``d = x_R - x_L``."""
    # eps - mu_v and (eps - mu) dT + T dV are sums that cancel (eps next to mu_v, eps next
    # to eps_r): evaluate them with error-free transformations so they keep full relative
    # precision for the exact float inputs; T_L, T_R are single correctly rounded operations.
    TL = T + 0.5 * dT
    TR = T - 0.5 * dT
    de, de_err = _two_sum(eps, -mu)  # eps - mu = de + de_err exactly
    s, e = _two_sum(de, -0.5 * dV)
    eL = s + (e + de_err)  # eps - mu_L
    s, e = _two_sum(de, 0.5 * dV)
    eR = s + (e + de_err)  # eps - mu_R
    # both products below 2**-900?
    small = (abs(de * dT) < _TWO_M900) & (abs(T * dV) < _TWO_M900)
    # Products below 2**-900 lose their TwoProd error terms (and so possibly the sign of the
    # sum) to underflow: there, the same sum of factors scaled by 2**600 each (exact; see
    # :func:`_numerator`) decides the sign, and the magnitude
    # too while T_L T_R is not tiny as well.
    num_s = _numerator(de, de_err, T, dT, dV, _TWO_600 if small else 1.0)
    num = num_s  # the same sum, unscaled where it was not small
    # d = num / (T_L T_R) in two steps, the hotter lead first: T_L T_R alone can under- or
    # overflow for valid temperatures (T = 1e-300, or T = 1e200). A quotient that underflows
    # keeps its sign (5e-324); beyond 2**1022 it is clamped (:func:`_quotient`).
    hot, cold = max(TL, TR), min(TL, TR)
    d = _quotient(_quotient(num, hot), cold)  # x_R - x_L without cancellation
    # scaled: undo the scale 2**1200; where the scaled quotient was clamped (T_L T_R below
    # ~2**-722 as well) the result is the clamp scaled down, a lower bound of the right sign
    d = (d * _TWO_M600) * _TWO_M600 if small else d
    d = math.copysign(TINY, num_s) if (d == 0.0) & (num_s != 0.0) else d
    return _quotient(eL, TL), _quotient(eR, TR), eL, eR, d


@numba.njit(cache=True, inline="always")
def current(eps, T, dT, dV, mu, gamma_L, gamma_R):
    """Particle current J_L out of the left reservoir at one point (eq. 6, corrected).

    With ``d = x_R - x_L``::

        f_L - f_R =  f(-x_L) f(x_R) expm1(d)     d <= 0
        f_L - f_R = -f(-x_R) f(x_L) expm1(-d)    d >  0

    so only the two Fermi factors the sign of ``d`` selects are evaluated, each as
    ``n / (1 + e)``; ``J_L`` is one quotient whose numerator and denominator cannot
    overflow. Branch-free, so loops over points vectorise. The three steps (the frame, the
    three exponentials, :func:`current_from`) are separate functions so that a kernel can
    run each as a loop of its own over a block of points (``phasemap.models``), with the
    same bits.
    """
    xL, xR, _, _, d = frame(eps, T, dT, dV, mu)
    return current_from(xL, xR, d, exp_nonpos(-abs(xL)), exp_nonpos(-abs(xR)),
                        expm1_nonpos(-abs(d)), gamma_L, gamma_R)


@numba.njit(cache=True, inline="always")
def current_from(xL, xR, d, zL, zR, m, gamma_L, gamma_R):
    """``J_L`` from ``x_L``, ``x_R``, ``d`` (:func:`frame`), ``zL = exp(-|x_L|)``,
    ``zR = exp(-|x_R|)`` and ``m = expm1(-|d|)``."""
    neg = d <= 0.0
    # f(z) = n / (1 + e) with e = exp(-|z|) and n = e (z >= 0) or 1 (z < 0); exp(-|x_L|)
    # and exp(-|x_R|) are the very expressions ``from_current`` evaluates for p1.
    ea = zL if neg else zR  # factor a: f(-x_L) or f(-x_R)
    na = (zL if xL <= 0.0 else 1.0) if neg else (zR if xR <= 0.0 else 1.0)
    eb = zR if neg else zL  # factor b: f(x_R) or f(x_L)
    nb = (zR if xR >= 0.0 else 1.0) if neg else (zL if xL >= 0.0 else 1.0)
    # gamma_L gamma_R / (gamma_L + gamma_R) = lo / (1 + lo/hi): no intermediate overflows
    lo, hi = min(gamma_L, gamma_R), max(gamma_L, gamma_R)
    J = (((lo * m) * na) * nb) / (((1.0 + ea) * (1.0 + eb)) * (1.0 + lo / hi))
    J = J if neg else -J
    # where the true current is below the smallest subnormal, keep its sign
    J = math.copysign(TINY, d) if (J == 0.0) & (d != 0.0) else J
    return J + 0.0  # turn -0.0 into +0.0


@numba.njit(cache=True, inline="always")
def from_current(J, eps, T, dT, dV, mu, gamma_L, gamma_R):
    """Every other output at one point given J_L: ``(Q_L, Q_R, P, s, p1)``.

    Uses exactly the arithmetic of :func:`point`, so outputs derived from a stored ``J_L``
    are bit-identical to those computed together with it.
    """
    xL, xR, eL, eR, d = frame(eps, T, dT, dV, mu)
    return outputs_from(J, xL, xR, eL, eR, d, exp_nonpos(-abs(xL)), exp_nonpos(-abs(xR)), dV,
                        gamma_L, gamma_R)


@numba.njit(cache=True, inline="always")
def outputs_from(J, xL, xR, eL, eR, d, zL, zR, dV, gamma_L, gamma_R):
    """``(Q_L, Q_R, P, s, p1)`` from ``J_L``, the frame (:func:`frame`), ``zL = exp(-|x_L|)``
    and ``zR = exp(-|x_R|)``: the last step of :func:`from_current`."""
    # p1 = (gamma_L f_L + gamma_R f_R) / (gamma_L + gamma_R) = (w_L f_L + w_R f_R) / (1 + r)
    # with r = lo/hi <= 1 and weights (r, 1) or (1, r): nothing overflows. With
    # f_v = n_v / (1 + z_v) (as in ``current``: the same exponentials) it is one quotient of
    # positive terms, so no cancellation and one division.
    nL = zL if xL >= 0.0 else 1.0
    nR = zR if xR >= 0.0 else 1.0
    r = min(gamma_L, gamma_R) / max(gamma_L, gamma_R)
    small_left = gamma_L <= gamma_R
    wL = r if small_left else 1.0
    wR = 1.0 if small_left else r
    p1 = ((wL * nL) * (1.0 + zR) + (wR * nR) * (1.0 + zL)) / (((1.0 + zL) * (1.0 + zR))
                                                             * (1.0 + r))
    return (signed_product(J, eL), signed_product(J, eR), signed_product(J, dV),
            signed_product(J, d), p1)


@numba.njit(cache=True, inline="always")
def point(eps, T, dT, dV, mu, gamma_L, gamma_R):
    """All outputs of the single-level dot at one point.

    Returns ``(J_L, Q_L, Q_R, P, s, p1)``; see the module docstring for units and equations.
    """
    J = current(eps, T, dT, dV, mu, gamma_L, gamma_R)
    QL, QR, P, s, p1 = from_current(J, eps, T, dT, dV, mu, gamma_L, gamma_R)
    return J, QL, QR, P, s, p1
