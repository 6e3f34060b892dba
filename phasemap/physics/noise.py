"""Zero-frequency current noise of the single-level dot in closed form; Fano factor and TUR.

Single level (sequential tunnelling, Zhang & Lü, Phys. Rev. E 111, 044112 (2025), Sec. II;
k_B = e = 1), counting the electrons leaving the left reservoir, ``Gamma = gamma_L + gamma_R``
and ``gamma = gamma_L gamma_R / Gamma``::

    S = gamma [f_L (1 - f_R) + f_R (1 - f_L)] - 2 gamma**2 (f_L - f_R)**2 / Gamma

(the second derivative of the leading eigenvalue of the two-state counting-field generator;
:mod:`phasemap.physics.fcs` gives it for any Pauli model). As written it is a difference. With
``u = f_L (1 - f_R)``, ``v = f_R (1 - f_L)`` (so ``f_L - f_R = u - v``) and
``c = 2 gamma_L gamma_R / Gamma**2 <= 1/2`` it is rewritten as a sum of positive terms::

    S = gamma [ (u + v)(1 - c) + c ((u + v)(f_L f_R + (1 - f_L)(1 - f_R)) + 4 u v) ]

using ``(u + v) - (u - v)**2 = (u + v)(1 - u - v) + 4 u v`` and
``1 - u - v = f_L f_R + (1 - f_L)(1 - f_R)``. Every factor is computed to full relative
precision (``1 - f`` as ``f(-x)``), so ``S > 0`` always and its relative error is a few ulp
plus the rounding of ``x_v`` itself; no overflow for rates up to 1e300.

Figures built on the noise (for any model): the Fano factor ``F = S/|J_L|`` and the
thermodynamic-uncertainty ratio ``Q = s S / J_L**2``, which obeys ``Q >= 2`` for every Markov
(Pauli) model (A. C. Barato and U. Seifert, Phys. Rev. Lett. 114, 158101 (2015); T. R.
Gingrich et al., Phys. Rev. Lett. 116, 120601 (2016)) and, for a single cycle of affinity
``A`` (the single level: ``A = |x_R - x_L|``), ``Q >= (A/2) coth(A/4)``.
"""

from __future__ import annotations

import numpy as np


