"""The ``coulomb_coupled_dots`` model: 60-digit reference, invariants, the harvester.

Oracles: the independent 60-digit Pauli solution (``tests/mp_pauli.py``); energy
conservation ``P = dV J_L = Q_R - Q_L - Q_G`` and the Clausius form of ``s``; the exact
equilibrium at ``dT = dV = 0, T_G = T``; the ideal Sánchez-Büttiker harvester (Phys. Rev. B
83, 085428 (2011)), where each transferred electron takes exactly ``U`` from G, so
``Q_G = U J_L``; a current against the bias driven by G (the inverse current of Zhang & Xie,
arXiv:2109.10587) bounded by Carnot's efficiency with G as the hot source.
"""

from __future__ import annotations

import mp_pauli
import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasemap import regimes
from phasemap.models import get_model

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

ccdd = get_model("coulomb_coupled_dots")
NAMES = ("eps", "eps_G", "U", "T", "dT", "dV", "mu", "T_G", "mu_G", "gamma_L", "gamma_R",
         "gamma_G", "gamma_L_U", "gamma_R_U")
NORMAL = 2.2250738585072014e-308


def _points():
    rng = np.random.default_rng(3)
    n = 90
    T = 10.0 ** rng.uniform(-0.5, 1, n)
    cols = [rng.uniform(-20, 20, n) * T / 5, rng.uniform(-20, 20, n) * T / 5,
            rng.uniform(0, 20, n) * T / 5, T, rng.uniform(-1.9, 1.9, n) * T,
            rng.uniform(-10, 10, n), rng.uniform(-1, 1, n), 10.0 ** rng.uniform(-0.5, 1.3, n),
            rng.uniform(-2, 2, n)] + [10.0 ** rng.uniform(-2, 2, n) for _ in range(5)]
    rows = list(zip(*cols, strict=True))
    n = 30  # zero L-R bias, G hot or cold: the harvester and its reverse
    T = 10.0 ** rng.uniform(-0.5, 1, n)
    cols = [rng.uniform(-3, 3, n) * T, rng.uniform(-3, 3, n) * T, rng.uniform(0, 6, n) * T, T,
            np.zeros(n), np.zeros(n), np.zeros(n), T * 10.0 ** rng.uniform(-0.5, 0.5, n),
            rng.uniform(-1, 1, n)] + [10.0 ** rng.uniform(-2, 2, n) for _ in range(5)]
    rows += list(zip(*cols, strict=True))
    return np.array(rows)


@pytest.fixture(scope="module")
def comparison():
    pts = _points()
    got = ccdd(**{k: pts[:, i] for i, k in enumerate(NAMES)})
    refs = [mp_pauli.ccdd(*map(float, row)) for row in pts]
    return pts, got, refs


@pytest.mark.parametrize("name", ["J_L", "Q_L", "Q_R", "Q_G", "s"])
def test_against_60_digits(comparison, name):
    pts, got, refs = comparison
    worst = 0.0
    for i, ref in enumerate(refs):
        assert np.sign(got[name][i]) == int(mp.sign(ref[name])), (pts[i], name)
        if abs(ref[name]) >= NORMAL:
            worst = max(worst, float(abs((mp.mpf(got[name][i]) - ref[name]) / ref[name])))
    print(f"ccdd {name}: worst relative error {worst:.2e} over {len(refs)} points")
    assert worst <= 1e-10


def test_labels_against_60_digits(comparison):
    pts, got, refs = comparison
    from phasemap.models import ccdd_labels

    for i, (row, ref) in enumerate(zip(pts, refs, strict=True)):
        J, QL, QR = (mp_pauli.to_float(ref[k]) for k in ("J_L", "Q_L", "Q_R"))
        dT, dV = row[4], row[5]
        P = mp_pauli.to_float(mp.mpf(dV) * ref["J_L"])
        want = ccdd_labels(*(np.array(v) for v in (dT, dV, row[3], row[7], J, QL, QR, P)))
        assert (int(want[0]), int(want[1])) == (int(got["regime"][i]),
                                                int(got["machine"][i])), row


def test_energy_conservation_and_clausius(comparison):
    pts, got, _ = comparison
    T, dT, T_G = pts[:, 3], pts[:, 4], pts[:, 7]
    terms = np.abs(got["Q_R"]) + np.abs(got["Q_L"]) + np.abs(got["Q_G"])
    assert np.all(np.abs(got["P"] - (got["Q_R"] - got["Q_L"] - got["Q_G"])) <= 1e-13 * terms)
    ent = [got["Q_R"] / (T - dT / 2), -got["Q_L"] / (T + dT / 2), -got["Q_G"] / T_G]
    assert np.all(np.abs(got["s"] - sum(ent)) <= 1e-13 * sum(np.abs(e) for e in ent))
    assert np.all(got["s"] >= 0)


