"""Zero-frequency noise from full counting statistics (phasemap.physics.fcs, .noise).

Oracles: the single level's closed form evaluated with mpmath at 60 digits from the exact float
inputs; for 3- and 4-state generators the second derivative of the leading eigenvalue of the
tilted generator L(s), computed with mpmath (60 digits, mpmath's own high-precision
differentiation of the eigenvalue: an independent route from the Drazin-inverse formula).
Invariants: the thermodynamic uncertainty relation Q = s S / J**2 >= 2 for every Markov model
built here, and Q >= (A/2) coth(A/4) for the single level (one cycle of affinity A).
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasemap.models import get_model
from phasemap.physics import fcs, pauli
from phasemap.physics.noise import (
    fano,
    fluctuation_outputs,
    single_level_noise,
    tur,
    tur_bound_unicycle,
)

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

DPS = 60


# --- helpers ----------------------------------------------------------------------------

def _fermi(x):
    """f(x) and 1 - f(x) to full relative precision (numpy)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, e / (1 + e), 1 / (1 + e)), np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def mp_single_level_noise(eps, T, dT, dV, mu, gL, gR):
    """The closed form S = g[fL(1-fR) + fR(1-fL)] - 2 g^2 (fL-fR)^2/Gamma at 60 significant
    digits: the working precision grows with |x_v| so that 1 - f and fL - fR, formed by
    plain subtraction, keep 60 digits even where f is within e^-700 of 1."""
    T_min = min(float(T) + float(dT) / 2, float(T) - float(dT) / 2)
    x_max = (abs(float(eps) - float(mu)) + abs(float(dV))) / T_min
    with mp.workdps(DPS + int(x_max / 2.3) + 20):
        eps, T, dT, dV, mu, gL, gR = (mp.mpf(float(v)) for v in (eps, T, dT, dV, mu, gL, gR))
        TL, TR = T + dT / 2, T - dT / 2
        fL = 1 / (1 + mp.exp((eps - mu - dV / 2) / TL))
        fR = 1 / (1 + mp.exp((eps - mu + dV / 2) / TR))
        G = gL + gR
        g = gL * gR / G
        return g * (fL * (1 - fR) + fR * (1 - fL)) - 2 * g**2 * (fL - fR) ** 2 / G


def lead_rates(E, ii, jj, gamma, mus, temps):
    """Rates obeying local detailed balance: W_in = g f_v(dE), W_out = g (1 - f_v(dE))."""
    dE = E[jj] - E[ii]
    x = (dE[None, :] - mus[:, None]) / temps[:, None]
    f, fbar = _fermi(x)
    return gamma * f, gamma * fbar, x


def mp_cumulants(W_in, W_out, ii, jj, n, lead=0, weight=None):
    """Mean and variance rate of the counted quantity from the leading eigenvalue of L(s),
    at 60 digits (rates taken as the exact float values)."""
    W_in, W_out = np.asarray(W_in), np.asarray(W_out)
    w = np.ones(len(ii)) if weight is None else np.asarray(weight)
    with mp.workdps(DPS):
        def lam(s):
            L = mp.matrix(n, n)
            for k, (i, j) in enumerate(zip(ii, jj, strict=True)):
                for v in range(W_in.shape[0]):
                    a, b = mp.mpf(float(W_in[v, k])), mp.mpf(float(W_out[v, k]))
                    tilt = mp.exp(s * mp.mpf(float(w[k]))) if v == lead else 1
                    L[j, i] += a * tilt
                    L[i, j] += b / tilt
                    L[i, i] -= a
                    L[j, j] -= b
            ev = mp.eig(L, left=False, right=False)
            return max(ev, key=lambda z: mp.re(z)).real
        return mp.diff(lam, 0, 1), mp.diff(lam, 0, 2)


def rel(a, b):
    return abs(float((mp.mpf(float(a)) - b) / b))


# --- the single level against its closed form -------------------------------------------

def _random_single_points(n, seed):
    rng = np.random.default_rng(seed)
    T = rng.uniform(0.2, 20.0, n)
    return {"eps": rng.uniform(-60, 60, n), "T": T, "dT": rng.uniform(-1.9, 1.9, n) * T,
            "dV": rng.uniform(-40, 40, n), "mu": rng.uniform(-10, 10, n),
            "gamma_L": 10 ** rng.uniform(-3, 3, n), "gamma_R": 10 ** rng.uniform(-3, 3, n)}


