"""The single-level closed form against a 60-digit mpmath reference (docs/model.md).

Required: J_L, Q_L, Q_R, P, s (and p1) within 1e-12 relative of the reference for |x_v| <= 700
away from the reversible level; the sign of J_L right wherever ``(eps-mu) dT + T dV`` is not
zero; no warnings, no NaN or inf for finite valid input.
"""

from __future__ import annotations

import importlib.util
import math
import warnings

import numpy as np
import pytest
import xarray as xr
from conftest import (
    FLOAT_OUTPUTS,
    PARAMS,
    REFERENCE_CSV,
    exact_numerator,
    exact_sign,
    rel_err,
)

import phasemap
from phasemap.physics.single_level import single_level

RTOL = 1e-12

pytestmark = pytest.mark.filterwarnings("error")


def _inputs(ref):
    return [ref[k] for k in PARAMS]


def _describe(ref, i):
    return ", ".join(f"{k}={ref[k][i]!r}" for k in PARAMS)


# --- the reference table itself --------------------------------------------------------

def test_reference_table_covers_what_it_must(reference):
    eps, T, dT, dV, mu, gL, gR = _inputs(reference)
    n = eps.size
    assert 300 <= n <= 2000
    xL = (eps - mu - dV / 2) / (T + dT / 2)
    xR = (eps - mu + dV / 2) / (T - dT / 2)
    xmax = np.maximum(abs(xL), abs(xR))
    assert xmax.max() <= 700 and xmax.max() > 650          # deep tails, up to |x_v| ~ 700
    assert (xmax > 100).sum() >= 20
    assert (dT > 0).any() and (dT < 0).any() and (dV > 0).any() and (dV < 0).any()
    assert ((dT < 0) & (dV > 0)).any() and ((dT > 0) & (dV < 0)).any()
    assert (mu != 0).sum() >= 50 and (gL != gR).sum() >= 50
    # Nothing within 1e-6 (relative, measured from mu) of eps_r, as documented.
    num = np.array([float(exact_numerator(*row)) for row in zip(eps, T, dT, dV, mu, strict=True)])
    scale = abs(eps - mu) * abs(dT) + T * abs(dV)
    assert (abs(num) > 1e-6 * scale).all()
    # Outputs are finite, and 0 or normal doubles.
    for k in FLOAT_OUTPUTS:
        v = reference[k]
        assert np.isfinite(v).all()
        assert ((v == 0) | (abs(v) >= np.finfo(float).tiny)).all()


def test_reference_anchor_values(reference):
    """The two tails the physics contract quotes (docs/model.md); naive subtraction fails."""
    def row(eps, T, dT):
        i = np.nonzero((reference["eps"] == eps) & (reference["T"] == T)
                       & (reference["dT"] == dT) & (reference["dV"] == 0)
                       & (reference["mu"] == 0))[0]
        assert i.size == 1
        return reference["J_L"][i[0]]

    assert row(-40.0, 1.0, 0.5) == pytest.approx(-1.2664e-14, rel=1e-4, abs=0)
    assert row(-600.0, 10.0, 1.0) == pytest.approx(-1.52e-25, rel=1e-2, abs=0)


