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

Every row also holds the two labels (``regime``, ``machine``, by name) computed from *exact*
signs: ``sign(J_L)`` is the sign of the rational number ``(eps - mu) dT + T dV`` of the float
inputs, ``sign(Q_v) = sign(eps - mu_v) sign(J_L)`` and ``sign(P) = sign(dV) sign(J_L)`` with
``eps - mu_v`` in exact rational arithmetic too; the rules of docs/regimes.md are restated
here (not imported), so the table is an independent oracle. And a ``category`` naming which
part of the generator made the row.

Categories:

``core``
    The structured and random points of the first version of this table. Rows kept:
    ``|x_v| <= 700`` and every output either 0 or a normal double (``>= 2.2e-308`` in
    magnitude), and not close to the reversible level ``eps_r = mu - T dV/dT`` ("close":
    ``|(eps - mu) dT + T dV| <= 1e-6 (|eps - mu| |dT| + T |dV|)``).
``tail``
    ``max |x_v|`` in (700, 745]: currents near and below the smallest normal double.
``deep``
    ``max |x_v|`` in (745, 5000]: the true current is below the smallest subnormal.
``cold``
    ``T <= 1e-3``.
``near_2T``
    ``|dT|`` within a relative 1e-7 of ``2 T`` (one lead almost at zero temperature).
``bias``
    ``|dV| / T`` from 1 up to 1e3.
``rates``
    ``gamma_L, gamma_R`` from 1e-3 to 1e3 with a ratio up to 1e6.
``weak_forces``
    ``|dT|, |dV|`` down to 1e-15 of ``T`` with ``|x_v|`` from 600 to 745 (as in issue 13's
    ``(eps, T, dT, dV) = (-25.27, 0.0364, -4.1e-14, -2.0e-14)``): flows whose products with
    ``dV`` or ``eps - mu_v`` underflow.
``on_eps_r``, ``on_mu_L``, ``on_mu_R``
    Points exactly on the reversible level, exactly on a lead's chemical potential (checked
    in exact arithmetic), and their nearest float neighbours.

Outside ``core`` the outputs are written as the double nearest to the true value, except
that a nonzero true value below the subnormal range is written as ``+-5e-324``: the
sign-only stand-in the model returns there (docs/model.md); ``p1``, an occupation, not a
flow, is always the nearest double. Such rows are for signs and
labels; the accuracy contract covers ``|x_v| <= 700`` and normal doubles.

Rerun (from the repository root; needs only mpmath and numpy, deterministic)::

    python3 tests/data/make_reference.py