def _single_level_rates(eps, T, dT, dV, mu, gamma_L, gamma_R):
    E = np.array([0.0, eps])
    mus = np.array([mu + dV / 2, mu - dV / 2])
    temps = np.array([T + dT / 2, T - dT / 2])
    gamma = np.array([[gamma_L], [gamma_R]])
    return lead_rates(E, np.array([0]), np.array([1]), gamma, mus, temps)


def test_single_level_closed_form_against_60_digits():
    pts = _random_single_points(300, seed=20261201)
    S = single_level_noise(**pts)
    worst = max(rel(S[k], mp_single_level_noise(*(pts[n][k] for n in pts)))
                for k in range(S.size))
    assert worst <= 1e-10
    assert (S > 0).all()


def test_single_level_closed_form_in_the_tails_stays_positive_and_accurate():
    # far tails: every f or 1 - f tiny; the plain formula would subtract equal numbers
    eps = np.array([-600.0, 650.0, -40.0, 1e-3, 300.0])
    T = np.array([1.0, 1.0, 1.0, 1.0, 0.5])
    dT = np.array([0.5, -0.3, 0.5, 0.0, 0.9])
    dV = np.array([0.0, 2.0, 0.0, 0.0, -1.0])
    S = single_level_noise(eps, T, dT, dV, 0.0, 2.0, 3.0)
    for k in range(eps.size):
        assert rel(S[k], mp_single_level_noise(eps[k], T[k], dT[k], dV[k], 0, 2, 3)) <= 1e-12


def test_fcs_single_level_against_60_digits():
    pts = _random_single_points(60, seed=7)
    worst = 0.0
    for k in range(60):
        args = {n: pts[n][k] for n in pts}
        W_in, W_out, _ = _single_level_rates(**args)
        p = fcs.stationary(W_in, W_out, [0], [1], 2)
        mean, S = fcs.mean_and_noise(W_in, W_out, [0], [1], p)
        ref = mp_single_level_noise(*args.values())
        worst = max(worst, rel(S, ref))
        # counted at the lead with the smaller gross flow: no digits lost to asymmetry
        assert rel(fcs.particle_noise(W_in, W_out, [0], [1], p), ref) <= 1e-13
        J = get_model("single_level")(**args)["J_L"]
        gross = W_in[0, 0] * p[0] + W_out[0, 0] * p[1]  # J is a difference of these flows
        assert abs(mean - J) <= 1e-13 * gross
    assert worst <= 1e-10


def test_single_level_heat_noise_is_the_particle_noise_times_the_heat_per_electron_squared():
    """Every electron through lead L carries the heat eps - mu_L: S_Q = (eps - mu_L)^2 S_J."""
    pts = _random_single_points(20, seed=8)
    for k in range(20):
        args = {n: pts[n][k] for n in pts}
        W_in, W_out, _ = _single_level_rates(**args)
        p = fcs.stationary(W_in, W_out, [0], [1], 2)
        q = args["eps"] - (args["mu"] + args["dV"] / 2)
        SQ = fcs.noise(W_in, W_out, [0], [1], p, weight=[q])
        SJ = fcs.noise(W_in, W_out, [0], [1], p)
        assert SQ == pytest.approx(q * q * SJ, rel=1e-10)  # both counted at L (see above)


def test_fluctuation_outputs():
    out = fluctuation_outputs([2.0, 1.0, 3.0], [1.0, 0.0, -0.5], [1.5, 0.0, 0.25])
    assert out["fano"][0] == 2.0 and np.isnan(out["fano"][1]) and out["fano"][2] == 6.0
    assert out["tur"][0] == 3.0 and np.isnan(out["tur"][1]) and out["tur"][2] == 3.0


