"""The generic Pauli master-equation engine on a dot with more than two states.

An interacting two-orbital dot: states 0, 1a, 1b, 2 with charges 0, 1, 1, 2 and energies
0, e_a, e_b, e_a + e_b + U, coupled to three reservoirs. Invariants: normalised non-negative
probabilities, particle and energy conservation, the second law (and eq. 9 = Clausius), and
detailed balance / the grand-canonical Gibbs state at equilibrium.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from phasemap.physics import pauli
from phasemap.physics.single_level import single_level

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
