"""Generic Pauli (sequential-tunnelling) master equation, batched over grid points.

A dot is a set of many-body states ``i`` with energies ``E_i`` and charges ``N_i`` coupled to
reservoirs ``v`` (temperature ``T_v``, chemical potential ``mu_v``). For every pair with
``N_j = N_i + 1`` and bare rate ``Gamma^v_ij`` the golden-rule rates are (Zhang & Lü,
Phys. Rev. E 111, 044112 (2025), eqs. 1-3, generalised)::

    W^v(j <- i) = Gamma^v_ij f_v(E_j - E_i)          (an electron enters from lead v)
    W^v(i <- j) = Gamma^v_ij [1 - f_v(E_j - E_i)]    (an electron leaves into lead v)

with ``f_v(E) = 1/(1 + exp((E - mu_v)/T_v))``. The steady state solves ``L p = 0``,
``sum(p) = 1`` for the generator ``L`` (by subtraction-free state elimination, so even very
improbable states keep their relative accuracy); the particle and heat currents *out of* each
reservoir and the entropy production (eq. 9) follow. Everything is vectorised over any number
of leading batch dimensions with numpy: there is no Python loop over points.

Unlike the closed form, currents here are differences of flows, so in the far tails of the
Fermi functions they carry cancellation error relative to the flows themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _fermi(x: np.ndarray) -> np.ndarray:
    """1/(1+e^x) for arrays, without overflow warnings."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, e / (1.0 + e), 1.0 / (1.0 + e))


@dataclass(frozen=True)
class PauliResult:
    """Steady state of a batch of dots.

    Attributes
    ----------
    p : ndarray (..., n_states)
        Occupation probabilities.
    particle_current : ndarray (..., n_leads)
        Electrons per unit time leaving each reservoir into the dot.
    heat_current : ndarray (..., n_leads)
        Heat per unit time leaving each reservoir: sum of ``(E_j - E_i - mu_v)`` times the net
        tunnelling flow into the dot through lead ``v``.
    entropy_production : ndarray (...)
        Eq. (9): sum over transitions and leads of flow times log of forward/backward flow.
    """

    p: np.ndarray
    particle_current: np.ndarray
    heat_current: np.ndarray
    entropy_production: np.ndarray


def _stationary(R: np.ndarray) -> np.ndarray:
    """Stationary distribution of the rate matrices ``R[..., i, j]`` (rate i -> j).

    The Grassmann-Taksar-Heyman algorithm: state elimination with no subtraction at all, so
    every probability, however small, comes out to a few ulp *relative* accuracy (a solve
    with one balance equation replaced by normalisation gets the small ones as differences
    of order-one numbers: zero or even negative, then ``log p`` in eq. 9 is infinite).
    Loops over states, vectorised over the batch. The back substitution keeps the partial
    distribution normalised at every step, so ratios beyond 1e308 cannot overflow; a state
    that cannot be left at all (its outgoing rates underflowed to zero) takes the probability.
    """
    q = np.array(R, dtype=np.float64, copy=True)
    n = q.shape[-1]
    out = np.zeros(q.shape[:-1])  # out[..., k]: rate from k into states < k after reduction
    for k in range(n - 1, 0, -1):
        sk = q[..., k, :k].sum(axis=-1)
        out[..., k] = sk
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where((sk > 0)[..., None], q[..., k, :k] / sk[..., None], 0.0)
        q[..., :k, :k] += q[..., :k, k, None] * share[..., None, :]
    p = np.zeros(q.shape[:-1])
    p[..., 0] = 1.0
    for k in range(1, n):
        # p[:k] sums to 1; the unnormalised p_k = inflow / s_k may be huge or tiny.
        inflow = (p[..., :k] * q[..., :k, k]).sum(axis=-1)
        sk = out[..., k]
        big = inflow > sk
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # unused branch
            ratio = np.where(big, sk / inflow, inflow / sk)     # <= 1, 0 when the other is
        ratio = np.where(np.isnan(ratio), 0.0, ratio)          # 0 / 0: unreachable state
        keep = np.where(big, ratio, 1.0) / (1.0 + ratio)       # factor on p[:k]
        p[..., :k] *= keep[..., None]
        p[..., k] = np.where(big, 1.0, ratio) / (1.0 + ratio)
    return p