def test_noise_of_the_anderson_dot_at_U_zero_doubles_the_single_level():
    """Spin-degenerate level at U = 0: two independent channels, so J and S are exactly
    twice the single level's (physics-beyond section 1), whatever the rates."""
    rng = np.random.default_rng(21)
    n = 40
    eps, T = rng.uniform(-5, 5, n), rng.uniform(0.3, 3, n)
    dT, dV = rng.uniform(-1.5, 1.5, n) * T, rng.uniform(-4, 4, n)
    gL, gR = 10 ** rng.uniform(-1, 1, n), 10 ** rng.uniform(-1, 1, n)
    energies = np.stack([0 * eps, eps, eps, 2 * eps], axis=-1)   # 0, up, down, 2 (U = 0)
    gamma = np.zeros((n, 2, 4, 4))
    for i, j in ((0, 1), (0, 2), (1, 3), (2, 3)):
        gamma[:, 0, i, j], gamma[:, 1, i, j] = gL, gR
    mu = np.stack([dV / 2, -dV / 2], axis=-1)
    temps = np.stack([T + dT / 2, T - dT / 2], axis=-1)
    res = pauli.solve(energies, [0, 1, 1, 2], gamma, mu, temps)  # the engine's rates
    W_in, W_out, ii, jj = res.W_in, res.W_out, res.ii, res.jj
    heat = (energies[:, jj] - energies[:, ii])[:, None, :] - mu[:, :, None]
    p = fcs.stationary(W_in, W_out, ii, jj, 4)
    np.testing.assert_allclose(p, res.p, rtol=1e-12, atol=1e-300)
    J, S = fcs.mean_and_noise(W_in, W_out, ii, jj, p)
    one = get_model("single_level")(eps=eps, T=T, dT=dT, dV=dV, mu=0.0, gamma_L=gL,
                                    gamma_R=gR)
    np.testing.assert_allclose(J, 2 * one["J_L"], rtol=1e-10)
    np.testing.assert_allclose(S, 2 * single_level_noise(eps, T, dT, dV, 0.0, gL, gR),
                               rtol=1e-10)
    SQ = fcs.noise(W_in, W_out, ii, jj, p, weight=heat[:, 0, :])
    np.testing.assert_allclose(SQ, 2 * (eps - dV / 2) ** 2 * single_level_noise(
        eps, T, dT, dV, 0.0, gL, gR), rtol=1e-10)


def test_fcs_batched_equals_pointwise():
    pts = _random_single_points(8, seed=3)
    W = [_single_level_rates(**{n: pts[n][k] for n in pts}) for k in range(8)]
    W_in = np.stack([w[0] for w in W]).reshape(2, 4, 2, 1)
    W_out = np.stack([w[1] for w in W]).reshape(2, 4, 2, 1)
    p = fcs.stationary(W_in, W_out, [0], [1], 2)
    S = fcs.noise(W_in, W_out, [0], [1], p)
    assert S.shape == (2, 4)
    for k in range(8):
        pk = fcs.stationary(W[k][0], W[k][1], [0], [1], 2)
        assert S.reshape(-1)[k] == pytest.approx(fcs.noise(W[k][0], W[k][1], [0], [1], pk),
                                                 rel=1e-14)


# --- 3- and 4-state generators against the eigenvalue of L(s) ----------------------------

TWO = (np.array([0]), np.array([1]))                        # the single level
THREE = (np.array([0, 0]), np.array([1, 2]))                # empty, level a, level b (U -> inf)
FOUR = (np.array([0, 0, 1, 2]), np.array([1, 2, 3, 3]))     # 0, up, down, 2 (Anderson-like)


def _random_model(kind, rng):
    ii, jj = {2: TWO, 3: THREE, 4: FOUR}[kind]
    n = kind
    if kind == 2:
        E = np.array([0.0, rng.uniform(-3, 3)])
    elif kind == 3:
        E = np.array([0.0, rng.uniform(-3, 3), rng.uniform(-3, 3)])
    else:
        eps, U = rng.uniform(-3, 3), rng.uniform(0, 6)
        E = np.array([0.0, eps, eps + rng.uniform(-1, 1), 2 * eps + U])
    T = rng.uniform(0.3, 3.0)
    dT = rng.uniform(-1.8, 1.8) * T
    dV = rng.uniform(-4, 4)
    mus = np.array([dV / 2, -dV / 2])
    temps = np.array([T + dT / 2, T - dT / 2])
    gamma = 10 ** rng.uniform(-1, 1, (2, len(ii)))
    W_in, W_out, _ = lead_rates(E, ii, jj, gamma, mus, temps)
    heat_L = E[jj] - E[ii] - mus[0]
    return W_in, W_out, ii, jj, n, heat_L


@pytest.mark.parametrize("kind", [3, 4])
def test_fcs_against_eigenvalue_derivative(kind):
    rng = np.random.default_rng(1000 + kind)
    for _ in range(6):
        W_in, W_out, ii, jj, n, heat_L = _random_model(kind, rng)
        p = fcs.stationary(W_in, W_out, ii, jj, n)
        for lead, weight in ((0, None), (1, None), (0, heat_L)):
            mean, S = fcs.mean_and_noise(W_in, W_out, ii, jj, p, lead=lead, weight=weight)
            m_ref, s_ref = mp_cumulants(W_in, W_out, ii, jj, n, lead, weight)
            assert abs(float(mean - m_ref)) <= 1e-12 * float(abs(m_ref) + s_ref)
            assert rel(S, s_ref) <= 1e-10