It rewrites ``tests/data/reference_single_level.csv`` beside this script; the file it writes
is byte-identical from run to run.
"""

from __future__ import annotations

import csv
import math
from fractions import Fraction
from pathlib import Path

import mpmath as mp
import numpy as np

INPUTS = ("eps", "T", "dT", "dV", "mu", "gamma_L", "gamma_R")
OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1")
LABELS = ("regime", "machine")
TINY = 5e-324
#: rows kept per category (the generator stops if a change of it keeps a different number)
EXPECTED_ROWS = {
    "core": 609, "tail": 500, "deep": 250, "cold": 400, "near_2T": 400, "bias": 400,
    "rates": 400, "weak_forces": 401, "on_eps_r": 600, "on_mu_L": 600, "on_mu_R": 600,
}
DPS = 60
SMALLEST_NORMAL = 2.2250738585072014e-308
NEAR_REVERSIBLE = 1e-6
OUT = Path(__file__).with_name("reference_single_level.csv")


def _fermi(x):
    return 1 / (1 + mp.exp(x))


def _mpf(q: Fraction) -> mp.mpf:
    """A rational number to the working precision (one rounding, whatever its exponent)."""
    return mp.mpf(q.numerator) / q.denominator


def reference(eps, T, dT, dV, mu, gamma_L, gamma_R) -> dict[str, mp.mpf]:
    """All outputs at one point in high precision, from the exact float inputs.

    The sums that cancel (``T_v``, ``eps - mu_v`` and ``(eps - mu) dT + T dV``) are formed in
    exact rational arithmetic first: at 60 digits ``eps - mu`` would lose an ``eps`` of
    5e-324 next to ``mu = 5.75``.
    """
    F = Fraction
    fe, fT, fdT, fdV, fmu = (F(float(v)) for v in (eps, T, dT, dV, mu))
    with mp.workdps(DPS):
        gL, gR = mp.mpf(float(gamma_L)), mp.mpf(float(gamma_R))
        dV = mp.mpf(float(dV))
        TL, TR = _mpf(fT + fdT / 2), _mpf(fT - fdT / 2)
        eL, eR = _mpf(fe - fmu - fdV / 2), _mpf(fe - fmu + fdV / 2)
        xL, xR = eL / TL, eR / TR
        d = _mpf(((fe - fmu) * fdT + fT * fdV) / ((fT + fdT / 2) * (fT - fdT / 2)))
        gamma = gL * gR / (gL + gR)
        diff = mp.sinh(d / 2) / (2 * mp.cosh(xL / 2) * mp.cosh(xR / 2))
        J = gamma * diff
        p1 = (gL * _fermi(xL) + gR * _fermi(xR)) / (gL + gR)
        out = {"J_L": J, "Q_L": eL * J, "Q_R": eR * J, "P": dV * J, "s": J * d, "p1": p1}
        # Independent check of the identity by the plain definition at much higher precision
        # (200 digits, and as many more as d = x_R - x_L is smaller than x_L, x_R: the plain
        # difference of Fermi functions loses that many).
        scale = max(abs(xL), abs(xR), mp.mpf(1))
        extra = 0 if d == 0 else max(0, int(mp.log10(scale / abs(d))))
        with mp.workdps(200 + extra):
            xL2 = _mpf(fe - fmu - fdV / 2) / _mpf(fT + fdT / 2)
            xR2 = _mpf(fe - fmu + fdV / 2) / _mpf(fT - fdT / 2)
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


# --- labels from exact signs ------------------------------------------------------------

REGIME = ("equilibrium", "reversible", "anomalous_thermodiffusion",
          "absolute_negative_mobility", "reverse_heat_transport", "heat_engine",
          "refrigerator", "joule_heating", "conventional")
MACHINE = ("idle", "heat_engine", "conductor", "refrigerator", "heater", "accelerator")


def _sgn(q) -> int:
    return (q > 0) - (q < 0)


def exact_signs(eps, T, dT, dV, mu) -> tuple[int, int, int, int, int, int]:
    """Signs of ``dT, dV, J_L, Q_L, Q_R, P`` in exact rational arithmetic of the inputs."""
    F = Fraction
    e, t, dt, dv, m = (F(float(v)) for v in (eps, T, dT, dV, mu))
    sJ = _sgn((e - m) * dt + t * dv)
    return (_sgn(dt), _sgn(dv), sJ, _sgn(e - m - dv / 2) * sJ, _sgn(e - m + dv / 2) * sJ,
            _sgn(dv) * sJ)


def labels(eps, T, dT, dV, mu) -> tuple[str, str]:
    """``(regime, machine)`` by the tables of docs/regimes.md, from exact signs."""
    dt, dv, J, QL, QR, P = exact_signs(eps, T, dT, dV, mu)
    if dt < 0 or (dt == 0 and dv < 0):  # the forward frame
        dt, dv, J, QL, QR = -dt, -dv, -J, -QR, -QL
    if dt == 0 and dv == 0:
        regime = "equilibrium"
    elif J == 0:
        regime = "reversible"
    elif dv == 0 and J < 0:
        regime = "anomalous_thermodiffusion"
    elif dv > 0 and J < 0:
        regime = "absolute_negative_mobility"
    elif dt > 0 and dv > 0 and QL < 0 and QR < 0:
        regime = "reverse_heat_transport"
    elif dv < 0 and P < 0:
        regime = "heat_engine"
    elif dv < 0 and QR < 0:
        regime = "refrigerator"
    elif QL < 0 < QR:
        regime = "joule_heating"
    else:
        regime = "conventional"
    if J == 0:
        machine = "idle"
    elif P < 0:
        machine = "heat_engine"
    elif P == 0:
        machine = "conductor"
    elif QR < 0:
        machine = "refrigerator"
    elif QL < 0:
        machine = "heater"
    else:
        machine = "accelerator"
    return regime, machine


# --- the hard corners ---------------------------------------------------------------------

def _x_max(row) -> float:
    eps, T, dT, dV, mu = (mp.mpf(row[k]) for k in ("eps", "T", "dT", "dV", "mu"))
    with mp.workdps(DPS):
        return float(max(abs((eps - mu - dV / 2) / (T + dT / 2)),
                         abs((eps - mu + dV / 2) / (T - dT / 2))))


def _valid(row) -> bool:
    """The model's own domain check, in floats as the model does it: T > 0, T - |dT|/2 > 0."""
    T, dT = row["T"], row["dT"]
    return T > 0 and T - 0.5 * abs(dT) > 0 and all(math.isfinite(v) for v in row.values())


