"""The generic Pauli master-equation engine and the ``pauli`` model.

An interacting two-orbital dot: states 0, 1a, 1b, 2 with charges 0, 1, 1, 2 and energies
0, e_a, e_b, e_a + e_b + U, coupled to three reservoirs. Invariants: normalised non-negative
probabilities, particle and energy conservation, the second law (and eq. 9 = Clausius), and
detailed balance / the grand-canonical Gibbs state at equilibrium.

The ``pauli`` model against an independent 60-digit Pauli solution (``tests/mp_pauli.py``) on
random points, near equilibrium, on the reversible level eps_r = mu - T dV/dT, deep in the
Fermi tails (|x| up to 700, and beyond) and at extreme rate ratios. Contract (issue 13, §2):
identical labels everywhere; relative error <= 1e-10 on J_L, Q_L, Q_R, s wherever |x| <= 700
and the true value is a normal double; thresholds equal to the closed forms' to 1e-9.
"""

from __future__ import annotations

import mp_pauli
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import phasemap
from phasemap.models import get_model
from phasemap.models import single_level_closed_form as single_level
from phasemap.physics import pauli

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

CHARGES = np.array([0, 1, 1, 2])
# ordered pairs (i, j) with N_j = N_i + 1
PAIRS = [(0, 1), (0, 2), (1, 3), (2, 3)]


def interacting_dot(ea, eb, U, rates, mu, T):
    """Solve the 4-state, 3-lead dot. ``rates[v]`` = (0->a, 0->b, a->2, b->2) of lead v."""
    energies = np.array([0.0, ea, eb, ea + eb + U])
    gamma = np.zeros((3, 4, 4))
    for v in range(3):
        for (i, j), g in zip(PAIRS, rates[v], strict=True):
            gamma[v, i, j] = g
    return energies, gamma, pauli.solve(energies, CHARGES, gamma, np.asarray(mu, float),
                                        np.asarray(T, float))


def flow_scale(gamma):
    """An upper bound of any single tunnelling flow sum (f <= 1, p <= 1)."""
    return float(gamma.sum())


@st.composite
def dots(draw, equilibrium=False):
    e = st.floats(-10.0, 10.0)
    ea, eb = draw(e), draw(e)
    U = draw(st.floats(0.0, 10.0))
    rates = [[draw(st.floats(0.01, 10.0)) for _ in range(4)] for _ in range(3)]
    if equilibrium:
        mu = [draw(st.floats(-5.0, 5.0))] * 3
        T = [draw(st.floats(0.3, 10.0))] * 3
    else:
        mu = [draw(st.floats(-5.0, 5.0)) for _ in range(3)]
        T = [draw(st.floats(0.3, 10.0)) for _ in range(3)]
    return ea, eb, U, rates, mu, T


@given(dot=dots())
def test_invariants_out_of_equilibrium(dot):
    *_, mu, T = dot
    energies, gamma, res = interacting_dot(*dot)
    scale = flow_scale(gamma)
    p = res.p
    assert p.shape == (4,)
    assert np.all(p >= 0.0), p
    assert p.sum() == pytest.approx(1.0, abs=1e-14)
    # particle conservation: what leaves the reservoirs enters... and leaves the dot again
    I = res.particle_current
    assert I.shape == (3,)
    assert abs(I.sum()) <= 1e-13 * scale
    # energy conservation: sum over leads of (heat + mu * particle current) = 0
    E = res.heat_current + np.asarray(mu) * I
    assert abs(E.sum()) <= 1e-13 * scale * (np.abs(energies).max() + np.abs(mu).max() + 1)
    # second law, and eq. (9) equals the Clausius form -sum_v Q_v / T_v
    s = float(res.entropy_production)
    assert s >= 0.0
    clausius = -float(np.sum(res.heat_current / np.asarray(T)))
    bound = 1e-12 * scale * (np.abs(energies).max() + np.abs(mu).max() + 1) / min(T) + 1e-300
    assert abs(s - clausius) <= bound + 1e-9 * abs(s)