def test_particle_current_is_conserved_and_noise_is_lead_independent():
    """Two leads: J_L = -J_R and, at zero frequency, S_LL = S_RR (charge conservation)."""
    rng = np.random.default_rng(5)
    W_in, W_out, ii, jj, n, _ = _random_model(4, rng)
    p = fcs.stationary(W_in, W_out, ii, jj, n)
    mL, SL = fcs.mean_and_noise(W_in, W_out, ii, jj, p, lead=0)
    mR, SR = fcs.mean_and_noise(W_in, W_out, ii, jj, p, lead=1)
    assert mL == pytest.approx(-mR, rel=1e-12)
    assert SL == pytest.approx(SR, rel=1e-12)


def test_bad_lead_is_rejected():
    W_in, W_out, _ = _single_level_rates(0.0, 1.0, 0.5, 0.0, 0.0, 1.0, 1.0)
    p = fcs.stationary(W_in, W_out, [0], [1], 2)
    with pytest.raises(ValueError, match="lead=2"):
        fcs.noise(W_in, W_out, [0], [1], p, lead=2)


# --- TUR --------------------------------------------------------------------------------

def _entropy_production(W_in, W_out, ii, jj, p):
    """s = sum over leads and transitions of (F+ - F-) ln(F+/F-), each term >= 0."""
    Fp = W_in * p[..., None, ii]
    Fm = W_out * p[..., None, jj]
    return float(((Fp - Fm) * (np.log(Fp) - np.log(Fm))).sum())


@settings(max_examples=60)
@given(st.sampled_from([2, 3, 4]), st.integers(0, 2**32 - 1))
def test_tur_at_least_two_for_markov_models(kind, seed):
    W_in, W_out, ii, jj, n, _ = _random_model(kind, np.random.default_rng(seed))
    p = fcs.stationary(W_in, W_out, ii, jj, n)
    J, S = fcs.mean_and_noise(W_in, W_out, ii, jj, p)
    flows = float((W_in * p[None, ii]).sum())
    if abs(J) < 1e-6 * flows:  # current a rounding residue of the flows: no ratio to test
        return
    s = _entropy_production(W_in, W_out, ii, jj, p)
    assert tur(s, S, J) >= 2.0 * (1 - 1e-9)


@settings(max_examples=100)
@given(st.floats(-50, 50), st.floats(0.1, 20), st.floats(-1.95, 1.95), st.floats(-30, 30),
       st.floats(-3, 3), st.floats(-2, 2))
def test_tur_single_level_unicycle_bound(eps, T, dT_rel, dV, log_gL, log_gR):
    args = {"eps": eps, "T": T, "dT": dT_rel * T, "dV": dV, "mu": 0.0,
            "gamma_L": 10.0**log_gL, "gamma_R": 10.0**log_gR}
    out = get_model("single_level")(**args)
    J, s = out["J_L"], out["s"]
    S = single_level_noise(**args)
    Q = tur(s, S, J)
    if abs(J) < 2.3e-308 or s < 2.3e-308:  # J = 0 (s = 0 too), or J or s underflowed
        assert np.isnan(Q)
        return
    A = s / abs(J)      # = |x_R - x_L|, exact ratio of the model's outputs
    assert Q >= tur_bound_unicycle(A) * (1 - 1e-12)
    assert Q >= 2.0 * (1 - 1e-12)
    assert fano(S, J) == pytest.approx(S / abs(J), rel=1e-15)


def test_tur_ratio_of_the_single_level_against_60_digits():
    pts = _random_single_points(100, seed=11)
    out = get_model("single_level")(**pts)
    Q = tur(out["s"], single_level_noise(**pts), out["J_L"])
    worst = 0.0
    for k in range(100):
        args = [pts[n][k] for n in pts]
        with mp.workdps(DPS):
            eps, T, dT, dV, mu, gL, gR = (mp.mpf(float(v)) for v in args)
            TL, TR = T + dT / 2, T - dT / 2
            xL, xR = (eps - mu - dV / 2) / TL, (eps - mu + dV / 2) / TR
            J = gL * gR / (gL + gR) * (1 / (1 + mp.exp(xL)) - 1 / (1 + mp.exp(xR)))
            ref = J * (xR - xL) * mp_single_level_noise(*args) / J**2
        worst = max(worst, rel(Q[k], ref))
    assert worst <= 1e-10


def test_tur_bound_limits():
    assert tur_bound_unicycle(0.0) == 2.0
    A = np.array([1e-8, 1.0, 50.0, 800.0])
    with mp.workdps(30):
        ref = [float(mp.mpf(a) / 2 * mp.coth(mp.mpf(a) / 4)) for a in A]
    np.testing.assert_allclose(tur_bound_unicycle(A), ref, rtol=1e-14)