def _level_at(rng, x, T, dT, dV, mu):
    """``eps`` with ``x_L = x`` or ``x_R = x`` (chosen at random)."""
    if rng.random() < 0.5:
        return float(mu + dV / 2 + x * (T + dT / 2))
    return float(mu - dV / 2 + x * (T - dT / 2))


def _random_device(rng, T=None):
    T = float(10.0 ** rng.uniform(-2, 2)) if T is None else T
    return (T, float(T * rng.uniform(-1.9, 1.9)), float(T * rng.normal(0.0, 3.0)),
            float(T * rng.normal(0.0, 2.0)), float(10.0 ** rng.uniform(-1, 1)),
            float(10.0 ** rng.uniform(-1, 1)))


def _neighbours(x: float, k: int = 2) -> list[float]:
    out = [x]
    lo = hi = x
    for _ in range(k):
        lo, hi = math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf)
        out += [lo, hi]
    return out


def corner_rows() -> dict[str, list[tuple[float, ...]]]:
    """Candidate rows of each hard-corner category (seeded, deterministic)."""
    rng = np.random.default_rng(20261201)
    cats: dict[str, list[tuple[float, ...]]] = {}

    def sign_flip():
        return 1.0 if rng.random() < 0.5 else -1.0

    rows = cats["tail"] = []
    for _ in range(500):
        T, dT, dV, mu, gL, gR = _random_device(rng)
        x = sign_flip() * float(rng.uniform(700.0, 745.0))
        rows.append((_level_at(rng, x, T, dT, dV, mu), T, dT, dV, mu, gL, gR))
    rows = cats["deep"] = []
    for _ in range(250):
        T, dT, dV, mu, gL, gR = _random_device(rng)
        x = sign_flip() * float(10.0 ** rng.uniform(math.log10(746.0), math.log10(5000.0)))
        rows.append((_level_at(rng, x, T, dT, dV, mu), T, dT, dV, mu, gL, gR))
    rows = cats["cold"] = []
    for _ in range(400):
        T = float(10.0 ** rng.uniform(-8, -3))
        _, dT, dV, mu, gL, gR = _random_device(rng, T)
        mu = float(rng.normal(0.0, 1.0))
        x = float(rng.normal(0.0, 10.0 ** rng.uniform(0, 2.8)))
        rows.append((_level_at(rng, x, T, dT, dV, mu), T, dT, dV, mu, gL, gR))
    rows = cats["near_2T"] = []
    for _ in range(400):
        T, _, dV, mu, gL, gR = _random_device(rng)
        dT = sign_flip() * float(2 * T * (1 - 10.0 ** rng.uniform(-15, -7)))
        x = float(rng.normal(0.0, 10.0 ** rng.uniform(0, 2.8)))
        rows.append((_level_at(rng, x, T, dT, dV, mu), T, dT, dV, mu, gL, gR))
    rows = cats["bias"] = []
    for _ in range(400):
        T, dT, _, mu, gL, gR = _random_device(rng)
        dV = sign_flip() * float(T * 10.0 ** rng.uniform(0, 3))
        # levels between, on either side of and far from the two chemical potentials
        eps = float(mu + dV * rng.uniform(-0.75, 0.75) + T * rng.normal(0.0, 5.0))
        rows.append((eps, T, dT, dV, mu, gL, gR))
    rows = cats["rates"] = []
    for _ in range(400):
        T, dT, dV, mu, _, _ = _random_device(rng)
        gL = float(10.0 ** rng.uniform(-3, 3))
        gR = float(10.0 ** rng.uniform(-3, 3))
        if rng.random() < 0.25:                 # the extreme ratio 1e6, either way round
            gL, gR = (1e-3, 1e3) if rng.random() < 0.5 else (1e3, 1e-3)
        x = float(rng.normal(0.0, 10.0 ** rng.uniform(0, 2.8)))
        rows.append((_level_at(rng, x, T, dT, dV, mu), T, dT, dV, mu, gL, gR))
    rows = cats["weak_forces"] = []
    rows.append((-25.27, 0.0364, -4.1e-14, -2.0e-14, 0.0, 0.001, 0.001))
    for _ in range(400):
        T = float(10.0 ** rng.uniform(-3, 2))
        dT = float(T * sign_flip() * 10.0 ** rng.uniform(-15, -8)) if rng.random() < 0.8 \
            else 0.0
        dV = float(T * sign_flip() * 10.0 ** rng.uniform(-15, -8)) if rng.random() < 0.8 \
            else 0.0
        mu = float(rng.normal(0.0, 1.0))
        x = sign_flip() * float(rng.uniform(600.0, 745.0))
        g = float(10.0 ** rng.uniform(-3, 3))
        rows.append((float(mu + x * T), T, dT, dV, mu, g, float(10.0 ** rng.uniform(-3, 3))))
    # exactly on eps_r = mu - T dV / dT: dyadic inputs, so eps_r is a double
    rows = cats["on_eps_r"] = []
    for _ in range(120):
        T = float(rng.integers(1, 64)) / 8
        # dT = T 2**-j or 1.5 T, dV a multiple of 3/16: T dV / dT is dyadic
        dT = sign_flip() * T * (1.5 if rng.random() < 0.3 else float(2.0 ** -rng.integers(0, 5)))
        dV = 3.0 * float(rng.integers(-64, 65)) / 16
        mu = float(rng.integers(-32, 33)) / 4
        g = (float(10.0 ** rng.uniform(-3, 3)), float(10.0 ** rng.uniform(-3, 3)))
        er = mu - T * dV / dT
        F = Fraction
        assert (F(er) - F(mu)) * F(dT) + F(T) * F(dV) == 0, "eps_r is not a double here"
        for eps in _neighbours(er):
            rows.append((eps, T, dT, dV, mu, *g))
    for which, cat in ((+1, "on_mu_L"), (-1, "on_mu_R")):
        rows = cats[cat] = []
        for _ in range(120):
            T, dT, dV, mu, gL, gR = _random_device(rng)
            dV = float(np.round(dV * 64) / 64)  # mu +- dV/2 exact for most draws
            mu = float(np.round(mu * 64) / 64)
            mu_v = mu + which * dV / 2
            assert Fraction(mu_v) == Fraction(mu) + which * Fraction(dV) / 2, "mu_v inexact"
            for eps in _neighbours(mu_v):
                rows.append((eps, T, dT, dV, mu, gL, gR))
    return cats