def test_reference_file_is_what_its_generator_writes(tmp_path):
    """The committed CSV is byte-identical to a fresh run of make_reference.py."""
    spec = importlib.util.spec_from_file_location("make_reference",
                                                  REFERENCE_CSV.with_name("make_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__doc__ and "python3 tests/data/make_reference.py" in module.__doc__
    assert module.DPS >= 50
    out = tmp_path / "ref.csv"
    module.main(out)
    assert out.read_bytes() == REFERENCE_CSV.read_bytes()


# --- the kernel against the reference ---------------------------------------------------

@pytest.mark.parametrize("name", FLOAT_OUTPUTS)
def test_kernel_within_1e12_of_reference(reference, name):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = single_level(*_inputs(reference))[name]
    err = rel_err(got, reference[name])
    worst = int(np.argmax(err))
    assert err[worst] <= RTOL, (
        f"{name}: relative error {err[worst]:.3g} at {_describe(reference, worst)}: "
        f"got {got[worst]!r}, reference {reference[name][worst]!r}")


@pytest.mark.parametrize("model_name", ["single_level"])
def test_evaluate_pointwise_matches_reference(reference, model_name):
    """The public path (DataArrays sharing dim "point") gives the same numbers."""
    params = {k: xr.DataArray(reference[k], dims="point") for k in PARAMS}
    ds = phasemap.evaluate(model_name, **params)
    assert ds.J_L.dims == ("point",)
    for name in FLOAT_OUTPUTS:
        err = rel_err(ds[name].values, reference[name])
        assert err.max() <= RTOL, name


def test_sign_of_current_matches_reference(reference):
    J = single_level(*_inputs(reference))["J_L"]
    assert (np.sign(J) == np.sign(reference["J_L"])).all()
    signs = [exact_sign(*row) for row in zip(*_inputs(reference)[:5], strict=True)]
    assert (np.sign(J) == np.array(signs)).all()


def test_naive_subtraction_would_fail_here(reference):
    """Guards the reference's usefulness: the naive formula is off on its deep-tail rows."""
    eps, T, dT, dV, mu, gL, gR = _inputs(reference)
    with np.errstate(over="ignore"):
        fL = 1 / (1 + np.exp((eps - mu - dV / 2) / (T + dT / 2)))
        fR = 1 / (1 + np.exp((eps - mu + dV / 2) / (T - dT / 2)))
    naive = gL * gR / (gL + gR) * (fL - fR)
    assert (rel_err(naive, reference["J_L"]) > 1e-3).sum() >= 20


# --- sign of J_L next to (and on) the reversible level ---------------------------------

def _neighbours(x, k):
    """x and its k nearest floats on each side."""
    out = [x]
    lo = hi = x
    for _ in range(k):
        lo, hi = math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf)
        out += [lo, hi]
    return out


@pytest.mark.parametrize(("T", "dT", "dV", "mu"), [
    (7.5, 5.0, 5.0, 0.0),          # eps_r = -7.5
    (7.5, 5.0, -5.0, 0.0),         # eps_r = +7.5
    (3.0, -1.0, 0.7, 0.1),         # eps_r = 2.2 (not a double): N never exactly zero
    (0.3, 0.2, 1.0 / 3.0, -2.0),
    (1e-3, 1.5e-3, 1e-3, 5.0),
])
def test_sign_of_current_right_up_to_the_last_ulp_of_eps_r(T, dT, dV, mu):
    eps_r = mu - T * dV / dT
    eps = np.array([*_neighbours(eps_r, 40), eps_r * (1 + 1e-9), eps_r * (1 - 1e-9)])
    out = single_level(eps, T, dT, dV, mu, 2.0, 0.5)
    expected = np.array([exact_sign(e, T, dT, dV, mu) for e in eps])
    assert (np.sign(out["J_L"]) == expected).all()
    assert (out["s"] >= 0).all()
    assert ((out["s"] == 0) == (expected == 0)).all()


def test_exactly_reversible_points_have_zero_current():
    for eps, T, dT, dV, mu in [(-7.5, 7.5, 5.0, 5.0, 0.0), (7.5, 7.5, 5.0, -5.0, 0.0),
                               (-7.25, 7.5, 5.0, 5.0, 0.25), (-1.5, 7.5, 5.0, 1.0, 0.0)]:
        assert exact_numerator(eps, T, dT, dV, mu) == 0
        out = single_level(eps, T, dT, dV, mu)
        assert out["J_L"] == 0 and out["s"] == 0 and out["P"] == 0
        assert not math.copysign(1.0, float(out["J_L"])) < 0  # +0.0, not -0.0


# --- robustness: no warnings, no NaN/inf -----------------------------------------------

EXTREMES = [
    # eps, T, dT, dV, mu, gamma_L, gamma_R
    (1e6, 1e-3, 0.0, 0.0, 0.0, 2.0, 2.0),
    (-1e6, 1e-3, 0.0, 0.0, 0.0, 2.0, 2.0),
    (1e6, 1e-3, 1e-3, 0.0, 0.0, 2.0, 2.0),
    (-1e6, 1e-3, 1e-3, 0.0, 0.0, 2.0, 2.0),
    (-1e6, 1e-3, -1.9e-3, 1e6, 0.0, 2.0, 2.0),
    (1e6, 1e-3, 1.999999e-3, -1e6, 1e6, 2.0, 2.0),
    (0.0, 1e-3, 1.9999999999e-3, 1e-3, 0.0, 2.0, 2.0),
    (3.0, 1e-3, -1.9999999999e-3, -1e6, -1e6, 2.0, 2.0),
    (1e-300, 1e-3, 1e-3, 0.0, 0.0, 2.0, 2.0),
    (0.0, 1.0, 0.5, 0.0, 0.0, 1e300, 1e300),
    (0.5, 1.0, 0.5, 0.2, 0.0, 1e300, 1e-300),
    (0.5, 1.0, 0.5, 0.2, 0.0, 1e-300, 1e-300),
    (-0.5, 1.0, -0.5, -0.2, 0.0, 1e-300, 1e300),
    (1e6, 1e6, 1.9e6, 1e6, -1e6, 1.0, 1.0),
    (-1e6, 1e-3, 1e-3, 1e6, 1e6, 1e-300, 1e300),
    (0.0, 1e-3, 0.0, 0.0, 0.0, 2.0, 2.0),
]


def test_extreme_inputs_give_finite_outputs_without_warnings():
    arr = np.array(EXTREMES).T
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            out = single_level(*arr)
            ds = phasemap.evaluate(**{k: xr.DataArray(v, dims="point")
                                      for k, v in zip(PARAMS, arr, strict=True)})
    for name in FLOAT_OUTPUTS:
        assert np.isfinite(out[name]).all(), name
        np.testing.assert_array_equal(ds[name].values, out[name])
    assert (out["s"] >= 0).all()
    assert ((out["p1"] >= 0) & (out["p1"] <= 1)).all()
    signs = np.array([exact_sign(*row[:5]) for row in EXTREMES])
    assert (np.sign(out["J_L"]) == signs).all()
    # Labels are defined everywhere (no fall-through from NaN).
    assert set(ds.phasemap.labels().values) <= set(phasemap.REGIME_LABELS)


def test_underflowing_current_keeps_its_sign():
    """Far beyond |x| = 745 the true current underflows; its sign must survive."""
    out = single_level(np.array([-1e6, 1e6]), 1.0, 0.5, 0.0)
    assert out["J_L"][0] < 0 < out["J_L"][1]
    assert (out["s"] > 0).all()
