"""Thresholds by root finding on the model, against the closed forms (docs/model.md).

dT_th = T dV / (mu - eps), dV_th = (mu - eps) dT / T, RHT window dV_th < dV < 2 (mu - eps), the
reversible level eps_r = mu - T dV / dT (paper eq. 10) and, along T, T_th = (mu - eps) dT / dV
(all where (eps - mu) dT + T dV = 0). And the edge cases of issue 13: exact zeros at a bracket
end, a quantity identically zero along the axis, several roots in one bracket, no bracket.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import assume, given, settings
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


# --- every axis, every model: the closed forms to 1e-9 -------------------------------------

def _models():
    """Models whose thresholds must match the closed forms (the generic engine too)."""
    return ["single_level", "pauli"]


@st.composite
def device(draw):
    """eps < mu, 0 < dT < 2T, dV > 0 with every threshold inside the domain."""
    T = draw(st.floats(0.5, 20.0))
    mu = draw(st.floats(-5.0, 5.0))
    gap = draw(st.floats(0.5, 40.0))              # mu - eps > 0
    frac = draw(st.floats(0.05, 1.9))              # dT / T
    gL = draw(st.floats(0.1, 10.0))
    gR = draw(st.floats(0.1, 10.0))
    dT = frac * T
    dV = gap * dT / T * draw(st.floats(0.2, 0.9))  # 0 < dV < dV_th: ANM
    return {"eps": mu - gap, "T": T, "dT": dT, "dV": dV, "mu": mu, "gamma_L": gL,
            "gamma_R": gR}


def _closed_form(along, p):
    e, T, dT, dV, mu = (p[k] for k in ("eps", "T", "dT", "dV", "mu"))
    return {"dT": T * dV / (mu - e), "dV": (mu - e) * dT / T, "eps": mu - T * dV / dT,
            "T": (mu - e) * dT / dV}[along]


def _bracket(along, p, root):
    """A bracket around ``root`` inside the model's domain, not centred on it."""
    if along == "dT":
        return (0.25 * root, min(2.0 * p["T"] * 0.999, 3.7 * root))
    if along == "T":
        return (max(0.5 * abs(p["dT"]) * 1.001, 0.3 * root), 3.3 * root)
    return (root - 7.3 * (1 + abs(root)), root + 3.1 * (1 + abs(root)))


@pytest.mark.parametrize("model", _models())
@pytest.mark.parametrize("along", ["T", "dT", "dV", "eps"])
@settings(max_examples=25, deadline=None)
@given(p=device())
def test_threshold_matches_the_closed_form_on_every_axis(model, along, p):
    expected = _closed_form(along, p)
    fixed = {k: v for k, v in p.items() if k != along}
    if along == "T":
        assume(expected > 0.5 * abs(p["dT"]) * 1.01)
    if along == "dT":
        assume(0 < expected < 2 * p["T"] * 0.99)
    th = phasemap.threshold(along, model=model, bracket=_bracket(along, p, expected), **fixed)
    assert int(th.status) == 0
    assert abs(float(th) - expected) <= TOL * max(1.0, abs(expected))


@pytest.mark.parametrize("model", _models())
def test_default_bracket_is_the_model_range_along_dT(model):
    """No bracket: dT is searched over (-2T, 2T), the model's declared range."""
    th = phasemap.threshold("dT", model=model, eps=[-30.0, -15.0, 5.0], T=7.5, dV=5.0)
    # eps_r = -T dV / dT: dT = 1.25, 2.5 and, for eps = 5 > mu, -7.5 (the mirrored device)
    np.testing.assert_allclose(th.values, [1.25, 2.5, -7.5], rtol=0, atol=TOL)
    assert list(th.status.values) == [0, 0, 0]
    assert th.attrs["bracket"] == "model range"
    # a dT_th beyond 2T is out of the model's range: no root, and the status says so
    th = phasemap.threshold("dT", model=model, eps=-1.0, T=7.5, dV=5.0)
    assert np.isnan(float(th)) and int(th.status) == 1