def _stored(v: mp.mpf) -> float:
    """The double written for a true value: nearest, but +-5e-324 for a nonzero underflow."""
    f = float(v)
    return math.copysign(TINY, v) if f == 0.0 and v != 0 else f + 0.0


def main(out: Path = OUT) -> int:
    """Write the table to ``out``; return the number of rows."""
    out_rows = []
    seen = set()
    kept = dict.fromkeys(EXPECTED_ROWS, 0)
    candidates = [("core", r) for r in candidate_rows()]
    for cat, rows in corner_rows().items():
        candidates += [(cat, r) for r in rows]
    for cat, values in candidates:
        row = dict(zip(INPUTS, (float(v) for v in values), strict=True))
        key = tuple(row.values())
        if key in seen:
            continue
        if cat == "core":
            if not keep(row):
                continue
        elif not _valid(row):
            continue
        ref = reference(**row)
        if cat == "core":
            floats = {k: float(v) for k, v in ref.items()}
            if any(not math.isfinite(v) or (v != 0 and abs(v) < SMALLEST_NORMAL)
                   for v in floats.values()):
                continue
        else:
            floats = {k: (float(v) if k == "p1" else _stored(v)) for k, v in ref.items()}
            if not all(math.isfinite(v) for v in floats.values()):
                continue
        seen.add(key)
        kept[cat] += 1
        regime, machine = labels(*(row[k] for k in INPUTS[:5]))
        out_rows.append({**row, **floats, "regime": regime, "machine": machine,
                         "category": cat})
    if kept != EXPECTED_ROWS:
        raise AssertionError(f"rows kept per category changed: {kept}, expected "
                             f"{EXPECTED_ROWS}")
    with Path(out).open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(INPUTS + OUTPUTS + LABELS + ("category",))
        for r in out_rows:
            writer.writerow([repr(r[k]) for k in INPUTS + OUTPUTS]
                            + [r[k] for k in (*LABELS, "category")])
    return len(out_rows)


if __name__ == "__main__":
    print(f"wrote {main()} rows to {OUT}")
