"""The resonant level (coherent, Landauer): closed forms, noise, limits and the model.

Oracles: ``tests/data/reference_resonant_level.csv``, 50-digit ``mpmath.quad`` of the
Landauer integrals (generator ``tests/data/make_resonant_reference.py``); the digamma closed
form at 50 digits; the single level (``Gamma/T -> 0``) with the first-order correction
derived in docs/model.md; invariants (energy conservation, second law, lead swap).
"""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import mpmath as mp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasemap.models import get_model
from phasemap.physics import resonant_level as rl
from phasemap.regimes import classify

DATA = Path(__file__).parent / "data" / "reference_resonant_level.csv"
INPUTS = ["eps", "T", "dT", "dV", "mu", "gamma_L", "gamma_R"]
CURRENTS = ["J_L", "Q_L", "Q_R", "P", "s"]


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return pd.read_csv(DATA)


def _inputs(df):
    return [df[c].to_numpy(dtype=np.float64) for c in INPUTS]


def test_currents_match_the_50_digit_quadrature(reference):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rl.currents(*_inputs(reference))
    for name in CURRENTS:
        ref = reference[name].to_numpy()
        got = out[name]
        assert np.array_equal(np.sign(got), np.sign(ref)), name
        rel = np.abs(got - ref) / np.abs(ref)
        assert rel.max() < 1e-12, (name, rel.max(), reference.kind[int(np.argmax(rel))])


def test_the_hard_points_are_in_the_reference(reference):
    kinds = set(reference.kind)
    assert {"near_equilibrium", "sign_change_J_L", "sign_change_Q_L", "sign_change_Q_R",
            "gamma_over_T", "dT_near_2T", "far_level", "random"} <= kinds
    # the sign-change rows really straddle a sign change, 1e-12 either side
    for name in ("J_L", "Q_L", "Q_R"):
        rows = reference[reference.kind == f"sign_change_{name}"]
        assert (rows[name] > 0).any() and (rows[name] < 0).any()


@pytest.mark.parametrize("dtype", [np.float64, np.longdouble])
def test_error_bounds_cover_the_series(reference, dtype):
    """The running bounds that decide what is certified are not optimistic, in double and
    in long double (the second pass)."""
    eps, T, dT, dV, mu, gL, gR = _inputs(reference)
    framer = rl.frame if dtype is np.float64 else rl.frame_long
    TL, TR, eL, eR, num = framer(eps, T, dT, dV, mu)
    a = (np.asarray(gL, dtype=dtype) + np.asarray(gR, dtype=dtype)) / 2
    D, err_re, err_im = rl.digamma_difference(a, TL, TR, eL, eR, dT, dV, num, dtype)
    for i in range(len(reference)):
        with mp.workdps(50):
            p = [mp.mpf(float(v[i])) for v in (eps, T, dT, dV, mu, gL, gR)]
            tl, tr = p[1] + p[2] / 2, p[1] - p[2] / 2
            el, er = p[0] - p[4] - p[3] / 2, p[0] - p[4] + p[3] / 2
            aa = (p[5] + p[6]) / 2
            exact = (mp.psi(0, mp.mpf(1) / 2 + mp.mpc(aa, -el) / (2 * mp.pi * tl))
                     - mp.psi(0, mp.mpf(1) / 2 + mp.mpc(aa, -er) / (2 * mp.pi * tr))
                     + mp.log(tl / tr))
            got = mp.mpc(mp.mpf(str(D[i].real)), mp.mpf(str(D[i].imag)))
            assert abs(got.real - exact.real) <= mp.mpf(str(err_re[i])), i
            assert abs(got.imag - exact.imag) <= mp.mpf(str(err_im[i])), i


def test_noise_matches_the_50_digit_quadrature(reference):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        S = rl.noise(*_inputs(reference))
    ref = reference["noise_J"].to_numpy()
    assert (S > 0).all()
    rel = np.abs(S - ref) / ref
    assert rel.max() < 1e-12, (rel.max(), reference.kind[int(np.argmax(rel))])


def _single(eps, T, dT, dV, mu, gL, gR):
    return get_model("single_level")(eps=eps, T=T, dT=dT, dV=dV, mu=mu, gamma_L=gL,
                                     gamma_R=gR)


@pytest.mark.parametrize("point", [(-15.0, 7.5, 5.0, 5.0, 0.0), (3.0, 1.0, -0.8, 0.4, 0.3),
                                   (0.7, 2.0, 1.0, -3.0, 0.0)])