@pytest.mark.parametrize("along", ["eps", "dV", "T"])
def test_unbounded_range_without_bracket_is_a_parameter_error(along):
    kw = {"eps": -15.0, "T": 7.5, "dT": 5.0, "dV": 5.0}
    kw.pop(along)
    with pytest.raises(ParameterError) as info:
        phasemap.threshold(along, **kw)
    assert info.value.param == "bracket"
    assert along in str(info.value) and "unbounded" in str(info.value)


@pytest.mark.parametrize(("along", "kw", "bracket"), [
    ("eps", {"T": 7.5, "dT": 0.0, "dV": 0.0}, (-20.0, 20.0)),   # no force at all
    ("dT", {"eps": 0.25, "mu": 0.25, "T": 7.5, "dV": 0.0}, (-1.0, 1.0)),  # eps = mu, dV = 0
    ("T", {"eps": 3.0, "dT": 0.0, "dV": 0.0}, (0.5, 10.0)),
])
def test_identically_zero_is_nan_with_a_reason(along, kw, bracket):
    """J_L vanishes everywhere along the axis: there is no threshold to find, and neither
    bracket end may be taken for one."""
    th = phasemap.threshold(along, bracket=bracket, **kw)
    assert np.isnan(float(th))
    assert int(th.status) == 2
    assert th.status.attrs["flag_meanings"].split()[2] == "identically_zero"


def test_exact_zero_at_a_bracket_end_is_a_root_only_where_it_is_one():
    # J_L = 0 exactly at dT = 2.5 (eps = -15, T = 7.5, dV = 5): the bracket end is the root
    th = phasemap.threshold("dT", eps=-15.0, T=7.5, dV=5.0, bracket=(2.5, 10.0))
    assert float(th) == 2.5 and int(th.status) == 0
    th = phasemap.threshold("dT", eps=-15.0, T=7.5, dV=5.0, bracket=(0.0, 2.5))
    assert float(th) == 2.5
    # at the cold end of a T bracket the current is tiny but not zero: no root there
    th = phasemap.threshold("T", eps=-40.0, dT=0.02, dV=1e-3, bracket=(0.0100001, 0.5))
    assert np.isnan(float(th)) and int(th.status) == 1


def test_several_roots_in_one_bracket():
    """Q_R along dV at eps = -15, T = 7.5, dT = 5 changes sign at dV_th = 10 (J_L = 0) and
    at 2 (mu - eps) = 30 (eps = mu_R): both are returned, NaN-padded elsewhere."""
    th = phasemap.threshold("dV", eps=[-20.0, -15.0, 5.0], T=7.5, dT=5.0, quantity="Q_R",
                            bracket=(0.0, 40.0), roots="all")
    assert th.dims == ("eps", "root") and th.sizes["root"] == 2
    # eps = -20: dV_th = 40/3 and eps = mu_R exactly at the bracket end, dV = 40
    np.testing.assert_allclose(th.values[0], [40.0 / 3.0, 40.0], rtol=0, atol=TOL)
    np.testing.assert_allclose(th.values[1], [10.0, 30.0], rtol=0, atol=TOL)
    # eps = 5 > mu: Q_R > 0 for every dV > 0
    assert np.isnan(th.values[2]).all()
    assert list(th.status.values) == [0, 0, 1]
    # asking for one root where there are two is an error that says so, never a silent NaN
    with pytest.raises(ParameterError) as info:
        phasemap.threshold("dV", eps=-15.0, T=7.5, dT=5.0, quantity="Q_R",
                           bracket=(0.0, 40.0))
    assert info.value.param == "bracket" and "roots='all'" in str(info.value)


def test_roots_all_with_one_root_keeps_a_root_dimension():
    th = phasemap.threshold("dT", eps=-15.0, T=7.5, dV=5.0, roots="all")
    assert th.dims == ("root",) and th.sizes["root"] == 1
    assert abs(float(th[0]) - 2.5) <= TOL


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
    ({"along": "dT", "roots": "some"}, "roots"),
    ({"along": "dT", "scan": 0}, "scan"),
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
