"""Generate ``reference_single_level.csv``: the single-level dot in high precision.

The reference for ``tests/test_precision.py``. Every row holds exact float inputs
(``eps, T, dT, dV, mu, gamma_L, gamma_R``, written as Python ``repr`` so they read back
bit-for-bit) and the outputs ``J_L, Q_L, Q_R, P, s, p1`` computed with mpmath at
``mp.dps = 60`` *from those exact binary inputs* (no decimal re-rounding), each written as the
``repr`` of the double nearest to the high-precision value.

Model (Zhang & Lü, Phys. Rev. E 111, 044112 (2025), eqs. 1-9, with eq. 6's typo fixed; natural
units k_B = e = 1)::

    T_L = T + dT/2, T_R = T - dT/2, mu_L = mu + dV/2, mu_R = mu - dV/2
    x_v = (eps - mu_v)/T_v, f_v = 1/(1 + exp(x_v))
    J_L = gamma (f_L - f_R), gamma = gamma_L gamma_R/(gamma_L + gamma_R)
    Q_L = (eps - mu_L) J_L, Q_R = (eps - mu_R) J_L, P = dV J_L, s = J_L (x_R - x_L)
    p1 = (gamma_L f_L + gamma_R f_R)/(gamma_L + gamma_R)

Each value is computed twice, by the plain definition (``f_L - f_R``, or ``f(-x_R) - f(-x_L)``
when both are close to 1, at ``dps = 200``) and by the identity
``f_L - f_R = sinh(d/2) / (2 cosh(x_L/2) cosh(x_R/2))`` (at ``dps = 60``); the script stops if
the two disagree beyond 1e-40 relative.

Rows kept: ``|x_v| <= 700`` and every output either 0 or a normal double (``>= 2.2e-308`` in
magnitude), so the float conversion is a single correct rounding. Rows close to the
reversible level ``eps_r = mu - T dV/dT`` are left out: there ``(eps - mu) dT + T dV`` is a
near-total cancellation and its value is set by the last bits of the inputs (docs/model.md,
"Numerical accuracy required"). "Close" means
``|(eps - mu) dT + T dV| <= 1e-6 (|eps - mu| |dT| + T |dV|)``, i.e. ``eps`` within a relative
distance ~1e-6 of ``eps_r`` measured from ``mu``.

Rerun (from the repository root; needs only mpmath and numpy, deterministic)::

    python3 tests/data/make_reference.py

It rewrites ``tests/data/reference_single_level.csv`` beside this script; the file it writes
is byte-identical from run to run.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import mpmath as mp
import numpy as np

INPUTS = ("eps", "T", "dT", "dV", "mu", "gamma_L", "gamma_R")
OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1")
DPS = 60
SMALLEST_NORMAL = 2.2250738585072014e-308
NEAR_REVERSIBLE = 1e-6
OUT = Path(__file__).with_name("reference_single_level.csv")


def _fermi(x):
    return 1 / (1 + mp.exp(x))


def reference(eps, T, dT, dV, mu, gamma_L, gamma_R) -> dict[str, mp.mpf]:
    """All outputs at one point in high precision, from the exact float inputs."""
    with mp.workdps(DPS):
        eps, T, dT, dV, mu, gL, gR = (mp.mpf(float(v)) for v in
                                      (eps, T, dT, dV, mu, gamma_L, gamma_R))
        TL, TR = T + dT / 2, T - dT / 2
        eL, eR = eps - (mu + dV / 2), eps - (mu - dV / 2)
        xL, xR = eL / TL, eR / TR
        d = ((eps - mu) * dT + T * dV) / (TL * TR)
        gamma = gL * gR / (gL + gR)
        diff = mp.sinh(d / 2) / (2 * mp.cosh(xL / 2) * mp.cosh(xR / 2))
        J = gamma * diff
        p1 = (gL * _fermi(xL) + gR * _fermi(xR)) / (gL + gR)
        out = {"J_L": J, "Q_L": eL * J, "Q_R": eR * J, "P": dV * J, "s": J * d, "p1": p1}
        # Independent check of the identity by the plain definition at much higher precision.
        with mp.workdps(200):
            xL2, xR2 = eL / TL, eR / TR
            if xL2 < 0 and xR2 < 0:
                plain = _fermi(-xR2) - _fermi(-xL2)
            else:
                plain = _fermi(xL2) - _fermi(xR2)
            if diff != 0 and abs(plain / diff - 1) > mp.mpf("1e-40"):
                raise AssertionError(f"identity check failed at {(eps, T, dT, dV, mu)}")
        return out


def keep(row: dict[str, float]) -> bool:
    eps, T, dT, dV, mu = (row[k] for k in ("eps", "T", "dT", "dV", "mu"))
    if not (T - abs(dT) / 2 > 0):
        return False
    with mp.workdps(DPS):
        e, t, dt, dv, m = (mp.mpf(v) for v in (eps, T, dT, dV, mu))
        xL = (e - m - dv / 2) / (t + dt / 2)
        xR = (e - m + dv / 2) / (t - dt / 2)
        if max(abs(xL), abs(xR)) > 700:
            return False
        num = (e - m) * dt + t * dv
        scale = abs(e - m) * abs(dt) + t * abs(dv)
        if num == 0 or abs(num) <= NEAR_REVERSIBLE * scale:
            return False
    return True


def candidate_rows() -> list[tuple[float, ...]]:
    """Structured points first, then seeded random ones."""
    rows: list[tuple[float, ...]] = []
    add = rows.append
    # Anchors from the physics contract (docs/model.md): deep tails that naive subtraction
    # gets wrong.
    add((-40.0, 1.0, 0.5, 0.0, 0.0, 2.0, 2.0))     # J_L = -1.2664e-14
    add((-600.0, 10.0, 1.0, 0.0, 0.0, 2.0, 2.0))   # J_L = -1.52e-25
    # Deep tails on both sides, forward and reversed gradients, up to |x_v| ~ 700.
    for T, dT in ((1.0, 0.5), (1.0, -0.5), (10.0, 1.0), (10.0, -3.0), (0.1, 0.05),
                  (2.0, 3.9), (2.0, -3.9)):
        for k in (-690.0, -400.0, -120.0, -40.0, -15.0, 15.0, 40.0, 120.0, 400.0, 690.0):
            add((k * (T - abs(dT) / 2), T, dT, 0.0, 0.0, 2.0, 2.0))
    # Deep tails with bias and mu != 0.
    for dV in (-3.0, -0.25, 0.25, 3.0):
        for x in (-650.0, -200.0, -30.0, 30.0, 200.0, 650.0):
            add((0.75 + x * 0.5, 1.0, 0.5, dV, 0.75, 1.0, 3.0))
    # The paper's figures: T = 7.5, dT = 5, dV in {-5, 0, 2.5, 5} along eps.
    for dV in (-5.0, 0.0, 2.5, 5.0):
        for eps in np.linspace(-40.0, 40.0, 33):
            add((float(eps), 7.5, 5.0, dV, 0.0, 2.0, 2.0))
    # Mixed signs of dT and dV, mu != 0, unequal gammas.
    for dT in (-4.0, -1.0, 1.0, 4.0):
        for dV in (-6.0, -0.5, 0.5, 6.0):
            for eps in (-20.0, -3.3, 0.1, 2.7, 18.0):
                add((eps, 3.0, dT, dV, -1.25, 0.3, 7.0))
    # Just outside the excluded band around eps_r = mu - T dV/dT (mu = 0 and mu != 0).
    for mu in (0.0, 1.5):
        er = mu - 7.5 * 5.0 / 5.0
        for rel in (-1e-3, -1e-4, -1e-5, -3e-6, 3e-6, 1e-5, 1e-4, 1e-3):
            add((er + rel * (abs(er - mu)), 7.5, 5.0, 5.0, mu, 2.0, 2.0))
    # eps next to a lead's chemical potential: Q_L or Q_R is a small difference eps - mu_v.
    for mu, dV in ((0.3, 5.0), (-1.7, 0.9), (2.0, -3.0)):
        for lead in (+1, -1):
            mu_v = mu + lead * dV / 2
            for rel in (0.0, -1e-12, 1e-12, -1e-9, 1e-9, 1e-6):
                add((mu_v + rel * max(abs(mu_v), 1.0), 2.0, 1.0, dV, mu, 1.0, 2.0))
    # Lead temperatures near zero (|dT| close to 2T).
    for dT in (1.999, -1.999, 1.9999999, -1.9999999):
        for eps in (-0.5, -0.01, 0.01, 0.5):
            add((eps, 1.0, dT, 0.2, 0.0, 2.0, 0.5))
    # Seeded random points over wide ranges.
    rng = np.random.default_rng(20250414)
    for _ in range(260):
        T = float(10.0 ** rng.uniform(-2, 2))
        dT = float(T * rng.uniform(-1.98, 1.98))
        dV = float(T * rng.normal(0.0, 4.0))
        mu = float(T * rng.normal(0.0, 2.0))
        spread = 10.0 ** rng.uniform(-1, 2.5)
        eps = float(mu + T * rng.normal(0.0, spread))
        gL = float(10.0 ** rng.uniform(-2, 2))
        gR = float(10.0 ** rng.uniform(-2, 2))
        add((eps, T, dT, dV, mu, gL, gR))
    return rows


def main(out: Path = OUT) -> int:
    """Write the table to ``out``; return the number of rows."""
    out_rows = []
    seen = set()
    for values in candidate_rows():
        row = dict(zip(INPUTS, (float(v) for v in values), strict=True))
        key = tuple(row.values())
        if key in seen or not keep(row):
            continue
        seen.add(key)
        ref = reference(**row)
        floats = {k: float(v) for k, v in ref.items()}
        if any(not math.isfinite(v) or (v != 0 and abs(v) < SMALLEST_NORMAL)
               for v in floats.values()):
            continue
        out_rows.append({**row, **floats})
    with Path(out).open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(INPUTS + OUTPUTS)
        for r in out_rows:
            writer.writerow([repr(r[k]) for k in INPUTS + OUTPUTS])
    return len(out_rows)


if __name__ == "__main__":
    print(f"wrote {main()} rows to {OUT}")
