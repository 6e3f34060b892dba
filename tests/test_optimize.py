"""Maximum power and linear response (phasemap.optimize) on the single level.

Oracles: the maximum-power point of the single level found independently at 40 digits with
mpmath (a root of the gradient of the power in closed form); the linear-response condition
x tanh(x/2) = 2; the analytic linear-response coefficients G = gamma f(1-f)/T,
S = (eps - mu)/T, K = 0 (tight coupling).
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
import xarray as xr

import phasemap
from phasemap.errors import ParameterError
from phasemap.optimize import linear_response, max_power

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def _dT_for(eta_c, T=1.0):
    """dT such that eta_C = dT/T_L = dT/(T + dT/2) equals eta_c."""
    return 2 * eta_c * T / (2 - eta_c)


def mp_max_power_point(eta_c, T=1.0):
    """(eta*, eps*) of the single level (mu = 0) at 40 digits, from the gradient's root.

    Output power (u - v)(f(u/T_L) - f(v/T_R)) with u = eps - mu_L, v = eps - mu_R; the
    efficiency at the maximum is 1 - v/u."""
    with mp.workdps(40):
        dT = mp.mpf(_dT_for(eta_c, T))
        TL, TR = T + dT / 2, T - dT / 2

        def f(x):
            return 1 / (1 + mp.exp(x))

        def power(u, v):
            return (u - v) * (f(u / TL) - f(v / TR))

        def grad(u, v):
            return [mp.diff(lambda a: power(a, v), u), mp.diff(lambda b: power(u, b), v)]

        u, v = mp.findroot(grad, (mp.mpf(2.4) * T, mp.mpf(2.4) * T * (1 - eta_c / 2)))
        return 1 - v / u, (u + v) / 2


def x_star():
    with mp.workdps(30):
        return float(mp.findroot(lambda x: x * mp.tanh(x / 2) - 2, 2.4))


# --- maximum power ----------------------------------------------------------------------

@pytest.mark.parametrize("eta_c", [0.01, 0.03])
def test_max_power_point_against_40_digits(eta_c):
    dT = _dT_for(eta_c)
    ds = max_power(("eps", "dV"), T=1.0, dT=dT, bracket=((0.5, 6.0), (-3 * dT, 0.0)))
    eta_ref, eps_ref = mp_max_power_point(eta_c)
    # the power is flat at its maximum: rounding (1e-16 relative) leaves the argmax known to
    # ~sqrt(1e-16) of the scale, hence eta to a few 1e-8 (still 1e-3 of the eta_C^3 term)
    assert float(ds.eta) == pytest.approx(float(eta_ref), rel=5e-8)
    assert float(ds.eps_at_max_power) == pytest.approx(float(eps_ref), rel=1e-6)
    assert float(ds.eta_over_carnot) == pytest.approx(float(eta_ref) / eta_c, rel=5e-8)
    # the power reported is the model's at the argmax
    at = phasemap.get_model("single_level")(eps=float(ds.eps_at_max_power), T=1.0, dT=dT,
                                            dV=float(ds.dV_at_max_power))
    assert float(ds.power) == -at["P"]


def test_efficiency_at_max_power_expansion():
    """eta* = eta_C/2 + eta_C^2/8 + c3 eta_C^3 + ...: the remainder over eta_C^3 stays bounded
    as eta_C -> 0, and extrapolates to this model's c3 = (7/96)(1 + 0.0627) = 0.07749
    (Esposito, Lindenberg & Van den Broeck, EPL 85, 60010 (2009); the 40-digit gradient
    root of mp_max_power_point gives 0.077492), not to the bare 7/96 = 0.07292."""
    etas = (0.005, 0.01, 0.02, 0.04)
    ratios = []
    for eta_c in etas:
        dT = _dT_for(eta_c)
        ds = max_power(("eps", "dV"), T=1.0, dT=dT, bracket=((0.5, 6.0), (-3 * dT, 0.0)))
        eta = float(ds.eta)
        ratios.append((eta - eta_c / 2 - eta_c**2 / 8) / eta_c**3)
    ratios = np.array(ratios)
    assert (np.abs(ratios) < 0.1).all()
    assert np.ptp(ratios) < 0.003          # bounded and settling, not growing as 1/eta_C
    c3 = 2 * ratios[1] - ratios[2]         # linear extrapolation from eta_C = 0.01, 0.02
    assert c3 == pytest.approx(7 / 96 * 1.0627, abs=5e-4)
    assert abs(c3 - 7 / 96) > 3e-3


def test_third_order_coefficient_at_40_digits():
    """The oracle itself: c3 from the 40-digit maximum-power point, by Richardson."""
    r = [float((mp_max_power_point(e)[0] - e / 2 - e**2 / 8) / e**3) for e in (1e-3, 2e-3)]
    assert 2 * r[0] - r[1] == pytest.approx(7 / 96 * 1.0627, abs=2e-5)


def test_linear_response_max_power_condition():
    """At dT -> 0 the optimal level obeys x tanh(x/2) = 2, x = (eps - mu)/T = 2.39936..."""
    T, mu = 2.0, 0.5
    dT = 1e-4 * T
    ds = max_power(("eps", "dV"), T=T, mu=mu, dT=dT,
                   bracket=((mu + 1.0 * T, mu + 6.0 * T), (-3 * dT, 0.0)))
    x = (float(ds.eps_at_max_power) - mu) / T
    assert x == pytest.approx(x_star(), abs=1e-6)


def test_max_power_one_parameter_batched_and_pointwise_agree():
    dV = [-0.4, -0.2, -0.1]
    ds = max_power("eps", T=1.0, dT=0.5, dV=dV, bracket=(-10.0, 10.0))
    assert ds.power.dims == ("dV",)
    for k, v in enumerate(dV):
        one = max_power("eps", T=1.0, dT=0.5, dV=v, bracket=(-10.0, 10.0))
        assert float(one.eps_at_max_power) == pytest.approx(float(ds.eps_at_max_power[k]),
                                                            rel=1e-7)
        # the argmax is a stationary point of the power: a dense look around it agrees
        e = float(one.eps_at_max_power) + np.linspace(-1e-3, 1e-3, 2001)
        P = phasemap.get_model("single_level")(eps=e, T=1.0, dT=0.5, dV=v)["P"]
        assert float(one.power) >= -P.min() * (1 - 1e-12)


def test_no_engine_in_the_bracket_gives_nan():
    # dV > 0 and eps above mu: the current runs downhill, no power is produced anywhere
    ds = max_power("eps", T=1.0, dT=0.5, dV=0.5, bracket=(2.0, 10.0))
    assert np.isnan(float(ds.power)) and np.isnan(float(ds.eta))


def test_max_power_bad_input():
    with pytest.raises(ParameterError, match="no finite range"):
        max_power("eps", T=1.0, dT=0.5, dV=-0.1)
    with pytest.raises(ParameterError, match="along"):
        max_power("nope", T=1.0, bracket=(0, 1))
    with pytest.raises(ParameterError) as e:
        max_power("eps", eps=1.0, T=1.0, bracket=(0, 1))
    assert e.value.param == "eps"
    with pytest.raises(ParameterError) as e:
        max_power("dT", T=1.0, bracket=(0.0, 5.0))   # dT = 5 > 2T is outside the model
    assert "dT" in e.value.param
    with pytest.raises(ParameterError, match="bracket"):
        max_power(("eps", "dV"), T=1.0, dT=0.5, bracket=(0, 1))


# --- linear response --------------------------------------------------------------------

def _analytic(eps, T, mu, gL, gR):
    x = (eps - mu) / T
    f = 1 / (1 + np.exp(x))
    G = gL * gR / (gL + gR) * f * (1 - f) / T
    return G, x


@pytest.mark.parametrize("model", ["single_level", "pauli"])
def test_linear_response_against_analytic(model):
    rng = np.random.default_rng(17)
    eps = np.sort(rng.uniform(-15, 15, 12))
    T, mu, gL, gR = 1.7, 0.3, 0.8, 2.5
    ds = linear_response(model, eps=eps, T=T, mu=mu, gamma_L=gL, gamma_R=gR)
    G, S = _analytic(eps, T, mu, gL, gR)
    np.testing.assert_allclose(ds.G, G, rtol=1e-8)
    np.testing.assert_allclose(ds.S, S, rtol=1e-8)
    # tight coupling: heat rides with each electron, so K vanishes and ZT is infinite
    N = ds.G * ds.S * T  # dQ_L/ddV = (eps - mu) G
    assert (np.abs(ds.K) <= 1e-8 * np.abs(N) * np.abs(ds.S)).all()
    assert np.isinf(ds.ZT).all()
    assert (ds.G_err <= 1e-8 * ds.G).all()
    assert ds.G.attrs["units"] == "gamma0/E0"


def test_linear_response_rejects_a_bias():
    with pytest.raises(ParameterError) as e:
        linear_response(eps=0.0, T=1.0, dV=0.1)
    assert e.value.param == "dV"


def test_exported():
    assert phasemap.max_power is max_power
    assert phasemap.linear_response is linear_response
    assert isinstance(phasemap.linear_response(eps=1.0, T=1.0), xr.Dataset)
