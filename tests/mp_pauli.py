"""An independent high-precision Pauli solver: the oracle for the engine and its models.

Unlike ``phasemap.physics.pauli`` (cycle decomposition), this builds the generator matrix and
solves ``L p = 0, sum p = 1`` by mpmath's LU decomposition, then forms every current as a plain
difference of flows. It is exact enough because the working precision is 60 digits *plus* the
decades the inputs span (``max |x|`` and the rate ratios): cancellations in the solve and in
the flow differences then cost digits we can afford. Inputs are the exact binary values of
the model parameters (``mp.mpf(float)`` is exact), so ``mu + dV/2``, ``T + dT/2``, ``2 eps +
U`` are formed without rounding. Model definitions: Zhang & Lü, Phys. Rev. E 111, 044112
(2025), eqs. 1-9, and the docstrings of ``phasemap.physics.anderson`` /
``phasemap.physics.coulomb_coupled_dots``.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np

from phasemap import regimes

TINY = 5e-324


def solve_mp(energies, charges, gamma, mu, T):
    """``(p, J_v, Q_v, s)`` as mpf lists. ``gamma[v][(i, j)]`` for ``N_j = N_i + 1``."""
    n = len(energies)
    L = mp.zeros(n, n)
    flows = []  # (v, i, j, w_in, w_out)
    for v in range(len(mu)):
        for (i, j), g in gamma[v].items():
            if g == 0:
                continue
            x = (energies[j] - energies[i] - mu[v]) / T[v]
            w_in = g / (1 + mp.exp(x))
            w_out = g / (1 + mp.exp(-x))
            flows.append((v, i, j, w_in, w_out))
            L[j, i] += w_in
            L[i, i] -= w_in
            L[i, j] += w_out
            L[j, j] -= w_out
    A = L.copy()
    b = mp.zeros(n, 1)
    for c in range(n):
        A[0, c] = 1
    b[0] = 1
    p = mp.lu_solve(A, b)
    J = [mp.mpf(0)] * len(mu)
    Q = [mp.mpf(0)] * len(mu)
    for v, i, j, w_in, w_out in flows:
        net = w_in * p[i] - w_out * p[j]
        J[v] += net
        Q[v] += (energies[j] - energies[i] - mu[v]) * net
    s = -mp.fsum(Q[v] / T[v] for v in range(len(mu)))
    return [p[i] for i in range(n)], J, Q, s


def dps_for(xmax: float, rate_ratio: float = 1.0) -> int:
    return 60 + int(xmax / 2.3) + int(abs(math.log10(max(rate_ratio, 1.0)))) * 2 + 20


def to_float(v) -> float:
    """Round to the nearest double; a nonzero value below 5e-324 keeps its sign."""
    f = float(v)
    if f == 0.0 and v != 0:
        f = math.copysign(TINY, float(mp.sign(v)))
    return f + 0.0


def labels(dT, dV, J, QL, QR):
    """Exact labels from exactly signed (rounded) reference values."""
    P = to_float(mp.mpf(dV) * mp.mpf(J)) if J != 0 and dV != 0 else 0.0
    reg, mach = regimes.classify(np.array(dT), np.array(dV), np.array(J), np.array(QL),
                                 np.array(QR), np.array(P))
    return int(reg), int(mach)


def label_mismatches(points, got, refs, dT_col: int, dV_col: int) -> list[tuple]:
    """``(row, reference labels, engine labels)`` of every point whose labels differ from the
    ones the exactly signed 60-digit reference values give (``points[:, dT_col]`` and
    ``points[:, dV_col]`` hold dT and dV)."""
    bad = []
    for i, (row, ref) in enumerate(zip(points, refs, strict=True)):
        vals = [to_float(ref[k]) for k in ("J_L", "Q_L", "Q_R")]
        want = labels(row[dT_col], row[dV_col], *vals)
        have = (int(got["regime"][i]), int(got["machine"][i]))
        if want != have:
            bad.append((tuple(row), want, have))
    return bad


def leads(T, dT, dV, mu):
    M = mp.mpf
    return ([M(mu) + M(dV) / 2, M(mu) - M(dV) / 2], [M(T) + M(dT) / 2, M(T) - M(dT) / 2])


def single_dot(eps, T, dT, dV, mu, gamma_L, gamma_R):
    """Reference of the two-state dot: dict of J_L, Q_L, Q_R, s (mpf)."""
    M = mp.mpf
    with mp.workdps(40):
        mus, Ts = leads(T, dT, dV, mu)
        xmax = max(abs(float((M(eps) - mus[v]) / Ts[v])) for v in (0, 1))
    with mp.workdps(dps_for(xmax, max(gamma_L / gamma_R, gamma_R / gamma_L))):
        mus, Ts = leads(T, dT, dV, mu)
        p, J, Q, s = solve_mp([M(0), M(eps)], [0, 1], [{(0, 1): M(gamma_L)},
                                                       {(0, 1): M(gamma_R)}], mus, Ts)
        return {"J_L": +J[0], "Q_L": +Q[0], "Q_R": -Q[1], "s": +s, "p1": +p[1], "xmax": xmax}


def anderson(eps, U, T, dT, dV, mu, gamma_L, gamma_R):
    """Reference of the spin-degenerate Anderson level (states 0, up, down, 2)."""
    M = mp.mpf
    pairs = ((0, 1), (0, 2), (1, 3), (2, 3))
    with mp.workdps(40):
        mus, Ts = leads(T, dT, dV, mu)
        E = [M(0), M(eps), M(eps), 2 * M(eps) + M(U)]
        xs = [abs(float((e - mus[v]) / Ts[v])) for e in (E[1], E[3] - E[1]) for v in (0, 1)]
    with mp.workdps(dps_for(max(xs), max(gamma_L / gamma_R, gamma_R / gamma_L))):
        mus, Ts = leads(T, dT, dV, mu)
        E = [M(0), M(eps), M(eps), 2 * M(eps) + M(U)]
        p, J, Q, s = solve_mp(E, [0, 1, 1, 2], [dict.fromkeys(pairs, M(gamma_L)),
                                                dict.fromkeys(pairs, M(gamma_R))], mus, Ts)
        return {"J_L": +J[0], "Q_L": +Q[0], "Q_R": -Q[1], "s": +s,
                "n": p[1] + p[2] + 2 * p[3], "xmax": max(xs)}


def ccdd(eps, eps_G, U, T, dT, dV, mu, T_G, mu_G, gamma_L, gamma_R, gamma_G, gamma_L_U,
         gamma_R_U):
    """Reference of the Coulomb-coupled double dot; states (n1, n2) = 00, 10, 01, 11."""
    M = mp.mpf

    def setup():
        mus, Ts = leads(T, dT, dV, mu)
        mus.append(M(mu_G))
        Ts.append(M(T_G))
        return mus, Ts, [M(0), M(eps), M(eps_G), M(eps) + M(eps_G) + M(U)]

    with mp.workdps(40):
        mus, Ts, E = setup()
        xs = [abs(float((e - mus[v]) / Ts[v])) for e in (E[1], E[3] - E[2]) for v in (0, 1)]
        xs += [abs(float((e - mus[2]) / Ts[2])) for e in (E[2], E[3] - E[1])]
    rates = [gamma_L, gamma_R, gamma_G, gamma_L_U, gamma_R_U]
    ratio = max(rates) / min(rates)
    with mp.workdps(dps_for(max(xs), ratio)):
        mus, Ts, E = setup()
        gam = [{(0, 1): M(gamma_L), (2, 3): M(gamma_L_U)},
               {(0, 1): M(gamma_R), (2, 3): M(gamma_R_U)},
               {(0, 2): M(gamma_G), (1, 3): M(gamma_G)}]
        _p, J, Q, s = solve_mp(E, [0, 1, 1, 2], gam, mus, Ts)
        return {"J_L": +J[0], "Q_L": +Q[0], "Q_R": -Q[1], "Q_G": +Q[2], "s": +s,
                "xmax": max(xs)}