@given(eps=st.floats(-10, 10), eps_G=st.floats(-10, 10), U=st.floats(0, 10),
       T=st.floats(0.3, 10), mu=st.floats(-2, 2), mu_G=st.floats(-5, 5),
       rates=st.lists(st.floats(0.01, 10), min_size=5, max_size=5))
@settings(max_examples=25, deadline=None)
def test_equilibrium_is_exact(eps, eps_G, U, T, mu, mu_G, rates):
    """dT = dV = 0 and T_G = T: every cycle affinity vanishes (mu_G drops out: G exchanges
    no net charge), so every current is exactly 0 and the label is 'equilibrium'."""
    out = ccdd(eps=eps, eps_G=eps_G, U=U, T=T, dT=0.0, dV=0.0, mu=mu, T_G=T, mu_G=mu_G,
               **dict(zip(("gamma_L", "gamma_R", "gamma_G", "gamma_L_U", "gamma_R_U"), rates,
                          strict=True)))
    for name in ("J_L", "Q_L", "Q_R", "Q_G", "s", "P"):
        assert float(out[name]) == 0.0 and not np.signbit(out[name]), name
    assert int(out["regime"]) == regimes.EQUILIBRIUM and int(out["machine"]) == regimes.IDLE


def test_symmetric_rates_harvest_nothing():
    """Rates independent of the gate dot's charge: the two paths through the conductor cancel
    exactly, so a hot G drives no current (the refinement must return an exact 0)."""
    out = ccdd(eps=np.array([-1.0, 0.5, 2.0]), eps_G=-0.3, U=2.0, T=1.0, dT=0.0, dV=0.0,
               T_G=5.0, gamma_L=1.0, gamma_R=0.3, gamma_L_U=1.0, gamma_R_U=0.3, gamma_G=0.7)
    assert np.all(out["J_L"] == 0.0)
    assert np.all(out["Q_G"] > 0) and np.all(out["s"] > 0)
    assert np.all(out["regime"] == regimes.REVERSIBLE)


@pytest.mark.parametrize("T_G,sign", [(4.0, 1.0), (0.4, -1.0)])
def test_ideal_harvester_transfers_U_per_electron(T_G, sign):
    """gamma_L_U = gamma_R = 0 (here 1e-12 of the others): an electron enters from L only
    with the gate empty (at eps), leaves to R only with it full (at eps + U); each one moves
    U from G. Hot G: J_L > 0 at zero bias; cold G: reversed."""
    U = np.array([0.5, 1.0, 2.0, 4.0])
    out = ccdd(eps=-0.5 * U, eps_G=-0.5 * U, U=U, T=1.0, dT=0.0, dV=0.0, T_G=T_G,
               gamma_L=1.0, gamma_R=1e-12, gamma_L_U=1e-12, gamma_R_U=1.0, gamma_G=1.0)
    assert np.all(np.sign(out["J_L"]) == sign)
    np.testing.assert_allclose(out["Q_G"], U * out["J_L"], rtol=1e-9)
    # the energy gained by the conductor is dissipated in the leads
    np.testing.assert_allclose(out["Q_R"] - out["Q_L"], out["Q_G"], rtol=1e-12)


def test_inverse_current_against_the_bias():
    """A hot G pushes electrons from L to R against a small bias (mu_R > mu_L, dV < 0): in
    the forward frame the current opposes the bias (absolute negative mobility) and the
    conductor delivers power (-P > 0) drawn from G's heat, within Carnot's bound."""
    dV = np.array([-0.02, -0.05, -0.1])
    T, T_G, U = 1.0, 4.0, 2.0
    out = ccdd(eps=-1.0, eps_G=-1.0, U=U, T=T, dT=0.0, dV=dV, T_G=T_G, gamma_L=1.0,
               gamma_R=1e-3, gamma_L_U=1e-3, gamma_R_U=1.0, gamma_G=1.0)
    assert np.all(out["J_L"] > 0)
    assert np.all(out["regime"] == regimes.ANM)
    assert np.all(out["machine"] == regimes.M_ENGINE)
    power = -out["P"]
    assert np.all(power > 0)
    assert np.all(power <= out["Q_G"] * (1 - T / T_G))
    # without the hot source the same device follows the bias
    cold = ccdd(eps=-1.0, eps_G=-1.0, U=U, T=T, dT=0.0, dV=dV, T_G=T, gamma_L=1.0,
                gamma_R=1e-3, gamma_L_U=1e-3, gamma_R_U=1.0, gamma_G=1.0)
    assert np.all(cold["J_L"] < 0)
