"""The ``pauli`` model against an independent 60-digit Pauli solution (``tests/mp_pauli.py``).

Points: random, near equilibrium, on the reversible level eps_r = mu - T dV/dT, deep in the
Fermi tails (|x| up to 700, and beyond), and extreme rate ratios. Contract (issue 13, §2):
identical labels everywhere; relative error <= 1e-10 on J_L, Q_L, Q_R, s wherever |x| <= 700
and the true value is a normal double.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

import mp_pauli
from phasemap.models import get_model

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

NORMAL = 2.2250738585072014e-308


def _points(seed=20261201):
    rng = np.random.default_rng(seed)
    rows = []

    def rates(n, spread=3.0):
        return 10.0 ** rng.uniform(-spread, spread, n), 10.0 ** rng.uniform(-spread, spread, n)

    n = 120  # random
    T = 10.0 ** rng.uniform(-1, 1, n)
    gL, gR = rates(n)
    rows += list(zip(rng.uniform(-40, 40, n) * T, T, rng.uniform(-1.98, 1.98, n) * T,
                     rng.uniform(-20, 20, n) * T, rng.uniform(-5, 5, n), gL, gR, strict=True))
    n = 60  # near equilibrium
    T = 10.0 ** rng.uniform(-1, 1, n)
    gL, gR = rates(n)
    small = 10.0 ** rng.uniform(-14, -6, (2, n)) * rng.choice([-1.0, 1.0], (2, n)) * T
    rows += list(zip(rng.uniform(-10, 10, n) * T, T, small[0], small[1], rng.uniform(-1, 1, n),
                     gL, gR, strict=True))
    n = 60  # on eps_r (rounded to a double: the exact value is a hair off the root)
    T = 10.0 ** rng.uniform(-1, 1, n)
    dT = rng.uniform(-1.9, 1.9, n) * T
    dV = rng.uniform(-5, 5, n) * T
    mu = rng.uniform(-1, 1, n)
    gL, gR = rates(n)
    rows += list(zip(mu - T * dV / dT, T, dT, dV, mu, gL, gR, strict=True))
    n = 60  # deep tails
    T = 10.0 ** rng.uniform(-1, 1, n)
    x = rng.uniform(200, 760, n) * rng.choice([-1.0, 1.0], n)
    dT = rng.uniform(-0.002, 0.002, n) * T
    dV = rng.uniform(-0.5, 0.5, n) * T
    gL, gR = rates(n, 1.0)
    rows += list(zip(x * T, T, dT, dV, np.zeros(n), gL, gR, strict=True))
    n = 40  # extreme rate ratios, up to 1e6
    T = 10.0 ** rng.uniform(-1, 1, n)
    big = 10.0 ** rng.uniform(2.5, 3, n)
    small_rate = big * 10.0 ** -rng.uniform(5, 6, n)
    swap = rng.random(n) < 0.5
    rows += list(zip(rng.uniform(-30, 30, n) * T, T, rng.uniform(-1.9, 1.9, n) * T,
                     rng.uniform(-10, 10, n) * T, np.zeros(n), np.where(swap, big, small_rate),
                     np.where(swap, small_rate, big), strict=True))
    return np.array(rows)


NAMES = ("eps", "T", "dT", "dV", "mu", "gamma_L", "gamma_R")


@pytest.fixture(scope="module")
def comparison():
    pts = _points()
    got = get_model("pauli")(**{k: pts[:, i] for i, k in enumerate(NAMES)})
    refs = [mp_pauli.single_dot(*map(float, row)) for row in pts]
    return pts, got, refs


def test_labels_identical_to_the_reference(comparison):
    pts, got, refs = comparison
    bad = []
    for i, (row, ref) in enumerate(zip(pts, refs, strict=True)):
        vals = [mp_pauli.to_float(ref[k]) for k in ("J_L", "Q_L", "Q_R")]
        want = mp_pauli.labels(row[2], row[3], *vals)
        have = (int(got["regime"][i]), int(got["machine"][i]))
        if want != have:
            bad.append((tuple(row), want, have))
    assert not bad, bad[:5]
    # the sets exercise every sign: both signs of J_L among non-equilibrium points
    assert (got["J_L"] > 0).sum() > 50 and (got["J_L"] < 0).sum() > 50


@pytest.mark.parametrize("name", ["J_L", "Q_L", "Q_R", "s"])
def test_relative_error_against_60_digits(comparison, name):
    pts, got, refs = comparison
    worst = 0.0
    checked = 0
    for i, ref in enumerate(refs):
        true = ref[name]
        if ref["xmax"] > 700 or abs(true) < NORMAL:
            continue
        checked += 1
        worst = max(worst, float(abs((mp.mpf(got[name][i]) - true) / true)))
    print(f"{name}: worst relative error {worst:.2e} over {checked} points")
    assert checked > 300
    assert worst <= 1e-10, worst


def test_signs_exact_and_no_negative_zero(comparison):
    pts, got, refs = comparison
    for name in ("J_L", "Q_L", "Q_R", "s", "P"):
        assert not np.any(np.signbit(got[name]) & (got[name] == 0.0)), name
    for i, ref in enumerate(refs):
        for name in ("J_L", "Q_L", "Q_R", "s"):
            assert np.sign(got[name][i]) == int(mp.sign(ref[name])), (pts[i], name)
    assert np.all(got["s"] >= 0.0)


def test_entropy_equals_clausius(comparison):
    pts, got, _ = comparison
    T, dT = pts[:, 1], pts[:, 2]
    TL, TR = T + dT / 2, T - dT / 2
    # s = Q_R/T_R - Q_L/T_L; the two terms may cancel, so compare against their magnitude
    clausius = got["Q_R"] / TR - got["Q_L"] / TL
    scale = np.abs(got["Q_R"] / TR) + np.abs(got["Q_L"] / TL)
    ok = np.abs(got["s"] - clausius) <= 1e-13 * scale + 1e-300
    assert ok.all()