def test_narrow_level_tends_to_the_single_level_linearly(point):
    """``J_L/K = (f_L - f_R) + a c_1 + O(a^2)`` with ``c_1`` from the trigamma function.

    ``dD/da = psi'(z_L)/(2 pi T_L) - psi'(z_R)/(2 pi T_R)`` at ``a = 0``, ``z_v = 1/2 - i x_v
    /(2 pi)`` (docs/model.md); the remainder after the linear term must shrink 4x per halving.
    """
    eps, T, dT, dV, mu = point
    TL, TR = T + dT / 2, T - dT / 2
    xL, xR = (eps - mu - dV / 2) / TL, (eps - mu + dV / 2) / TR
    with mp.workdps(30):
        c1 = float((mp.psi(1, mp.mpc(0.5, -xL / (2 * mp.pi))) / (2 * mp.pi * TL)
                    - mp.psi(1, mp.mpc(0.5, -xR / (2 * mp.pi))) / (2 * mp.pi * TR)).imag
                   / mp.pi)
    remainders, firsts = [], []
    for a in (0.01, 0.005, 0.0025, 0.00125):
        g = a  # gamma_L = gamma_R = a: Gamma = 2a, K = a/2
        K = a / 2
        J = float(rl.currents(eps, T, dT, dV, mu, g, g)["J_L"]) / K
        Jsl = float(_single(eps, T, dT, dV, mu, g, g)["J_L"]) / K
        firsts.append((J - Jsl) / a)
        remainders.append(J - Jsl - a * c1)
    assert abs(firsts[-1] - c1) < 0.02 * abs(c1) + 1e-9
    for r1, r2 in itertools.pairwise(remainders):
        assert 3.6 < r1 / r2 < 4.4, remainders


def test_narrow_level_heat_and_noise_tend_to_the_single_level():
    eps, T, dT, dV, mu = -4.0, 1.5, 0.6, 1.0, 0.2
    errs_q, errs_s = [], []
    for g in (0.02, 0.01, 0.005):
        out = rl.currents(eps, T, dT, dV, mu, g, 2 * g)
        sl = _single(eps, T, dT, dV, mu, g, 2 * g)
        errs_q.append(abs(float(out["Q_R"] / sl["Q_R"]) - 1))
        S = float(rl.noise(eps, T, dT, dV, mu, g, 2 * g))
        TL, TR = T + dT / 2, T - dT / 2
        fL = 1 / (1 + math.exp((eps - mu - dV / 2) / TL))
        fR = 1 / (1 + math.exp((eps - mu + dV / 2) / TR))
        Gam, prod = 3 * g, 2 * g * g
        S_sl = (prod / Gam) * (fL * (1 - fR) + fR * (1 - fL)) - 2 * prod**2 * (fL - fR)**2 / Gam**3
        errs_s.append(abs(S / S_sl - 1))
    for errs in (errs_q, errs_s):
        assert errs[-1] < 0.05
        assert 1.6 < errs[0] / errs[1] < 2.4 and 1.6 < errs[1] / errs[2] < 2.4, errs


finite = dict(allow_nan=False, allow_infinity=False)


@st.composite
def points(draw):
    T = draw(st.floats(0.1, 10.0, **finite))
    return (draw(st.floats(-60.0, 60.0, **finite)) * T, T,
            draw(st.floats(-1.95, 1.95, **finite)) * T, draw(st.floats(-20.0, 20.0, **finite)) * T,
            draw(st.floats(-3.0, 3.0, **finite)), 10 ** draw(st.floats(-3.0, 2.0, **finite)),
            10 ** draw(st.floats(-3.0, 2.0, **finite)))


@settings(max_examples=40, deadline=None)
@given(points())
def test_invariants(p):
    eps, T, dT, dV, mu, gL, gR = p
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rl.currents(*p)
        mirror = rl.currents(eps, T, -dT, -dV, mu, gR, gL)
        S, S_mirror = rl.noise(*p), rl.noise(eps, T, -dT, -dV, mu, gR, gL)
    J, QL, QR, P, s = (float(out[k]) for k in CURRENTS)
    assert P == dV * J                                         # P = dV J_L, sign exact
    assert abs((QR - QL) - P) <= 1e-12 * (abs(QL) + abs(QR))   # energy conservation
    assert s >= 0.0                                            # second law
    if abs(dT) + abs(dV) > 1e-140 * T:  # s is second order in the forces: below, it underflows
        assert s > 0.0
    assert abs(s - (QR / (T - dT / 2) - QL / (T + dT / 2))) <= 1e-11 * (
        abs(QR) / (T - dT / 2) + abs(QL) / (T + dT / 2))
    # lead swap: J -> -J, Q_L -> -Q_R, Q_R -> -Q_L, s and the noise unchanged
    assert np.sign(mirror["J_L"]) == -np.sign(J)
    assert abs(float(mirror["J_L"]) + J) <= 1e-12 * abs(J)
    assert abs(float(mirror["Q_L"]) + QR) <= 1e-12 * abs(QR)
    assert abs(float(mirror["Q_R"]) + QL) <= 1e-12 * abs(QL)
    assert abs(float(S_mirror) - float(S)) <= 1e-12 * float(S)
    assert float(S) > 0.0
    for v in out.values():
        assert not (v == 0.0 and np.signbit(v))