def test_a_driven_dot_carries_current_and_produces_entropy():
    """Guards the invariants above against a trivial solution (all zero)."""
    _, _, res = interacting_dot(0.5, 1.5, 3.0, [[1, 2, 1, 0.5], [0.5, 1, 2, 1],
                                                    [0.2, 0.2, 0.2, 0.2]],
                                    mu=[3.0, -3.0, 0.0], T=[2.0, 1.0, 1.5])
    assert np.abs(res.particle_current).min() > 1e-3
    assert float(res.entropy_production) > 1e-3
    assert np.all(res.p > 1e-3)


@given(dot=dots(equilibrium=True))
def test_detailed_balance_at_equilibrium(dot):
    *_, mu, T = dot
    energies, gamma, res = interacting_dot(*dot)
    scale = flow_scale(gamma)
    w = np.exp(-(energies - mu[0] * CHARGES) / T[0] - np.max(-(energies - mu[0] * CHARGES)
                                                              / T[0]))
    gibbs = w / w.sum()
    np.testing.assert_allclose(res.p, gibbs, rtol=1e-9, atol=1e-15)
    assert np.all(np.abs(res.particle_current) <= 1e-13 * scale)
    assert np.all(np.abs(res.heat_current) <= 1e-13 * scale * (np.abs(energies).max() + 5))
    assert abs(float(res.entropy_production)) <= 1e-12 * scale


def test_gibbs_state_known_values():
    """Hand-computed grand-canonical weights exp(-(E_i - mu N_i)/T)/Z."""
    ea, eb, U, mu, T = 0.3, -0.2, 1.0, 0.1, 0.5
    _, _, res = interacting_dot(ea, eb, U, [[1.0, 2.0, 3.0, 4.0]] * 3, [mu] * 3, [T] * 3)
    E = np.array([0.0, ea, eb, ea + eb + U])
    w = np.exp(-(E - mu * CHARGES) / T)
    np.testing.assert_allclose(res.p, w / w.sum(), rtol=1e-12)