def _fermi_pair(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(x) = 1/(1 + e^x)`` and ``1 - f(x) = f(-x)``, both to full relative precision."""
    e = np.exp(-np.abs(x))
    small = e / (1.0 + e)      # the Fermi factor on the tail side
    large = 1.0 / (1.0 + e)    # the one close to 1
    pos = x >= 0
    return np.where(pos, small, large), np.where(pos, large, small)


def single_level_noise(eps, T, dT, dV, mu=0.0, gamma_L=2.0, gamma_R=2.0) -> np.ndarray:
    """Zero-frequency noise of the particle current of the single-level dot.

    Parameters
    ----------
    eps : array_like
        Level energy [E0].
    T, dT : array_like
        Mean temperature and ``T_L - T_R`` [E0]; ``|dT| < 2 T``.
    dV : array_like
        Bias ``(mu_L - mu_R)/e`` [E0].
    mu : array_like
        Mean chemical potential [E0].
    gamma_L, gamma_R : array_like
        Bare tunnelling rates [gamma0], > 0.

    Returns
    -------
    numpy.ndarray
        ``S`` [gamma0]: the growth rate of the variance of the number of electrons that left
        the left reservoir, ``lim Var(N_L(t))/t``; positive, broadcast over the inputs.
        NaN propagates; no warnings for finite input.
    """
    eps, T, dT, dV, mu, gL, gR = (np.asarray(a, dtype=np.float64)
                                  for a in (eps, T, dT, dV, mu, gamma_L, gamma_R))
    TL, TR = T + 0.5 * dT, T - 0.5 * dT
    with np.errstate(over="ignore"):  # |x| beyond 1e308 is an exact Fermi factor 0 or 1
        xL = (eps - (mu + 0.5 * dV)) / TL
        xR = (eps - (mu - 0.5 * dV)) / TR
    fL, gLbar = _fermi_pair(xL)
    fR, gRbar = _fermi_pair(xR)
    lo, hi = np.minimum(gL, gR), np.maximum(gL, gR)
    r = lo / hi
    gamma = lo / (1.0 + r)                  # gamma_L gamma_R / Gamma
    c = 2.0 * r / ((1.0 + r) * (1.0 + r))   # 2 gamma_L gamma_R / Gamma**2
    one_minus_c = (1.0 + r * r) / ((1.0 + r) * (1.0 + r))
    u = fL * gRbar
    v = fR * gLbar
    w = u + v
    S = gamma * (w * one_minus_c + c * (w * (fL * fR + gLbar * gRbar) + 4.0 * (u * v)))
    return S + 0.0


TINY_NORMAL = np.finfo(np.float64).tiny  # 2.2e-308, the smallest normal double


def fano(noise_J, J_L) -> np.ndarray:
    """Fano factor ``noise_J/|J_L|`` [1].

    NaN where ``|J_L|`` is below the smallest normal double (zero, or a subnormal that keeps
    the current's sign but not its digits); no warnings.
    """
    S, J = np.broadcast_arrays(np.asarray(noise_J, dtype=np.float64),
                               np.asarray(J_L, dtype=np.float64))
    ok = np.abs(J) >= TINY_NORMAL
    with np.errstate(over="ignore"):  # S/|J| > 1e308 is +inf, its true value's nearest
        F = S / np.where(ok, np.abs(J), 1.0)
    return np.where(ok, F, np.nan) + 0.0


def tur(s, noise_J, J_L) -> np.ndarray:
    """Thermodynamic-uncertainty ratio ``s noise_J / J_L**2`` [1] (k_B = 1).

    Computed as ``(s/|J|)(S/|J|)`` so that nothing overflows or underflows on the way. NaN
    where ``|J_L|`` or ``s`` is below the smallest normal double: at ``J_L = 0`` (``s = 0``
    too) the ratio is 0/0, and a subnormal or underflowed ``J_L`` or ``s`` no longer carries
    the digits the ratio needs (``s = 0`` with ``J_L != 0`` is an underflow: the true ``s``
    is positive).
    """
    s, S, J = np.broadcast_arrays(np.asarray(s, dtype=np.float64),
                                  np.asarray(noise_J, dtype=np.float64),
                                  np.asarray(J_L, dtype=np.float64))
    ok = (np.abs(J) >= TINY_NORMAL) & (s >= TINY_NORMAL)
    a = np.where(ok, np.abs(J), 1.0)
    with np.errstate(over="ignore"):
        q = (np.where(ok, s, 1.0) / a) * (S / a)
    return np.where(ok, q, np.nan) + 0.0


def tur_bound_unicycle(A) -> np.ndarray:
    """``(A/2) coth(A/4)`` [1], the TUR bound of one cycle of affinity ``A`` (2 at ``A = 0``)."""
    A = np.abs(np.asarray(A, dtype=np.float64))
    half = 0.25 * A
    # (A/2) coth(A/4) = 2 (A/4) / tanh(A/4); tanh(h)/h -> 1 at h -> 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(half > 0, half / np.tanh(np.where(half > 0, half, 1.0)), 1.0)
    return 2.0 * ratio


def fluctuation_outputs(noise_J, J_L, s) -> dict[str, np.ndarray]:
    """``noise_J``, ``fano`` and ``tur`` as a dict of arrays, for a model kernel to merge.

    Parameters
    ----------
    noise_J : array_like
        Zero-frequency particle-current noise [gamma0] (:func:`single_level_noise`, or
        :func:`phasemap.physics.fcs.noise` for a Pauli model).
    J_L : array_like
        Particle current out of the left reservoir [gamma0], sign exact.
    s : array_like
        Entropy production rate [gamma0] (k_B = 1), >= 0.
    """
    S = np.asarray(noise_J, dtype=np.float64) + 0.0
    return {"noise_J": S, "fano": fano(S, J_L), "tur": tur(s, S, J_L)}
