"""The single-level closed form against a 60-digit mpmath reference (docs/model.md).

Required: J_L, Q_L, Q_R, P, s (and p1) within 1e-12 relative of the reference wherever
|x_v| <= 700 and the value (and J_L, its factor) is a normal double; the sign of every output
and both labels exactly those of the reference on every row, the hard corners included
(|x_v| up to 5000, T down to 1e-8, |dT| next to 2T, |dV|/T up to 1e3, rates 1e-3..1e3,
points exactly on eps_r, mu_L, mu_R); no -0.0; no warnings, no NaN or inf for finite valid
input.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from fractions import Fraction

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
from phasemap.models import single_level_closed_form as single_level
from phasemap.regimes import labels_of

RTOL = 1e-12
FLOWS = ("J_L", "Q_L", "Q_R", "P", "s")

pytestmark = pytest.mark.filterwarnings("error")


def _inputs(ref):
    return [ref[k] for k in PARAMS]


def _x_max(ref):
    eps, T, dT, dV, mu = (ref[k] for k in PARAMS[:5])
    return np.maximum(abs((eps - mu - dV / 2) / (T + dT / 2)),
                      abs((eps - mu + dV / 2) / (T - dT / 2)))


def _core(ref):
    return {k: v[ref["category"] == "core"] for k, v in ref.items()}


def _accuracy_rows(ref, name):
    """Where the 1e-12 contract holds: |x_v| <= 700 and the value and J_L normal doubles
    (a product with a subnormal J_L inherits J_L's absolute precision, 5e-324)."""
    tiny = np.finfo(float).tiny
    normal = ((ref[name] == 0) | (abs(ref[name]) >= tiny))
    factor = (ref["J_L"] == 0) | (abs(ref["J_L"]) >= tiny)
    return (_x_max(ref) <= 700) & normal & factor


def _describe(ref, i):
    return ", ".join(f"{k}={ref[k][i]!r}" for k in PARAMS)


# --- the reference table itself --------------------------------------------------------

def test_reference_table_covers_what_it_must(reference):
    reference = _core(reference)
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
    reference = _core(reference)

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

def test_reference_covers_the_hard_corners(reference):
    """Issue 13, section 5: each corner is in the table, with labels from exact signs."""
    cat = reference["category"]
    counts = {c: int((cat == c).sum()) for c in np.unique(cat)}
    assert set(counts) == {"core", "tail", "deep", "cold", "near_2T", "bias", "rates",
                           "weak_forces", "on_eps_r", "on_mu_L", "on_mu_R"}
    assert all(n >= 200 for n in counts.values()), counts
    eps, T, dT, dV, mu, gL, gR = _inputs(reference)
    x = _x_max(reference)
    assert ((x > 700) & (x <= 745)).sum() >= 300 and (x > 745).sum() >= 200
    assert (T <= 1e-3).sum() >= 300
    assert (abs(2 * T - abs(dT)) <= 1e-7 * 2 * T).sum() >= 300
    assert (abs(dV) / T >= 500).sum() >= 30 and (abs(dV) / T <= 1e3 * (1 + 1e-12)).all()
    ratio = np.maximum(gL / gR, gR / gL)
    assert (ratio >= 1e6 * (1 - 1e-12)).sum() >= 50 and gL.min() >= 1e-3 * (1 - 1e-12)
    assert (reference["regime"] == "reversible").sum() >= 100
    # exactly on eps_r, mu_L, mu_R (in exact arithmetic of the float inputs)
    on = {c: [row for row, cc in zip(zip(eps, T, dT, dV, mu, strict=True), cat, strict=True)
              if cc == c] for c in ("on_eps_r", "on_mu_L", "on_mu_R")}
    assert sum(exact_numerator(*r) == 0 for r in on["on_eps_r"]) >= 100
    for c, side in (("on_mu_L", 1), ("on_mu_R", -1)):
        assert sum(Fraction(e) == Fraction(m) + side * Fraction(v) / 2
                   for e, _, _, v, m in on[c]) >= 100
    # underflowing flows: stored as the sign-only stand-in +-5e-324
    for name in ("J_L", "Q_L", "Q_R", "P", "s"):
        assert (abs(reference[name]) == 5e-324).sum() >= 50, name
    assert not any(np.signbit(reference[k][reference[k] == 0]).any() for k in FLOAT_OUTPUTS)


@pytest.mark.parametrize("name", FLOAT_OUTPUTS)
def test_kernel_within_1e12_of_reference(reference, name):
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = single_level(*_inputs(reference))[name]
    rows = _accuracy_rows(reference, name)
    assert rows.sum() >= 3000
    err = np.where(rows, rel_err(got, reference[name]), 0.0)
    worst = int(np.argmax(err))
    assert err[worst] <= RTOL, (
        f"{name}: relative error {err[worst]:.3g} at {_describe(reference, worst)}: "
        f"got {got[worst]!r}, reference {reference[name][worst]!r}")


@pytest.mark.parametrize("model_name", ["single_level"])
def test_evaluate_pointwise_matches_reference(reference, model_name):
    """The public path (DataArrays sharing dim "point") gives the same numbers, the same
    signs and the reference's labels on every row."""
    params = {k: xr.DataArray(reference[k], dims="point") for k in PARAMS}
    ds = phasemap.evaluate(model_name, **params)
    assert ds.J_L.dims == ("point",)
    for name in FLOAT_OUTPUTS:
        rows = _accuracy_rows(reference, name)
        err = rel_err(ds[name].values, reference[name])
        assert err[rows].max() <= RTOL, name
    for name in FLOWS:
        np.testing.assert_array_equal(np.sign(ds[name].values), np.sign(reference[name]))
    for lens in ("regime", "machine"):
        np.testing.assert_array_equal(ds.phasemap.labels(lens).values, reference[lens])


@pytest.mark.parametrize("lens", ["regime", "machine"])
def test_labels_identical_to_the_reference_in_every_category(reference, lens):
    """Issue 13: labels from exact signs, including |x_v| > 700 and underflowing flows."""
    out = single_level(*_inputs(reference))
    codes = phasemap.get_model("single_level")(
        **dict(zip(PARAMS, _inputs(reference), strict=True)))[lens]
    got = labels_of(codes, lens)
    wrong = got != reference[lens]
    by_category = dict(zip(*np.unique(reference["category"][wrong], return_counts=True),
                           strict=True))
    assert not wrong.any(), (
        f"{wrong.sum()} wrong, by category {by_category}; first "
        f"at {_describe(reference, int(np.argmax(wrong)))}: {got[wrong][0]} vs "
        f"{reference[lens][wrong][0]}")
    # and classify() gives the same labels from the signed outputs
    r, m = phasemap.classify(reference["dT"], reference["dV"], out["J_L"], out["Q_L"],
                             out["Q_R"], out["P"])
    np.testing.assert_array_equal(r if lens == "regime" else m, codes)


def test_signs_identical_to_the_reference_and_no_negative_zero(reference):
    out = single_level(*_inputs(reference))
    for name in FLOWS:
        np.testing.assert_array_equal(np.sign(out[name]), np.sign(reference[name]), name)
    for name in FLOAT_OUTPUTS:
        assert not np.signbit(out[name][out[name] == 0]).any(), name
    # where the true flow is at or below the smallest subnormal, the kernel's is within a
    # few subnormal steps of it (the stand-in 5e-324 itself where J_L underflowed)
    for name in FLOWS:
        ref_tiny = abs(reference[name]) == 5e-324
        assert ref_tiny.sum() >= 50, name
        assert (abs(out[name][ref_tiny]) <= 8 * 5e-324).all(), name


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
    # Labels are defined everywhere: a regime, never "undefined", for finite valid input.
    assert set(ds.phasemap.labels().values) <= set(phasemap.REGIME_LABELS) - {"undefined"}
    assert "undefined" not in set(ds.phasemap.labels("machine").values)


@pytest.mark.parametrize(("eps", "dT", "dV", "regime"), [
    (0.0, 0.0, 0.0, "equilibrium"),            # issue: NaN outputs labelled equilibrium
    (1e10, 1e-300, 0.0, "conventional"),       # x_v and d beyond the double range
    (-1e10, 1e-300, 0.0, "anomalous_thermodiffusion"),
    (-1.0, 1e-300, 1e-300, "absolute_negative_mobility"),
])
def test_tiny_temperature_gives_finite_outputs_and_labels_without_warnings(eps, dT, dV,
                                                                             regime):
    """T = 1e-300 is valid input: T_L T_R underflows, x_v and d overflow; nothing may warn,
    every output is finite, never -0.0, and the point gets its regime."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = phasemap.evaluate(eps=eps, T=1e-300, dT=dT, dV=dV)
    for name in FLOAT_OUTPUTS:
        v = float(ds[name])
        assert math.isfinite(v) and not (v == 0 and math.copysign(1.0, v) < 0), name
    assert ds.phasemap.labels().item() == regime
    assert np.sign(float(ds.J_L)) == exact_sign(eps, 1e-300, dT, dV)


def test_underflowing_current_keeps_its_sign():
    """Far beyond |x| = 745 the true current underflows; its sign must survive."""
    out = single_level(np.array([-1e6, 1e6]), 1.0, 0.5, 0.0)
    assert out["J_L"][0] < 0 < out["J_L"][1]
    assert (out["s"] > 0).all()