def solve(energies, charges, gamma, mu, T) -> PauliResult:
    """Solve the Pauli master equation for a batch of dots.

    Parameters
    ----------
    energies : array_like (..., n)
        Many-body state energies [energy].
    charges : array_like of int (n,)
        Electron number of each state.
    gamma : array_like (..., m, n, n)
        Bare tunnelling rate through lead ``v`` between states ``i`` and ``j``; only entries
        with ``charges[j] == charges[i] + 1`` are used [rate].
    mu, T : array_like (..., m)
        Chemical potential [energy] and temperature [energy] of each lead; ``T > 0``.

    Returns
    -------
    PauliResult
        Broadcast over the leading dimensions of all inputs.
    """
    energies = np.asarray(energies, dtype=np.float64)
    charges = np.asarray(charges)
    gamma = np.asarray(gamma, dtype=np.float64)
    mu = np.asarray(mu, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    n = energies.shape[-1]
    m = mu.shape[-1]

    # Which ordered pairs (i -> j) add one electron.
    adds = (charges[None, :] == charges[:, None] + 1)  # [i, j]
    ii, jj = np.nonzero(adds)

    dE = energies[..., jj] - energies[..., ii]                       # (..., k)
    x = (dE[..., None, :] - mu[..., :, None]) / T[..., :, None]      # (..., m, k)
    f = _fermi(x)
    fbar = _fermi(-x)
    g = gamma[..., :, ii, jj]                                        # (..., m, k)
    w_in = g * f          # rate i -> j through lead v
    w_out = g * fbar      # rate j -> i through lead v

    batch = np.broadcast_shapes(energies.shape[:-1], mu.shape[:-1], T.shape[:-1],
                                gamma.shape[:-3])
    w_in = np.broadcast_to(w_in, (*batch, m, len(ii)))
    w_out = np.broadcast_to(w_out, (*batch, m, len(ii)))
    x = np.broadcast_to(x, (*batch, m, len(ii)))

    # Rates R[i, j] = total rate i -> j (i != j), summed over leads.
    R = np.zeros((*batch, n, n))
    tin = w_in.sum(axis=-2)
    tout = w_out.sum(axis=-2)
    for k, (i, j) in enumerate(zip(ii, jj, strict=True)):  # loop over transitions, not points
        R[..., i, j] += tin[..., k]
        R[..., j, i] += tout[..., k]
    p = _stationary(R)

    flow_in = w_in * p[..., None, ii]      # (..., m, k): electrons entering via lead v
    flow_out = w_out * p[..., None, jj]    # electrons leaving via lead v
    net = flow_in - flow_out
    particle = net.sum(axis=-1)
    heat = ((dE[..., None, :] - mu[..., :, None]) * net).sum(axis=-1)
    # ln(w_in p_i / (w_out p_j)) = -x + ln p_i - ln p_j, written without forming the ratio.
    # Where a flow has underflowed to 0 its term is negligible (not +-inf): drop it.
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(p)
        affinity = -x + logp[..., None, ii] - logp[..., None, jj]
    affinity = np.where((flow_in == 0.0) | (flow_out == 0.0), 0.0, affinity)
    # Each term is (a - b) ln(a/b) >= 0; where a ~ b rounding can give the computed log ratio
    # the wrong sign, so a term is floored at 0 (it is then pure rounding anyway).
    entropy = np.maximum(net * affinity, 0.0).sum(axis=(-2, -1))
    return PauliResult(p=p, particle_current=particle, heat_current=heat,
                       entropy_production=entropy)
