"""Generate ``reference_resonant_level.csv``: the resonant level by 50-digit quadrature.

The reference for ``tests/test_resonant_level.py``. Every row holds exact float inputs
(``eps, T, dT, dV, mu, gamma_L, gamma_R``, written as Python ``repr`` so they read back
bit-for-bit), a ``kind`` saying why the point was chosen, and the outputs
``J_L, Q_L, Q_R, P, s, noise_J``, each the ``repr`` of the double nearest to a value computed
with mpmath at ``mp.dps = 50`` *from the exact binary inputs*.

The values are the Landauer integrals themselves, by ``mpmath.quad`` (tanh-sinh), not the
closed forms the package uses (natural units k_B = e = hbar = 1; Zhang & Lü, Phys. Rev. E 111,
044112 (2025) for the conventions)::

    tau(E) = gamma_L gamma_R / ((E - eps)^2 + (gamma_L + gamma_R)^2 / 4)
    J_L + i Q_L = int dE/(2 pi) tau (f_L - f_R) (1 + i (E - mu_L))      (one complex quad)
    Q_R = Q_L + dV J_L,  P = dV J_L,  s = Q_R/T_R - Q_L/T_L               (exact identities)
    noise_J = int dE/(2 pi) {tau [f_L(1-f_L) + f_R(1-f_R)] + tau (1 - tau) (f_L - f_R)^2}

with ``f_L - f_R = sinh(d/2) / (2 cosh(x_L/2) cosh(x_R/2))``, ``d = ((E - mu) dT + T dV)/
(T_L T_R)``, so the integrand has no cancellation. The range is cut at 160 lead temperatures
beyond the outermost chemical potential (the integrands fall off as ``exp(-|E - mu_v|/T_v)``
there: the neglected part is below 1e-60 of the result) and split at the resonance
``eps, eps ± Gamma/2`` and the Fermi edges ``mu_v, mu_v ± 4 T_v``. Each row is checked
against the digamma closed form at 60 digits (an independent derivation,
``docs/model.md``) and against quad's own error estimate; the script stops if either
disagrees beyond 1e-35 relative.

Points: random ones over wide ranges (Gamma/T from 1e-4 to 1e3, |dT| up to 1.98 T, biases up
to ±20 T, levels up to ±60 T), and hard ones: near equilibrium (dT, dV ~ 1e-9 T), a level
within a relative 1e-6 ... 1e-12 of a sign change of J_L, Q_L or Q_R (found by root finding on
the closed form), very narrow and very wide levels (Gamma/T = 1e-6, 1e4), |dT| within 1e-8
of 2T, far levels (|eps - mu| = 400 T).

Rerun (from the repository root; needs only mpmath and numpy, deterministic, ~2 minutes with
two processes)::

    python3 tests/data/make_resonant_reference.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
from pathlib import Path

import mpmath as mp
import numpy as np

INPUTS = ("eps", "T", "dT", "dV", "mu", "gamma_L", "gamma_R")
OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "noise_J")
DPS = 50
OUT = Path(__file__).with_name("reference_resonant_level.csv")


def _setup(eps, T, dT, dV, mu, gL, gR):
    eps, T, dT, dV, mu, gL, gR = (mp.mpf(v) for v in (eps, T, dT, dV, mu, gL, gR))  # exact
    TL, TR = T + dT / 2, T - dT / 2
    muL, muR = mu + dV / 2, mu - dV / 2
    a = (gL + gR) / 2
    return eps, T, dT, dV, mu, gL, gR, TL, TR, muL, muR, a


def _breaks(eps, a, TL, TR, muL, muR):
    lo = min(muL, muR) - 160 * max(TL, TR)
    hi = max(muL, muR) + 160 * max(TL, TR)
    inner = [eps - a, eps, eps + a, muL - 4 * TL, muL, muL + 4 * TL, muR - 4 * TR, muR,
             muR + 4 * TR]
    return [lo, *sorted({p for p in inner if lo < p < hi}), hi]


def quadrature(eps, T, dT, dV, mu, gamma_L, gamma_R, noise=True):
    """``(J_L, Q_L, Q_R, P, s, noise_J)`` by quadrature of the Landauer integrals."""
    with mp.workdps(DPS):
        eps, T, dT, dV, mu, gL, gR, TL, TR, muL, muR, a = _setup(eps, T, dT, dV, mu, gamma_L,
                                                                 gamma_R)
        pts = _breaks(eps, a, TL, TR, muL, muR)

        def tau(E):
            return gL * gR / ((E - eps) ** 2 + a * a)

        def parts(E):
            xL, xR = (E - muL) / TL, (E - muR) / TR
            d = ((E - mu) * dT + T * dV) / (TL * TR)
            cL, cR = mp.cosh(xL / 2), mp.cosh(xR / 2)
            return mp.sinh(d / 2) / (2 * cL * cR), 1 / (4 * cL * cL), 1 / (4 * cR * cR)

        def current(E):
            return tau(E) * parts(E)[0] * mp.mpc(1, E - muL)

        v, err = mp.quad(current, pts, error=True)
        J, QL = v.real / (2 * mp.pi), v.imag / (2 * mp.pi)
        if err > mp.mpf(10) ** -40 * abs(v):
            raise SystemExit(f"quad error estimate {err} too large at {eps, T, dT, dV}")
        QR = QL + dV * J
        out = [J, QL, QR, dV * J, QR / TR - QL / TL]
        if noise:
            def fluct(E):
                diff, thL, thR = parts(E)
                t = tau(E)
                one_minus_tau = ((E - eps) ** 2 + (gL - gR) ** 2 / 4) / ((E - eps) ** 2 + a * a)
                return t * (thL + thR) + t * one_minus_tau * diff * diff

            out.append(mp.quad(fluct, pts) / (2 * mp.pi))
        else:
            out.append(mp.nan)
        return out


def closed_form(eps, T, dT, dV, mu, gamma_L, gamma_R, dps=60):
    """``(J_L, Q_L, Q_R)`` from the digamma closed form (docs/model.md)."""
    with mp.workdps(dps):
        eps, T, dT, dV, mu, gL, gR, TL, TR, muL, muR, a = _setup(eps, T, dT, dV, mu, gamma_L,
                                                                 gamma_R)
        eL, eR = eps - muL, eps - muR
        K = gL * gR / (gL + gR)
        D = (mp.psi(0, mp.mpf(1) / 2 + mp.mpc(a, -eL) / (2 * mp.pi * TL))
             - mp.psi(0, mp.mpf(1) / 2 + mp.mpc(a, -eR) / (2 * mp.pi * TR)) + mp.log(TL / TR))
        return [K / mp.pi * D.imag, K / mp.pi * (a * D.real + eL * D.imag),
                K / mp.pi * (a * D.real + eR * D.imag)]


def _root(which, T, dT, dV, mu, gL, gR, guess):
    """The level ``eps`` where output ``which`` (0: J_L, 1: Q_L, 2: Q_R) changes sign."""
    with mp.workdps(40):
        return mp.findroot(lambda e: closed_form(e, T, dT, dV, mu, gL, gR, dps=40)[which],
                           guess)


def points() -> list[tuple[str, tuple[float, ...]]]:
    rng = np.random.default_rng(20261201)
    pts: list[tuple[str, tuple[float, ...]]] = []
    for _ in range(70):
        T = float(10 ** rng.uniform(-1, 1))
        g = 10 ** rng.uniform(-4, 3) * T
        share = rng.uniform(0.05, 0.95)
        pts.append(("random", (float(rng.uniform(-60, 60) * T), T,
                               float(rng.uniform(-1.98, 1.98) * T),
                               float(rng.uniform(-20, 20) * T), float(rng.uniform(-2, 2) * T),
                               float(g * share), float(g * (1 - share)))))
    for _ in range(12):  # near equilibrium
        T = float(10 ** rng.uniform(-1, 1))
        pts.append(("near_equilibrium", (float(rng.uniform(-10, 10) * T), T,
                                         float(rng.normal() * 1e-9 * T),
                                         float(rng.normal() * 1e-9 * T), 0.0,
                                         float(10 ** rng.uniform(-2, 1) * T),
                                         float(10 ** rng.uniform(-2, 1) * T))))
    # sign changes of J_L (the broadened reversible level), Q_L and Q_R
    cases = [(0, 7.5, 5.0, 5.0, 2.0, 2.0, -7.5), (0, 1.0, 0.5, 0.3, 0.2, 0.3, -0.6),
             (0, 2.0, -1.0, 1.0, 3.0, 1.0, 4.0), (1, 7.5, 5.0, 5.0, 2.0, 2.0, 2.5),
             (1, 1.0, 0.4, 1.0, 0.05, 0.1, 0.5), (2, 7.5, 5.0, 5.0, 0.2, 0.2, -2.5),
             (1, 7.5, 5.0, 5.0, 2.0, 2.0, -5.8),
             (2, 1.0, -0.5, 2.0, 1.0, 0.5, -1.0), (0, 1.0, 1.9, 0.5, 10.0, 10.0, -0.3)]
    for which, T, dT, dV, gL, gR, guess in cases:
        root = _root(which, T, dT, dV, 0.0, gL, gR, guess)
        for rel in (1e-6, 1e-9, 1e-12, -1e-12, -1e-9, -1e-6):
            pts.append((f"sign_change_{('J_L', 'Q_L', 'Q_R')[which]}",
                        (float(root * (1 + rel)), T, dT, dV, 0.0, gL, gR)))
    for ratio in (1e-6, 1e-4, 1e2, 1e4):  # narrow and wide levels
        for eps in (-3.0, 0.5, 8.0):
            pts.append(("gamma_over_T", (eps, 1.0, 0.6, -0.4, 0.0, 0.3 * ratio, 0.7 * ratio)))
    for sign in (1.0, -1.0):  # |dT| next to 2T
        for eps in (-2.0, 1.0, 6.0):
            pts.append(("dT_near_2T", (eps, 1.5, sign * 3.0 * (1 - 1e-8), 0.7, 0.1, 1.0, 0.4)))
    for eps in (-400.0, 400.0):
        pts.append(("far_level", (eps, 1.0, 0.5, 0.5, 0.0, 2.0, 2.0)))
    return pts


def row(item):
    kind, p = item
    q = quadrature(*p)
    c = closed_form(*p)
    with mp.workdps(DPS):
        for name, x, y in zip(("J_L", "Q_L", "Q_R"), q, c, strict=False):
            if abs(x - y) > mp.mpf(10) ** -35 * abs(x):
                raise SystemExit(f"{name}: quadrature {x} and closed form {y} disagree at {p}")
        return [repr(float(v)) for v in p] + [repr(float(v)) for v in q] + [kind]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    items = points()
    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs) as pool:
            rows = pool.map(row, items, chunksize=4)
    else:
        rows = [row(it) for it in items]
    with OUT.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(INPUTS + OUTPUTS + ("kind",))
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
