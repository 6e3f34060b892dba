"""Coulomb-coupled double dot: a conductor dot between L and R, gated by a dot fed by G.

Dot 1 (level ``eps``) tunnels to leads L and R; dot 2 (level ``eps_G``) tunnels only to a
third reservoir G (temperature ``T_G``, chemical potential ``mu_G``); the two interact by the
charging energy ``U`` (Sánchez & Büttiker, Phys. Rev. B 83, 085428 (2011); the inverse
currents of Zhang & Xie, arXiv:2109.10587, ref. [25] of Zhang & Lü, Phys. Rev. E 111, 044112
(2025)). States ``(n1, n2)`` and energies::

    0 = (0,0): 0,   1 = (1,0): eps,   2 = (0,1): eps_G,   3 = (1,1): eps + eps_G + U

Transitions and bare rates (leads ordered L, R, G)::

    (0,0) -> (1,0)   L: gamma_L     R: gamma_R       (dot 2 empty)
    (0,1) -> (1,1)   L: gamma_L_U   R: gamma_R_U     (dot 2 full: energy eps + U)
    (0,0) -> (0,1)   G: gamma_G
    (1,0) -> (1,1)   G: gamma_G

Different rates with dot 2 empty and full (``gamma_L != gamma_L_U``) make the energy
harvester: each cycle in which dot 1 takes an electron from L at ``eps`` and gives it to R at
``eps + U`` (or the reverse) carries energy ``U`` from G to the L-R conductor. In steady state
no charge flows from G (``J_G = 0``), so the heat ``Q_G`` leaving G is its energy current and
energy conservation reads ``P = dV J_L = Q_R - Q_L - Q_G``; the entropy production is
``s = Q_R/T_R - Q_L/T_L - Q_G/T_G >= 0``. Solved by :mod:`phasemap.physics.pauli`.
"""

from __future__ import annotations

import numpy as np

from . import pauli

CHARGES = (0, 1, 1, 2)
LEADS = ("L", "R", "G")


def state_energies(eps, eps_G, U):
    """Energies of (0,0), (1,0), (0,1), (1,1) as a double-double pair (..., 4)."""
    eps, eps_G, U = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (eps, eps_G, U)))
    s, e = pauli._two_sum(eps, eps_G)
    e3 = pauli.dd_add((s, e), (U, np.zeros(U.shape)))
    zero = np.zeros(eps.shape)
    return (np.stack([zero, eps, eps_G, e3[0]], axis=-1),
            np.stack([zero, zero, zero, e3[1]], axis=-1))


def solve(eps, eps_G, U, T, dT, dV, mu, T_G, mu_G, gamma_L, gamma_R, gamma_G, gamma_L_U,
          gamma_R_U) -> pauli.PauliResult:
    """Steady state of the Coulomb-coupled double dot, broadcast over the parameters.

    Parameters
    ----------
    eps, eps_G : array_like
        Levels of the conductor dot and of the gate dot [energy].
    U : array_like
        Interdot charging energy [energy].
    T, dT, dV, mu : array_like
        The L-R leads as in the single-level dot [energy].
    T_G, mu_G : array_like
        Temperature (> 0) and chemical potential of reservoir G [energy].
    gamma_L, gamma_R, gamma_L_U, gamma_R_U, gamma_G : array_like
        Bare rates [rate]: of dot 1 to L and R with dot 2 empty, the same with dot 2 full,
        and of dot 2 to G.

    Returns
    -------
    phasemap.physics.pauli.PauliResult
        Leads ordered (L, R, G).
    """
    args = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (
        eps, eps_G, U, T, dT, dV, mu, T_G, mu_G, gamma_L, gamma_R, gamma_G, gamma_L_U,
        gamma_R_U)))
    eps, eps_G, U, T, dT, dV, mu, T_G, mu_G, gL, gR, gG, gLU, gRU = args
    E, E_lo = state_energies(eps, eps_G, U)
    gamma = np.zeros((*eps.shape, 3, 4, 4))
    gamma[..., 0, 0, 1], gamma[..., 0, 2, 3] = gL, gLU
    gamma[..., 1, 0, 1], gamma[..., 1, 2, 3] = gR, gRU
    gamma[..., 2, 0, 2], gamma[..., 2, 1, 3] = gG, gG
    mus, mus_lo, Ts, Ts_lo = pauli.two_leads(mu, dV, T, dT)
    zero = np.zeros((*eps.shape, 1))
    mus = np.concatenate([mus, mu_G[..., None]], axis=-1)
    mus_lo = np.concatenate([mus_lo, zero], axis=-1)
    Ts = np.concatenate([Ts, T_G[..., None]], axis=-1)
    Ts_lo = np.concatenate([Ts_lo, zero], axis=-1)
    return pauli.solve(E, CHARGES, gamma, mus, Ts, energies_lo=E_lo, mu_lo=mus_lo, T_lo=Ts_lo)