def test_exact_zeros_are_positive_zeros_and_need_no_fallback():
    out = rl.currents([0.0, 3.0, 0.0], 1.0, [0.0, 0.0, 0.7], [0.0, 0.0, 0.0], 0.0, 2.0, 2.0)
    # equilibrium (first two) and the particle-hole symmetric point eps = mu, dV = 0
    assert np.array_equal(out["J_L"], [0.0, 0.0, 0.0])
    assert not np.signbit(out["J_L"]).any() and not np.signbit(out["P"]).any()
    assert out["s"][2] > 0 and out["Q_L"][2] > 0 and out["Q_R"][2] == out["Q_L"][2]
    assert np.array_equal(out["s"][:2], [0.0, 0.0])


def test_model_outputs_and_labels():
    m = get_model("resonant_level")
    assert m.outputs[:10] == ("J_L", "Q_L", "Q_R", "P", "s", "noise_J", "fano", "tur", "regime",
                              "machine")
    assert {"power", "eta", "cop", "merit_flag"} <= set(m.outputs)  # figures of merit
    eps = np.array([-15.0, -8.0, 0.0, 5.0, 15.0])
    out = m(eps=eps, T=7.5, dT=5.0, dV=5.0)
    direct = rl.currents(eps, 7.5, 5.0, 5.0, 0.0, 2.0, 2.0)
    for k in CURRENTS:
        assert np.array_equal(out[k], direct[k])
    assert np.array_equal(out["noise_J"], rl.noise(eps, 7.5, 5.0, 5.0, 0.0, 2.0, 2.0))
    np.testing.assert_allclose(out["fano"], out["noise_J"] / np.abs(out["J_L"]), rtol=1e-15)
    np.testing.assert_allclose(out["tur"], out["s"] * out["noise_J"] / out["J_L"] ** 2,
                               rtol=1e-14)
    reg, mach = classify(5.0, 5.0, out["J_L"], out["Q_L"], out["Q_R"], out["P"])
    assert np.array_equal(out["regime"], reg) and np.array_equal(out["machine"], mach)
    # eps = -15 is below the broadened reversible level (~ -8.72): ANM, as in the paper's
    # Fig. 8 for the single level; eps = -8 is already above it (conventional: single level
    # would still say RHT there)
    from phasemap.regimes import REGIME_LABELS
    labels = [REGIME_LABELS[c] for c in out["regime"]]
    assert labels[0] == "absolute_negative_mobility"
    assert labels[1] == "conventional"
    # where J_L = 0 the ratios are undefined, not infinite
    eq = m(eps=1.0, T=1.0, dT=0.0, dV=0.0)
    assert np.isnan(eq["fano"]) and np.isnan(eq["tur"]) and eq["noise_J"] > 0


def test_evaluate_returns_a_labelled_dataset():
    import phasemap

    ds = phasemap.evaluate(model="resonant_level", eps=[-15, 0, 15], T=7.5, dT=5, dV=5)
    for name in ("J_L", "Q_L", "Q_R", "P", "s", "noise_J", "fano", "tur", "regime", "machine"):
        assert name in ds
    assert ds["noise_J"].attrs["units"] == "gamma0"
    assert ds["regime"].attrs["flag_meanings"].split()[3] == "absolute_negative_mobility"
    assert int(ds["regime"][0]) == 3


def test_coherent_transport_violates_the_tur_somewhere():
    """Q = s S / J^2 >= 2 holds for the Markov models, not here (docs/model.md gives the map)."""
    out = get_model("resonant_level")(eps=0.0, T=1.0, dT=0.0, dV=2.5, gamma_L=5.0,
                                      gamma_R=5.0)
    assert float(out["tur"]) < 2.0
    # and the narrow level keeps it, like the sequential single level
    narrow = get_model("resonant_level")(eps=0.0, T=1.0, dT=0.0, dV=2.5, gamma_L=0.01,
                                         gamma_R=0.01)
    assert float(narrow["tur"]) > 2.0


def test_bad_input_names_the_parameter():
    import phasemap
    from phasemap.errors import ParameterError

    with pytest.raises(ParameterError) as info:
        phasemap.evaluate(model="resonant_level", eps=0.0, T=1.0, dT=3.0, dV=0.0)
    assert "dT" in info.value.param and "2 T" in info.value.allowed


def test_a_current_that_cancels_below_100_digits_keeps_its_sign():
    """A narrow level far above the Fermi edges at a bias of 1e-131 T: the digamma
    difference is exactly 0 at 30, 50 and 100 digits and 1.3e-142 from 200 on. Agreeing
    zeros at low precision must not be taken for the answer."""
    out = rl.currents(180.0, 5.0, 0.0, 2.6621057396774733e-131, 0.0, 0.001, 0.001)
    assert float(out["J_L"]) == pytest.approx(1.3178186401858597e-142, rel=1e-12)
    assert float(out["s"]) > 0.0 and float(out["P"]) > 0.0
