"""Spin-degenerate Anderson level with charging energy, sequential tunnelling (Pauli).

States and energies (natural units k_B = e = hbar = 1)::

    |0>: 0,   |up>: eps,   |down>: eps,   |2>: 2 eps + U

Each spin channel couples to lead ``v`` (L, R) with the bare rate ``gamma_v``: the four
transitions 0 -> up, 0 -> down, up -> 2, down -> 2 all have rate ``gamma_v`` (electron in
with ``f_v``, out with ``1 - f_v``, at the transition energies ``eps`` and ``eps + U``). The
leads are those of the single-level dot (Zhang & Lü, Phys. Rev. E 111, 044112 (2025),
Sec. II): ``T_L,R = T +- dT/2``, ``mu_L,R = mu +- dV/2``. Solved by the generic engine
:mod:`phasemap.physics.pauli` (exact signs, ~1e-14 relative; see its docstring).

Limits (tests/test_anderson.py): ``U = 0`` gives exactly twice the single-level currents (two
independent spin channels); ``U -> infinity`` (double occupation frozen out) gives::

    J_L = 2 gamma_L gamma_R (f_L - f_R) / [gamma_L (1 + f_L) + gamma_R (1 + f_R)]
"""

from __future__ import annotations

import numpy as np

from . import pauli

CHARGES = (0, 1, 1, 2)
#: Electron-adding transitions (i -> j) of the four states, each of bare rate gamma_v.
TRANSITIONS = ((0, 1), (0, 2), (1, 3), (2, 3))


def state_energies(eps, U):
    """Energies of |0>, |up>, |down>, |2> as a double-double pair ``(hi, lo)``, (..., 4).

    ``2 eps + U`` is kept exact (TwoSum), so cycle affinities see the exact parameters."""
    eps, U = np.broadcast_arrays(np.asarray(eps, np.float64), np.asarray(U, np.float64))
    e2, e2_lo = pauli._two_sum(2.0 * eps, U)
    zero = np.zeros(eps.shape)
    return (np.stack([zero, eps, eps, e2], axis=-1),
            np.stack([zero, zero, zero, e2_lo], axis=-1))


def solve(eps, U, T, dT, dV, mu, gamma_L, gamma_R) -> pauli.PauliResult:
    """Steady state of the Anderson level, broadcast over the parameters.

    Parameters
    ----------
    eps : array_like
        Level energy [energy].
    U : array_like
        Charging energy of double occupation [energy], ``>= 0``.
    T, dT, dV, mu : array_like
        Mean temperature, ``T_L - T_R``, bias ``mu_L - mu_R`` and mean chemical potential
        [energy]; ``|dT| < 2 T``.
    gamma_L, gamma_R : array_like
        Bare rate per spin channel of each lead [rate], ``> 0``.

    Returns
    -------
    phasemap.physics.pauli.PauliResult
        Leads ordered (L, R); states as :data:`CHARGES`.
    """
    args = np.broadcast_arrays(*(np.asarray(a, np.float64)
                                 for a in (eps, U, T, dT, dV, mu, gamma_L, gamma_R)))
    eps, U, T, dT, dV, mu, gL, gR = args
    E, E_lo = state_energies(eps, U)
    gamma = np.zeros((*eps.shape, 2, 4, 4))
    for i, j in TRANSITIONS:
        gamma[..., 0, i, j] = gL
        gamma[..., 1, i, j] = gR
    mus, mus_lo, Ts, Ts_lo = pauli.two_leads(mu, dV, T, dT)
    return pauli.solve(E, CHARGES, gamma, mus, Ts, energies_lo=E_lo, mu_lo=mus_lo, T_lo=Ts_lo)


def mean_charge(p):
    """Mean electron number ``p_up + p_down + 2 p_2`` from the probabilities (..., 4)."""
    return p[..., 1] + p[..., 2] + 2.0 * p[..., 3]