def test_batched_equals_point_by_point():
    rng = np.random.default_rng(3)
    shape = (4, 5)
    energies = np.zeros((*shape, 4))
    ea = rng.uniform(-5, 5, shape)
    eb = rng.uniform(-5, 5, shape)
    U = rng.uniform(0, 5, shape)
    energies[..., 1], energies[..., 2], energies[..., 3] = ea, eb, ea + eb + U
    gamma = np.zeros((*shape, 3, 4, 4))
    for i, j in PAIRS:
        gamma[..., i, j] = rng.uniform(0.1, 3, (*shape, 3))
    mu = rng.uniform(-3, 3, (*shape, 3))
    T = rng.uniform(0.5, 4, (*shape, 3))
    res = pauli.solve(energies, CHARGES, gamma, mu, T)
    assert res.p.shape == (*shape, 4)
    assert res.particle_current.shape == (*shape, 3)
    assert res.entropy_production.shape == shape
    for idx in np.ndindex(shape):
        one = pauli.solve(energies[idx], CHARGES, gamma[idx], mu[idx], T[idx])
        np.testing.assert_allclose(res.p[idx], one.p, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(res.particle_current[idx], one.particle_current,
                                   rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(res.heat_current[idx], one.heat_current,
                                   rtol=1e-10, atol=1e-13)
    # shared (un-batched) gamma and charges broadcast against batched energies
    shared = pauli.solve(energies, CHARGES, gamma[0, 0], mu, T)
    assert shared.p.shape == (*shape, 4)


def test_two_state_dot_reduces_to_the_closed_form():
    eps = np.linspace(-20, 20, 41) + 0.1
    T, dT, dV, mu, gL, gR = 7.5, 5.0, 5.0, 0.3, 1.5, 2.5
    energies = np.stack([np.zeros_like(eps), eps], axis=-1)
    gamma = np.zeros((2, 2, 2))
    gamma[0, 0, 1], gamma[1, 0, 1] = gL, gR
    res = pauli.solve(energies, [0, 1], gamma, [mu + dV / 2, mu - dV / 2],
                      [T + dT / 2, T - dT / 2])
    ref = single_level(eps, T, dT, dV, mu, gL, gR)
    np.testing.assert_allclose(res.p[:, 1], ref["p1"], rtol=1e-13)
    np.testing.assert_allclose(res.particle_current[:, 0], ref["J_L"], rtol=1e-11)
    np.testing.assert_allclose(res.particle_current[:, 1], -ref["J_L"], rtol=1e-11)
    np.testing.assert_allclose(res.heat_current[:, 0], ref["Q_L"], rtol=1e-11)
    np.testing.assert_allclose(-res.heat_current[:, 1], ref["Q_R"], rtol=1e-11)
    np.testing.assert_allclose(res.entropy_production, ref["s"], rtol=1e-9)


def test_a_lead_with_zero_coupling_carries_nothing():
    _, _, res = interacting_dot(0.5, 1.0, 2.0, [[1, 1, 1, 1], [0.5, 0.7, 0.2, 0.9],
                                                [0, 0, 0, 0]],
                                mu=[2.0, -2.0, 50.0], T=[1.0, 1.0, 20.0])
    assert res.particle_current[2] == 0.0 and res.heat_current[2] == 0.0
    assert abs(res.particle_current[0] + res.particle_current[1]) <= 1e-14


def test_improbable_states_keep_relative_accuracy():
    """A state with weight 1e-25 must not come out as 0 (or negative): eq. (9) takes its
    logarithm, and 0 made the entropy production infinite."""
    ea, eb, U, mu, T = 7.0, 0.0, 10.0, 0.0, 0.3
    E, _, res = interacting_dot(ea, eb, U, [[1.0, 1.0, 1.0, 1.0]] * 3, [mu] * 3, [T] * 3)
    w = np.exp(-(E - mu * CHARGES) / T)
    gibbs = w / w.sum()
    assert gibbs[3] < 1e-24
    np.testing.assert_allclose(res.p, gibbs, rtol=1e-12)
    assert np.isfinite(res.entropy_production) and abs(res.entropy_production) < 1e-20
    # and out of equilibrium, with a nearly empty doubly occupied state
    _, _, res = interacting_dot(ea, eb, U, [[1.0, 2.0, 0.5, 1.0]] * 3, [0.5, -0.5, 0.0],
                                [0.3, 0.2, 0.25])
    assert np.all(res.p > 0) and np.isfinite(res.entropy_production)
    assert res.entropy_production > 0


def test_nearly_full_single_dot_current_is_accurate():
    """Both leads' levels deep below mu (f ~ 1 - 1e-12): the empty-dot probability ~1e-12
    must keep its relative accuracy, or J_L (a difference of flows ~p0) is off by percent."""
    eps, T, dT, dV, mu = -3.9854544321970597, 0.12899560517455125, -0.0426116756401528, \
        -1.205855481035824, -0.3789290290869424
    gL, gR = 0.9300065231005361, 0.041262343965793945
    energies = np.array([0.0, eps])
    gamma = np.zeros((2, 2, 2))
    gamma[0, 0, 1], gamma[1, 0, 1] = gL, gR
    res = pauli.solve(energies, [0, 1], gamma, [mu + dV / 2, mu - dV / 2],
                      [T + dT / 2, T - dT / 2])
    ref = single_level(eps, T, dT, dV, mu, gL, gR)
    assert 0 < res.p[0] < 1e-11
    assert res.particle_current[0] == pytest.approx(float(ref["J_L"]), rel=1e-9, abs=0)


def test_frozen_rates_do_not_produce_nan():
    """Fermi factors that underflow to exactly 0 or 1 (|x| > 745) leave a state with no way
    out; the engine must still return a normalised state, finite currents, no warnings."""
    for eps in (-1e6, 1e6, -800.0, 800.0, -540.0, 540.0, -560.0, 545.0):
        energies = np.array([0.0, eps])
        gamma = np.zeros((2, 2, 2))
        gamma[0, 0, 1], gamma[1, 0, 1] = 2.0, 2.0
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            res = pauli.solve(energies, [0, 1], gamma, [0.05, -0.05], [1.25, 0.75])
        assert res.p.sum() == pytest.approx(1.0)
        assert np.all(np.isfinite(res.p)) and np.all(res.p >= 0)
        assert np.all(np.isfinite(res.particle_current))
        assert np.isfinite(res.entropy_production) and res.entropy_production >= 0
        assert res.p[1] == pytest.approx(1.0 if eps < 0 else 0.0, abs=1e-12)


@pytest.mark.parametrize("eps", [-700.0, -712.0, -730.0, 712.0, 740.0])
def test_occupation_ratios_beyond_1e308_do_not_overflow(eps):
    """p1/p0 = e^{-x} beyond the double range (x in (-745, -709)): the back substitution
    must stay normalised instead of producing inf/inf."""
    energies = np.array([0.0, eps])
    gamma = np.zeros((2, 2, 2))
    gamma[0, 0, 1], gamma[1, 0, 1] = 2.0, 2.0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        res = pauli.solve(energies, [0, 1], gamma, [0.05, -0.05], [1.0, 1.0])
    assert np.all(np.isfinite(res.p)) and res.p.sum() == pytest.approx(1.0)
    ref = single_level(eps, 1.0, 0.0, 0.1)
    assert np.sign(res.particle_current[0]) == np.sign(ref["J_L"]) != 0
    # (the far end is subnormal: allow its absolute resolution)
    assert res.particle_current[0] == pytest.approx(float(ref["J_L"]), rel=1e-6, abs=1e-321)


# --- the pauli model against 60 digits ------------------------------------------------

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
    n = 60  # hard corners: T <= 1e-3, |dT| within 1e-7 of 2T, |dV|/T up to 1e3
    T = 10.0 ** rng.uniform(-5, -3, n)
    sgn = rng.choice([-1.0, 1.0], n)
    dT = (2.0 - 10.0 ** rng.uniform(-7, -2, n)) * T * sgn
    dV = rng.uniform(-1e3, 1e3, n) * T
    T_cold = T - np.abs(dT) / 2
    # the level within 20 T_cold of the cold lead's mu (else |x| ~ 1e9 there)
    eps = -sgn * dV / 2 + rng.uniform(-20, 20, n) * T_cold
    gL, gR = rates(n)
    rows += list(zip(eps, T, dT, dV, np.zeros(n), gL, gR, strict=True))
    n = 40  # exactly on mu_L or on mu_R (eps - mu_v = 0: that lead's x is 0)
    T = 10.0 ** rng.uniform(-1, 1, n)
    dV = rng.uniform(-5, 5, n) * T
    onL = rng.random(n) < 0.5
    gL, gR = rates(n)
    rows += list(zip(np.where(onL, dV / 2, -dV / 2), T, rng.uniform(-1.9, 1.9, n) * T, dV,
                     np.zeros(n), gL, gR, strict=True))
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
    bad = mp_pauli.label_mismatches(pts, got, refs, NAMES.index("dT"), NAMES.index("dV"))
    assert not bad, bad[:5]
    # the sets exercise every sign: both signs of J_L among non-equilibrium points
    assert (got["J_L"] > 0).sum() > 50 and (got["J_L"] < 0).sum() > 50


@pytest.mark.parametrize("name", ["J_L", "Q_L", "Q_R", "s"])
def test_relative_error_against_60_digits(comparison, name):
    _pts, got, refs = comparison
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


def _threshold_cases(seed=11, n=6):
    """(along, analytic root of J_L = 0, other parameters, bracket), mu = 0:
    J_L vanishes where (eps - mu) dT + T dV = 0 (the reversible level)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < 4 * n:
        T = rng.uniform(1, 10)
        dT = rng.uniform(0.2, 1.8) * T * rng.choice([-1.0, 1.0])
        eps, dV = rng.uniform(-20, 20), rng.uniform(-10, 10)
        cand = [("eps", -T * dV / dT, dict(T=T, dT=dT, dV=dV)),
                ("dV", -eps * dT / T, dict(eps=eps, T=T, dT=dT)),
                ("dT", -T * dV / eps, dict(eps=eps, T=T, dV=dV)),
                ("T", -eps * dT / dV, dict(eps=eps, dT=dT, dV=dV))]
        for along, root, kw in cand:
            if sum(c[0] == along for c in out) >= n:
                continue
            if along == "dT":
                if not abs(root) < 1.5 * T:
                    continue
                bracket = (max(root - 3, -1.9 * T), min(root + 2.5, 1.9 * T))
            elif along == "T":
                if not root > 0.6 * abs(dT):
                    continue
                bracket = (max(0.52 * abs(dT), 0.5 * root), 1.7 * root)
            else:
                bracket = (root - 3, root + 2.5)
            out.append((along, root, kw, bracket))
    return out


@pytest.mark.parametrize("along,root,kw,bracket", _threshold_cases())
def test_thresholds_match_the_closed_forms(along, root, kw, bracket):
    got = float(phasemap.threshold(along, "pauli", bracket=bracket, **kw))
    closed = float(phasemap.threshold(along, "single_level", bracket=bracket, **kw))
    assert abs(got - root) <= 1e-9 * max(1.0, abs(root))
    assert abs(got - closed) <= 1e-9 * max(1.0, abs(root))


def test_exact_zero_on_the_reversible_level():
    """Where (eps - mu) dT + T dV is exactly 0 in rationals (a grid point on eps_r), J_L is
    exactly 0 and the label is 'reversible', as the closed form says; next to it, exact signs.
    Fails with differences of flows, which leave rounding noise of either sign."""
    eps = np.linspace(-30, 30, 241)[:, None]
    dV = np.linspace(-30, 30, 241)[None, :]
    a = get_model("pauli")(eps=eps, T=7.5, dT=5.0, dV=dV)
    b = get_model("single_level")(eps=eps, T=7.5, dT=5.0, dV=dV)
    assert (b["J_L"] == 0).sum() > 50
    np.testing.assert_array_equal(a["J_L"] == 0, b["J_L"] == 0)
    np.testing.assert_array_equal(a["regime"], b["regime"])
    np.testing.assert_array_equal(a["machine"], b["machine"])
    np.testing.assert_array_equal(np.sign(a["Q_L"]), np.sign(b["Q_L"]))


def test_nan_input_gives_nan_without_warnings():
    out = get_model("pauli")(eps=np.array([np.nan, 1.0]), T=7.5, dT=1.0, dV=1.0)
    assert np.isnan(out["J_L"][0]) and np.isfinite(out["J_L"][1])


def test_rates_and_transitions_are_exposed():
    """The fields noise is built on: W_in/W_out per lead and transition, ii, jj, p."""
    E, gamma, res = interacting_dot(0.5, 1.5, 3.0, [[1, 2, 1, 0.5], [0.5, 1, 2, 1],
                                                    [0.2, 0.2, 0.2, 0.2]],
                                    mu=[3.0, -3.0, 0.0], T=[2.0, 1.0, 1.5])
    assert res.W_in.shape == res.W_out.shape == (3, len(res.ii))
    # the flows rebuilt from them give the engine's particle currents
    flows = res.W_in * res.p[res.ii] - res.W_out * res.p[res.jj]
    np.testing.assert_allclose(flows.sum(axis=-1), res.particle_current, rtol=1e-12,
                               atol=1e-15)
    for k, (i, j) in enumerate(zip(res.ii, res.jj, strict=True)):
        assert CHARGES[j] == CHARGES[i] + 1
        x = (E[j] - E[i] - np.array([3.0, -3.0, 0.0])) / np.array([2.0, 1.0, 1.5])
        np.testing.assert_allclose(res.W_in[:, k], gamma[:, i, j] / (1 + np.exp(x)),
                                   rtol=1e-14)


@pytest.mark.parametrize("dV,dT", [(-3.5e-255, 0.0), (1e-40, 0.0), (0.0, 3e-200), (1e-30, -2e-29)])
def test_biases_far_below_the_double_double_resolution(dV, dT):
    """mu_L - mu_R = 1e-255 next to mu = 0.3: eps - mu_L then needs three doubles, its
    double-double value cancels to exactly 0 against eps - mu_R, and the exact rational
    affinity must take over (the current was 0 instead of ~1e-256)."""
    kw = dict(eps=-3.58, T=2.26, dT=dT, dV=dV, mu=0.3, gamma_L=6.4, gamma_R=0.62)
    got = get_model("pauli")(**kw)
    ref = mp_pauli.single_dot(**kw)
    for name in ("J_L", "Q_L", "Q_R"):
        assert float(got[name]) == pytest.approx(mp_pauli.to_float(ref[name]), rel=1e-12)
    assert float(got["s"]) > 0.0
