"""Thresholds by root finding on the model, against the closed forms (docs/model.md).

dT_th = T dV / (mu - eps), dV_th = (mu - eps) dT / T, RHT window dV_th < dV < 2 (mu - eps), and
the reversible level eps_r = mu - T dV / dT (paper eq. 10).
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import phasemap
from phasemap.errors import ParameterError

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

TOL = 1e-9


# --- the paper's checkpoints -------------------------------------------------------------

def test_dT_threshold_fig5a():
    th = phasemap.threshold("dT", eps=-15, T=7.5, dV=5, bracket=(0, 14.9))
    assert th.ndim == 0
    assert abs(float(th) - 2.5) <= TOL
    assert th.attrs["units"] == "E0"
    assert th.attrs["quantity"] == "J_L" and th.attrs["model"] == "single_level"
    assert th.name == "dT_threshold"


def test_dV_threshold_fig5b():
    th = phasemap.threshold("dV", eps=-15, T=7.5, dT=5, bracket=(0, 25))
    assert abs(float(th) - 10.0) <= TOL


@pytest.mark.parametrize(("dV", "bracket", "expected"), [(5.0, (-20.0, 0.0), -7.5),
                                                         (-5.0, (0.0, 20.0), 7.5)])
def test_reversible_level(dV, bracket, expected):
    th = phasemap.threshold("eps", T=7.5, dT=5, dV=dV, bracket=bracket)
    assert abs(float(th) - expected) <= TOL
    # and it is where the model says "reversible"
    ds = phasemap.evaluate(eps=[expected], T=7.5, dT=5.0, dV=dV)
    assert ds.phasemap.labels().item() == "reversible"


def test_the_thresholds_separate_the_regimes():
    """Just inside and outside each threshold the labels switch as the paper says."""
    def label(**kw):
        return phasemap.evaluate(**kw).phasemap.labels().item()
    assert label(eps=-15.0, T=7.5, dV=5.0, dT=2.5 + 1e-6) == "absolute_negative_mobility"
    assert label(eps=-15.0, T=7.5, dV=5.0, dT=2.5 - 1e-6) == "reverse_heat_transport"
    assert label(eps=-15.0, T=7.5, dT=5.0, dV=10.0 - 1e-6) == "absolute_negative_mobility"
    assert label(eps=-15.0, T=7.5, dT=5.0, dV=10.0 + 1e-6) == "reverse_heat_transport"
    assert label(eps=-15.0, T=7.5, dT=5.0, dV=30.0 - 1e-6) == "reverse_heat_transport"
    assert label(eps=-15.0, T=7.5, dT=5.0, dV=30.0 + 1e-6) == "joule_heating"


# --- closed forms as oracles -------------------------------------------------------------

@st.composite
def below_mu(draw):
    T = draw(st.floats(0.5, 20.0))
    mu = draw(st.floats(-5.0, 5.0))
    gap = draw(st.floats(0.5, 40.0))              # mu - eps > 0
    return T, mu, mu - gap, gap


@settings(max_examples=60)
@given(case=below_mu(), frac=st.floats(0.02, 0.95))
def test_dT_threshold_matches_closed_form(case, frac):
    T, mu, eps, gap = case
    # choose dV so that dT_th = T dV / (mu - eps) = frac * 2T is reachable
    dV = frac * 2 * T * gap / T
    th = phasemap.threshold("dT", eps=eps, T=T, dV=dV, mu=mu, bracket=(0.0, 1.999 * T))
    assert abs(float(th) - T * dV / gap) <= TOL * max(1.0, T)


@settings(max_examples=60)
@given(case=below_mu(), frac=st.floats(0.01, 1.98))
def test_dV_threshold_and_rht_window_match_closed_forms(case, frac):
    T, mu, eps, gap = case
    dT = frac * T
    dV_th = gap * dT / T
    th = phasemap.threshold("dV", eps=eps, T=T, dT=dT, mu=mu, bracket=(0.0, 4 * gap))
    assert abs(float(th) - dV_th) <= TOL * max(1.0, gap)
    # RHT window upper edge: Q_R changes sign at eps = mu_R, i.e. dV = 2 (mu - eps).
    lo = 0.5 * (dV_th + 2 * gap)
    upper = phasemap.threshold("dV", eps=eps, T=T, dT=dT, mu=mu, bracket=(lo, 4 * gap),
                               quantity="Q_R")
    assert abs(float(upper) - 2 * gap) <= TOL * max(1.0, gap)


def test_closed_forms_on_a_grid():
    eps = np.linspace(-40.0, -1.0, 40)
    dV = np.array([0.5, 2.0, 5.0])
    th = phasemap.threshold("dT", eps=eps, T=7.5, dV=dV, bracket=(0.0, 14.99))
    assert th.dims == ("eps", "dV")
    expected = 7.5 * dV[None, :] / (0.0 - eps[:, None])
    reachable = expected < 14.99
    np.testing.assert_allclose(th.values[reachable], expected[reachable], rtol=0, atol=TOL)
    assert np.isnan(th.values[~reachable]).all()
    assert (~reachable).any()                      # the grid has unreachable points too
    np.testing.assert_array_equal(th.eps.values, eps)
    np.testing.assert_array_equal(th.dV.values, dV)


# --- no root -----------------------------------------------------------------------------

def test_nan_where_no_sign_change():
    # eps > mu: J_L > 0 for every dT >= 0, no ANM.
    assert np.isnan(float(phasemap.threshold("dT", eps=5.0, T=7.5, dV=5.0, bracket=(0, 14.9))))
    # dT_th = 7.5*5/1 = 37.5 > 2T: not reachable.
    assert np.isnan(float(phasemap.threshold("dT", eps=-1.0, T=7.5, dV=5.0,
                                             bracket=(0, 14.9))))
    th = phasemap.threshold("dT", eps=[-15.0, 5.0], T=7.5, dV=5.0, bracket=(0, 14.9))
    assert abs(th.values[0] - 2.5) <= TOL and np.isnan(th.values[1])


# --- broadcasting ------------------------------------------------------------------------

def test_broadcasts_over_sequences_and_dataarrays():
    th = phasemap.threshold("dT", eps=[-30.0, -15.0], T=[5.0, 7.5], dV=5.0,
                            bracket=(0.0, 9.99))
    assert th.dims == ("eps", "T")
    exp = np.array([[5.0 * 5 / 30, 7.5 * 5 / 30], [5.0 * 5 / 15, 7.5 * 5 / 15]])
    np.testing.assert_allclose(th.values, exp, atol=TOL)

    eps = xr.DataArray([-15.0, -20.0, -40.0], dims="point")
    T = xr.DataArray([7.5, 6.0, 3.0], dims="point")
    th = phasemap.threshold("dV", eps=eps, T=T, dT=5.0, bracket=(0.0, 200.0))
    assert th.dims == ("point",)
    np.testing.assert_allclose(th.values, -eps.values * 5.0 / T.values, atol=TOL)


def test_works_with_the_pauli_model():
    th = phasemap.threshold("dT", model="pauli", eps=-15, T=7.5, dV=5, bracket=(0, 14.9))
    assert th.attrs["model"] == "pauli"
    assert abs(float(th) - 2.5) <= 1e-8
    th = phasemap.threshold("dV", model="pauli", eps=[-20.0, -15.0], T=7.5, dT=5,
                            bracket=(0, 40))
    np.testing.assert_allclose(th.values, [20.0 * 5 / 7.5, 10.0], atol=1e-8)


def test_xtol_is_honoured():
    coarse = phasemap.threshold("dT", eps=-15.0, T=7.5, dV=5.0, bracket=(0.0, 14.9),
                                xtol=1e-3)
    assert abs(float(coarse) - 2.5) <= 1e-3
    assert coarse.attrs["xtol"] == 1e-3


# --- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "param"), [
    ({"along": "foo"}, "along"),
    ({"along": "dT", "dT": 1.0}, "dT"),
    ({"along": "dT", "quantity": "regime"}, "quantity"),
    ({"along": "dT", "quantity": "nope"}, "quantity"),
    ({"along": "dT", "bracket": (1.0, 1.0)}, "bracket"),
    ({"along": "dT", "bracket": (2.0, 1.0)}, "bracket"),
    ({"along": "dT", "bracket": (0.0, float("nan"))}, "bracket"),
    ({"along": "dT", "bracket": (0.0, float("inf"))}, "bracket"),
    ({"along": "dT", "bracket": (0.0, 20.0)}, "dT"),          # T_R < 0 at the upper end
    ({"along": "T", "bracket": (-1.0, 5.0)}, "T"),             # T must be > 0
    ({"along": "dT", "xtol": 0.0}, "xtol"),
    ({"along": "dT", "model": "nope"}, "model"),
    ({"along": "dT", "foo": 1.0}, "foo"),
])
def test_errors(kwargs, param):
    kw = {"eps": -15.0, "T": 7.5, "dV": 5.0, "bracket": (0.0, 14.9)}
    kw.update(kwargs)
    if kw["along"] in kw and kw["along"] != "dT":
        kw.pop(kw["along"])
    along = kw.pop("along")
    with pytest.raises(ParameterError) as info:
        phasemap.threshold(along, **kw)
    assert isinstance(info.value, ValueError)
    assert param in info.value.param
    assert param in str(info.value)
