"""Figures of merit (phasemap.physics.merit) on the single level.

Oracle: the single level evaluated with mpmath at 60 digits from the exact float inputs, its
signs from exact rational arithmetic. Invariants: eta <= eta_C and COP <= COP_C (checked on the
uncapped quotients, so the test does not lean on the cap), eta -> eta_C at the reversible level,
flags agree with the machine lens, mirror symmetry.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath as mp
import numpy as np
import pytest
from conftest import mirror, moderate_points
from hypothesis import given, settings
from hypothesis import strategies as st

from phasemap import regimes
from phasemap.models import get_model
from phasemap.physics import merit

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

DPS = 60
FIGURES = ("power", "eta", "eta_over_carnot", "cop", "cop_over_carnot", "cop_heating",
           "cop_heating_over_carnot")


def model_merit(**params):
    out = get_model("single_level")(**params)
    T, dT = np.asarray(params["T"], float), np.asarray(params["dT"], float)
    return merit.figures_of_merit(out["P"], out["Q_L"], out["Q_R"], T + dT / 2, T - dT / 2,
                                  dT=dT), out


def mp_reference(eps, T, dT, dV, mu, gL, gR):
    """Every figure at 60 digits (NaN where it does not apply) and the flag, from exact input."""
    F = Fraction
    num = (F(eps) - F(mu)) * F(dT) + F(T) * F(dV)          # sign of J_L, exactly
    sJ = (num > 0) - (num < 0)
    TL, TR = F(T) + F(dT) / 2, F(T) - F(dT) / 2
    eL, eR = F(eps) - F(mu) - F(dV) / 2, F(eps) - F(mu) + F(dV) / 2
    sgn = lambda q: (q > 0) - (q < 0)  # noqa: E731
    sP, sQL, sQR = sJ * sgn(F(dV)), sJ * sgn(eL), sJ * sgn(eR)
    left_hot = TL >= TR
    sQh, sQc = (sQL, -sQR) if left_hot else (-sQR, sQL)
    if TL == TR:
        flag = merit.NO_DT
    elif sP != 0 and _underflows(eps, T, dT, dV, mu, gL, gR, left_hot, sP, sQc):
        flag = merit.UNDERFLOW
    elif sP < 0 and sQh > 0:
        flag = merit.ENGINE
    elif sP > 0 and sQc > 0:
        flag = merit.FRIDGE
    elif sP > 0 and sQh < 0:
        flag = merit.HEATER
    elif sP == 0:
        flag = merit.NO_WORK
    else:
        flag = merit.ACCELERATOR
    ref = dict.fromkeys(FIGURES, mp.nan)
    if flag in (merit.NO_DT, merit.NO_WORK, merit.ACCELERATOR):
        return ref, flag
    with mp.workdps(DPS + 400):
        m = {k: mp.mpf(v.numerator) / v.denominator
             for k, v in {"TL": TL, "TR": TR, "eL": eL, "eR": eR, "dV": F(dV)}.items()}
        fL = 1 / (1 + mp.exp(m["eL"] / m["TL"]))
        fR = 1 / (1 + mp.exp(m["eR"] / m["TR"]))
        J = mp.mpf(gL) * gR / (mp.mpf(gL) + gR) * (fL - fR)
        QL, QR, P = m["eL"] * J, m["eR"] * J, m["dV"] * J
        Th, Tc = (m["TL"], m["TR"]) if left_hot else (m["TR"], m["TL"])
        Qh, Qc = (QL, -QR) if left_hot else (-QR, QL)
        eta_c, cop_c, cop_hc = (Th - Tc) / Th, Tc / (Th - Tc), Th / (Th - Tc)
        if flag == merit.ENGINE:
            ref.update(power=-P, eta=-P / Qh, eta_over_carnot=-P / Qh / eta_c)
        else:
            ref.update(cop_heating=-Qh / P, cop_heating_over_carnot=-Qh / P / cop_hc)
            if flag == merit.FRIDGE:
                ref.update(power=Qc, cop=Qc / P, cop_over_carnot=Qc / P / cop_c)
            else:
                ref.update(power=-Qh)
        return {k: +v for k, v in ref.items()}, flag


def _underflows(eps, T, dT, dV, mu, gL, gR, left_hot, sP, sQc):
    """Whether |P|, |Q_h| or (refrigerators) |Q_c| is below the smallest normal double."""
    out = get_model("single_level")(eps=eps, T=T, dT=dT, dV=dV, mu=mu, gamma_L=gL, gamma_R=gR)
    Qh, Qc = (out["Q_L"], out["Q_R"]) if left_hot else (out["Q_R"], out["Q_L"])
    tiny = 2.2250738585072014e-308
    return abs(out["P"]) < tiny or abs(Qh) < tiny or (sP > 0 and sQc > 0 and abs(Qc) < tiny)


def _random_points(n, seed):
    rng = np.random.default_rng(seed)
    T = rng.uniform(0.2, 20.0, n)
    dT = rng.uniform(-1.9, 1.9, n) * T
    dT[:10] = 0.0
    return {"eps": rng.uniform(-60, 60, n), "T": T, "dT": dT, "dV": rng.uniform(-40, 40, n),
            "mu": rng.uniform(-10, 10, n), "gamma_L": 10 ** rng.uniform(-3, 3, n),
            "gamma_R": 10 ** rng.uniform(-3, 3, n)}


def test_against_60_digits_at_random_points():
    pts = _random_points(400, seed=20261201)
    got, _ = model_merit(**pts)
    worst = 0.0
    seen = set()
    for k in range(400):
        ref, flag = mp_reference(*(float(pts[n][k]) for n in pts))
        assert got["merit_flag"][k] == flag
        seen.add(flag)
        for name in FIGURES:
            if mp.isnan(ref[name]):
                assert np.isnan(got[name][k]), (name, k)
            else:
                err = abs(float((mp.mpf(float(got[name][k])) - ref[name]) / ref[name]))
                worst = max(worst, err)
    assert worst <= 1e-10
    assert {merit.ENGINE, merit.FRIDGE, merit.HEATER, merit.ACCELERATOR,
            merit.NO_DT} <= seen


def test_the_papers_fig9_engine_and_refrigerator():
    """Fig. 9 (T = 7.5, dT = 5, dV = -5): engine above eps_r = 7.5, refrigerator in (2.5, 7.5)."""
    eps = np.array([5.0, 10.0, 20.0])
    m, out = model_merit(eps=eps, T=7.5, dT=5.0, dV=-5.0, mu=0.0, gamma_L=2.0, gamma_R=2.0)
    assert m["merit_flag"].tolist() == [merit.FRIDGE, merit.ENGINE, merit.ENGINE]
    # engine: eta = -dV/(eps - mu_L) = 5/(eps + 2.5) (mu_L = -2.5); eta_C = dT/T_L = 0.5
    np.testing.assert_allclose(m["eta"][1:], 5.0 / (eps[1:] + 2.5), rtol=1e-15)
    np.testing.assert_allclose(m["eta_over_carnot"][1:], 10.0 / (eps[1:] + 2.5), rtol=1e-15)
    # refrigerator: COP = Q_c/P = -(eps - mu_R)/dV = (eps - 2.5)/5 (mu_R = 2.5);
    # COP_C = T_R/dT = 5/5 = 1
    assert m["cop"][0] == pytest.approx(0.5, rel=1e-15)
    assert m["cop_over_carnot"][0] == pytest.approx(0.5, rel=1e-15)
    assert m["power"][0] == pytest.approx(-out["Q_R"][0], rel=1e-15)
    assert np.isnan(m["cop"][1:]).all() and np.isnan(m["eta"][0])


def test_eta_reaches_carnot_at_the_reversible_level():
    T, dT, dV = 7.5, 5.0, -5.0
    eps_r = -T * dV / dT      # 7.5, paper eq. 10
    for delta in (1e-3, 1e-6, 1e-9):
        m, _ = model_merit(eps=eps_r * (1 + delta), T=T, dT=dT, dV=dV, mu=0.0,
                           gamma_L=2.0, gamma_R=2.0)
        assert m["merit_flag"] == merit.ENGINE
        assert 0 < 1 - m["eta_over_carnot"] <= 2 * delta
    # on the level itself no current flows: no machine, no figure
    m, _ = model_merit(eps=eps_r, T=T, dT=dT, dV=dV, mu=0.0, gamma_L=2.0, gamma_R=2.0)
    assert m["merit_flag"] == merit.NO_WORK and np.isnan(m["eta"])


def test_cop_reaches_carnot_at_the_reversible_level():
    T, dT, dV = 7.5, 5.0, -5.0
    eps_r = -T * dV / dT
    m, _ = model_merit(eps=eps_r * (1 - 1e-7), T=T, dT=dT, dV=dV, mu=0.0, gamma_L=2.0,
                       gamma_R=2.0)
    assert m["merit_flag"] == merit.FRIDGE
    assert 0 < 1 - m["cop_over_carnot"] <= 1e-6


@settings(max_examples=150)
@given(moderate_points())
def test_second_law_bounds(p):
    m, out = model_merit(**p)
    Q_h, Q_c, T_h, T_c, dTabs = merit.hot_cold(out["Q_L"], out["Q_R"], p["T"] + p["dT"] / 2,
                                               p["T"] - p["dT"] / 2, dT=p["dT"])
    eta_c, cop_c, _ = merit.carnot(T_h, T_c, dTabs)
    flag = int(m["merit_flag"])
    P = float(out["P"])
    if flag == merit.ENGINE:
        assert -P / Q_h <= eta_c * (1 + 1e-13)          # the uncapped quotient
        assert 0 < m["eta"] <= eta_c and 0 < m["eta_over_carnot"] <= 1
        assert m["power"] == -P > 0
    elif flag == merit.FRIDGE:
        assert Q_c / P <= cop_c * (1 + 1e-13)
        assert 0 <= m["cop_over_carnot"] <= 1 and m["power"] == Q_c > 0
        assert m["cop_heating"] == pytest.approx(1 + m["cop"], rel=1e-12)
    for name in FIGURES:
        v = m[name]
        # > 0, or +0.0 where a Carnot ratio underflows (COP_C beyond 1e308 at dT ~ 1e-308 T)
        assert np.isnan(v) or (v >= 0 and not np.signbit(v)), name


@settings(max_examples=100)
@given(moderate_points())
def test_flags_agree_with_the_machine_lens_and_its_mirror(p):
    m, out = model_merit(**p)
    flag = int(m["merit_flag"])
    _, machine = regimes.classify(p["dT"], p["dV"], out["J_L"], out["Q_L"], out["Q_R"], out["P"])
    expected = {regimes.IDLE: merit.NO_WORK, regimes.M_ENGINE: merit.ENGINE,
                regimes.CONDUCTOR: merit.NO_WORK, regimes.M_FRIDGE: merit.FRIDGE,
                regimes.HEATER: merit.HEATER, regimes.ACCELERATOR: merit.ACCELERATOR}
    if p["dT"] == 0.0:
        assert flag == merit.NO_DT
    elif flag == merit.UNDERFLOW:
        assert int(machine) in (regimes.M_ENGINE, regimes.M_FRIDGE, regimes.HEATER)
    else:
        assert flag == expected[int(machine)]
    mm, _ = model_merit(**mirror(p))
    for name in (*FIGURES, "merit_flag"):
        np.testing.assert_allclose(mm[name], m[name], rtol=1e-13)


def test_nan_input_is_flagged_invalid():
    m = merit.figures_of_merit([np.nan, -1.0], [1.0, 2.0], [1.0, 1.0], [2.0, 2.0], [1.0, 1.0])
    assert m["merit_flag"].tolist() == [merit.INVALID, merit.ENGINE]
    assert np.isnan(m["eta"][0]) and m["eta"][1] == pytest.approx(0.5)
    assert m["merit_flag"].dtype == np.int8


def test_hot_side_follows_the_sign_of_dT_when_the_temperatures_round_equal():
    """dT = 9e-220 at T = 1: T_L and T_R are the same double, yet L is hot (regression: the
    hot side was read from T_L >= T_R, so the mirror image called L hot as well)."""
    p = {"eps": 0.0, "T": 1.0, "dT": 8.969790646311603e-220, "dV": 1.0, "mu": 1.0,
         "gamma_L": 1.0, "gamma_R": 1.0}
    assert p["T"] + p["dT"] / 2 == p["T"] - p["dT"] / 2
    m, _ = model_merit(**p)
    mm, _ = model_merit(**mirror(p))
    assert m["merit_flag"] == mm["merit_flag"] == merit.FRIDGE
    assert m["cop"] == pytest.approx(mm["cop"], rel=1e-13)


def test_subnormal_power_is_flagged_underflow():
    # an engine (J_L ~ 1e-209 > 0 deep in the tail, dV = -1e-110): P ~ -1e-319 is subnormal,
    # its sign exact, its digits gone
    m, out = model_merit(eps=600.0, T=1.0, dT=0.5, dV=-1e-110, mu=0.0, gamma_L=2.0,
                         gamma_R=2.0)
    assert 0 < abs(out["P"]) < 2.2e-308
    assert m["merit_flag"] == merit.UNDERFLOW
    assert all(np.isnan(m[name]) for name in FIGURES)


def _reference_point(P, Q_L, Q_R, T_L, T_R, dT):
    """The module docstring's rules for one point, in plain Python floats (an independent
    transcription: the table, then one quotient per figure, capped at its Carnot value)."""
    import math
    nan = math.nan
    left_hot = dT >= 0
    Q_h, Q_c = (Q_L, -Q_R) if left_hot else (-Q_R, Q_L)
    T_h, T_c = (T_L, T_R) if left_hot else (T_R, T_L)
    d = abs(dT)

    def div(a, b):
        try:
            return a / b
        except ZeroDivisionError:
            return nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * \
                math.copysign(1.0, b)
        except OverflowError:
            return math.copysign(math.inf, a) * math.copysign(1.0, b)

    def capped(a, b, cap):
        q = div(a, b)
        return nan if math.isnan(q) or math.isnan(cap) else min(q, cap) + 0.0

    if any(math.isnan(v) for v in (P, Q_h, Q_c, d)):
        flag = merit.INVALID
    elif d == 0:
        flag = merit.NO_DT
    elif P < 0 < Q_h:
        flag = merit.ENGINE
    elif P > 0 and Q_c > 0:
        flag = merit.FRIDGE
    elif P > 0 > Q_h:
        flag = merit.HEATER
    elif P == 0:
        flag = merit.NO_WORK
    else:
        flag = merit.ACCELERATOR
    tiny = merit.TINY_NORMAL
    if flag in (merit.ENGINE, merit.FRIDGE, merit.HEATER) and (
            abs(P) < tiny or abs(Q_h) < tiny or (flag == merit.FRIDGE and abs(Q_c) < tiny)):
        flag = merit.UNDERFLOW
    eta_c = div(d, T_h)
    cop_c, cop_hc = (div(T_c, d), div(T_h, d)) if d > 0 else (nan, nan)
    out = dict.fromkeys(FIGURES, nan)
    if flag == merit.ENGINE:
        out["power"] = -P + 0.0
        out["eta"] = capped(-P, Q_h, eta_c)
        out["eta_over_carnot"] = capped(out["eta"], eta_c, 1.0)
    if flag in (merit.FRIDGE, merit.HEATER):
        out["power"] = (Q_c if flag == merit.FRIDGE else -Q_h) + 0.0
        out["cop_heating"] = capped(-Q_h, P, cop_hc)
        out["cop_heating_over_carnot"] = capped(out["cop_heating"], cop_hc, 1.0)
    if flag == merit.FRIDGE:
        out["cop"] = capped(Q_c, P, cop_c)
        out["cop_over_carnot"] = capped(out["cop"], cop_c, 1.0)
    return out, flag


_edge = st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.2e-308, -2.3e-308, 1e308, -1e308,
                         float("nan"), 1.0, -1.0])
_value = st.one_of(_edge, st.floats(allow_nan=False, allow_infinity=False, width=64))


@settings(max_examples=300)
@given(_value, _value, _value, st.floats(1e-300, 1e300), st.floats(-1.999, 1.999),
       st.booleans())
def test_figures_of_merit_follow_the_rules_bit_for_bit(P, Q_L, Q_R, T, frac, zero_dT):
    dT = 0.0 if zero_dT else frac * T
    T_L, T_R = T + dT / 2, T - dT / 2
    got = merit.figures_of_merit(np.array([P]), np.array([Q_L]), np.array([Q_R]),
                                 np.array([T_L]), np.array([T_R]), dT=np.array([dT]))
    want, flag = _reference_point(P, Q_L, Q_R, T_L, T_R, dT)
    assert int(got["merit_flag"][0]) == flag
    for name in FIGURES:
        g, w = float(got[name][0]), want[name]
        assert (np.isnan(g) and np.isnan(w)) or (g == w and np.signbit(g) == np.signbit(w)), \
            (name, g, w)
