"""Invariants of the single-level dot, proven by Hypothesis over valid inputs.

Second law (s >= 0), energy balance (Q_R - Q_L = P), lead-swap symmetry of numbers and labels,
eq. (9) of the paper against Q_R/T_R - Q_L/T_L, eager == dask for any chunking, and the
generic Pauli engine against the closed form.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from conftest import (
    FLOAT_OUTPUTS,
    PARAMS,
    exact_numerator,
    mirror,
    moderate_points,
    wide_points,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import phasemap
from phasemap.models import single_level_closed_form as single_level
from phasemap.physics import pauli

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

# Subnormal results (|J| can be ~5e-324 in the wide range) carry an absolute rounding of
# half the smallest subnormal; relative bounds get this much absolute slack.
SUBNORMAL_SLACK = 1e-321


SINGLE = phasemap.get_model("single_level")
PAULI = phasemap.get_model("pauli")


def _eval(p, model=SINGLE):
    """All outputs and both labels at one point, by the model's kernel (the one evaluate
    runs; ``test_physics_kernel_and_fused_model_kernel_agree_bit_for_bit`` and
    test_evaluate.py tie it to the physics function and to evaluate)."""
    return {k: v[()] for k, v in model(**p).items()}


def _kernel(p):
    return {k: float(v) for k, v in _eval(p).items() if k in FLOAT_OUTPUTS}


# --- second law --------------------------------------------------------------------------

@given(p=st.one_of(moderate_points(), wide_points()))
def test_entropy_production_is_never_negative(p):
    out = _kernel(p)
    assert all(np.isfinite(v) for v in out.values())
    assert out["s"] >= 0.0
    # s = J_L * d with J_L of the sign of d: zero when J_L is (s may also underflow to 0).
    if out["J_L"] == 0.0:
        assert out["s"] == 0.0
    # and J_L has the exact sign of (eps - mu) dT + T dV, wherever that numerator is not
    # zero in floating point (docs/model.md): e.g. T dV = 0.5 * 5e-324 underflows to 0.
    num = exact_numerator(p["eps"], p["T"], p["dT"], p["dV"], p["mu"])
    if abs(num) > 1e-300:
        assert np.sign(out["J_L"]) == (num > 0) - (num < 0)


@given(p=moderate_points())
def test_entropy_production_from_the_heat_flows(p):
    """s (closed form J_L (x_R - x_L)) equals Q_R/T_R - Q_L/T_L up to the rounding of that
    difference."""
    out = _kernel(p)
    TL, TR = p["T"] + p["dT"] / 2, p["T"] - p["dT"] / 2
    a, b = out["Q_R"] / TR, out["Q_L"] / TL
    assert out["s"] == pytest.approx(a - b, rel=0, abs=1e-13 * max(abs(a), abs(b)) + 1e-300)


# --- first law ---------------------------------------------------------------------------

@given(p=st.one_of(moderate_points(), wide_points()))
def test_power_is_heat_balance(p):
    out = _kernel(p)
    QL, QR, P = out["Q_L"], out["Q_R"], out["P"]
    scale = max(abs(QL), abs(QR))
    assert abs((QR - QL) - P) <= 1e-12 * scale + SUBNORMAL_SLACK
    if abs(out["J_L"]) == 5e-324:
        # J_L is the sign-only stand-in of a current below the subnormal range: so are its
        # products, with the sign of the factors (docs/model.md)
        assert P == np.sign(p["dV"]) * np.sign(out["J_L"]) * 5e-324 or P == 0 == p["dV"]
    else:
        assert P == pytest.approx(p["dV"] * out["J_L"], rel=1e-15, abs=SUBNORMAL_SLACK)
    # signs from the factors, never from a rounded product, and never -0.0
    assert np.sign(P) == np.sign(p["dV"]) * np.sign(out["J_L"])
    assert not any(v == 0 and np.signbit(v) for v in out.values())


# --- lead swap ---------------------------------------------------------------------------

@given(p=st.one_of(moderate_points(), wide_points()))
def test_lead_swap_mirrors_numbers_and_keeps_labels(p):
    a, b = _eval(p), _eval(mirror(p))
    # The arithmetic is symmetric under the swap, so the mirror is exact, bit for bit.
    assert b["J_L"] == -a["J_L"]
    assert b["Q_L"] == -a["Q_R"]
    assert b["Q_R"] == -a["Q_L"]
    assert b["P"] == a["P"]
    assert b["s"] == a["s"]
    assert b["p1"] == a["p1"]
    assert b["regime"] == a["regime"]
    assert b["machine"] == a["machine"]


@given(p=moderate_points())
def test_lead_swap_labels_for_the_pauli_model(p):
    """The Pauli model's numbers carry rounding, but labels away from J_L = 0 agree."""
    a = _eval(p)
    assume(abs(a["J_L"]) > 1e-6)
    # The engine forms eps - mu_v by plain subtraction: keep the signs of Q_L, Q_R unambiguous.
    energy = abs(p["eps"]) + abs(p["mu"]) + abs(p["dV"])
    assume(abs(p["eps"] - p["mu"] - p["dV"] / 2) > 1e-9 * energy)
    assume(abs(p["eps"] - p["mu"] + p["dV"] / 2) > 1e-9 * energy)
    b = _eval(mirror(p), PAULI)
    a2 = _eval(p, PAULI)
    assert b["regime"] == a2["regime"] == a["regime"]
    assert b["machine"] == a2["machine"] == a["machine"]


# --- eq. (9) -----------------------------------------------------------------------------

def _pauli_two_state(p):
    eps, T, dT, dV, mu = (np.float64(p[k]) for k in ("eps", "T", "dT", "dV", "mu"))
    gamma = np.zeros((2, 2, 2))
    gamma[0, 0, 1] = p["gamma_L"]
    gamma[1, 0, 1] = p["gamma_R"]
    return pauli.solve([0.0, eps], [0, 1], gamma, [mu + dV / 2, mu - dV / 2],
                       [T + dT / 2, T - dT / 2])


def _in_pauli_domain(p, J):
    """Where the Pauli difference of flows can carry ~10 significant digits.

    J_L from the engine is (flow in) - (flow out) through lead L; each flow is known to a
    few ulp, so J_L is good to ~ulp * flows / |J_L|. The flows are at most
    ~max(gamma_v) * min(f_L + f_R, 2 - f_L - f_R) and we require
    |J_L| >= 1e-4 gamma min(f_L + f_R, 2 - f_L - f_R) (no near-total cancellation of the
    leads' flows: that excludes a thin band around eps_r only) with rate ratios within 1e2,
    so the relative error stays below ~1e-16 * 1e2 * 1e4 = 1e-10 (1e-11 seen in practice).
    |x_v| <= 30 keeps every Fermi factor above 1e-13. The engine takes mu_v = mu +- dV/2 as
    given and forms eps - mu_v by plain subtraction, so eps must not sit on a lead's chemical
    potential (relative 1e-4 of the energy scale) for Q_L and Q_R to keep 10 digits.
    """
    TL, TR = p["T"] + p["dT"] / 2, p["T"] - p["dT"] / 2
    eL = p["eps"] - p["mu"] - p["dV"] / 2
    eR = p["eps"] - p["mu"] + p["dV"] / 2
    xL, xR = eL / TL, eR / TR
    if max(abs(xL), abs(xR)) > 30:
        return False
    energy = abs(p["eps"]) + abs(p["mu"]) + abs(p["dV"])
    if min(abs(eL), abs(eR)) < 1e-4 * energy:
        return False
    gL, gR = p["gamma_L"], p["gamma_R"]
    if not 0.01 <= gL / gR <= 100:
        return False
    fL, fR = 1 / (1 + np.exp(xL)), 1 / (1 + np.exp(xR))
    occupancy = min(fL + fR, 2 - fL - fR)
    return abs(J) >= 1e-4 * gL * gR / (gL + gR) * occupancy


@st.composite
def pauli_points(draw):
    p = draw(moderate_points())
    p["gamma_L"] = draw(st.floats(0.1, 10.0))
    p["gamma_R"] = draw(st.floats(0.1, 10.0))
    return p


@given(p=pauli_points())
def test_eq9_entropy_production_equals_heat_over_temperature(p):
    """Paper eq. (9), the Pauli engine's entropy_production, equals Q_R/T_R - Q_L/T_L."""
    out = _kernel(p)
    assume(_in_pauli_domain(p, out["J_L"]))
    TL, TR = p["T"] + p["dT"] / 2, p["T"] - p["dT"] / 2
    clausius = out["Q_R"] / TR - out["Q_L"] / TL
    res = _pauli_two_state(p)
    assert float(res.entropy_production) == pytest.approx(clausius, rel=1e-8, abs=0)
    assert float(res.entropy_production) == pytest.approx(out["s"], rel=1e-8, abs=0)


@given(p=pauli_points())
def test_pauli_model_equals_closed_form(p):
    ref = _kernel(p)
    assume(_in_pauli_domain(p, ref["J_L"]))
    got = _eval(p, PAULI)
    for name in ("J_L", "Q_L", "Q_R", "P", "p1"):
        assert float(got[name]) == pytest.approx(ref[name], rel=1e-10, abs=1e-300), name
    # s by eq. (9) sums flow x log(flow ratio) over both leads: the common log p0/p1 parts
    # cancel between the leads, costing ~ulp * |log(p0/p1)| / |x_R - x_L| more.
    assert float(got["s"]) == pytest.approx(ref["s"], rel=1e-8, abs=0)
    single = _eval(p)
    assert got["regime"] == single["regime"]
    assert got["machine"] == single["machine"]


def test_pauli_model_through_evaluate():
    """The registered "pauli" model runs through evaluate like any other."""
    eps = np.linspace(-20.0, 20.0, 41) + 0.25
    a = phasemap.evaluate("pauli", eps=eps, T=7.5, dT=5.0, dV=5.0)
    b = phasemap.evaluate(eps=eps, T=7.5, dT=5.0, dV=5.0)
    assert a.attrs["model"] == "pauli"
    np.testing.assert_allclose(a.J_L.values, b.J_L.values, rtol=1e-10)
    np.testing.assert_array_equal(a.regime.values, b.regime.values)
    np.testing.assert_array_equal(a.machine.values, b.machine.values)


def test_pauli_domain_is_not_empty():
    """Guard: the domain above keeps most of the moderate range (else the tests prove
    little)."""
    rng = np.random.default_rng(5)
    kept = 0
    for _ in range(400):
        T = rng.uniform(0.1, 50)
        p = {"eps": rng.uniform(-100, 100), "T": T, "dT": T * rng.uniform(-1.98, 1.98),
             "dV": rng.uniform(-50, 50), "mu": rng.uniform(-20, 20),
             "gamma_L": rng.uniform(0.1, 10), "gamma_R": rng.uniform(0.1, 10)}
        kept += _in_pauli_domain(p, _kernel(p)["J_L"])
    assert kept >= 300


# --- numpy == dask -----------------------------------------------------------------------

@st.composite
def grids_and_chunks(draw):
    n = [draw(st.integers(1, 6)) for _ in range(3)]
    T = draw(st.floats(0.5, 20.0))
    axes = {
        "eps": np.sort(draw(st.lists(st.floats(-60, 60), min_size=n[0], max_size=n[0],
                                     unique=True))),
        "dT": np.sort(draw(st.lists(st.floats(-1.9 * T, 1.9 * T), min_size=n[1],
                                    max_size=n[1], unique=True))),
        "dV": np.sort(draw(st.lists(st.floats(-30, 30), min_size=n[2], max_size=n[2],
                                    unique=True))),
    }
    names = draw(st.permutations(list(axes)))
    chunks = {d: draw(st.integers(1, len(axes[d]))) for d in names if draw(st.booleans())}
    if not chunks:
        chunks = {names[0]: 1}
    mu = draw(st.floats(-5, 5))
    return {name: axes[name] for name in names}, {"T": T, "mu": mu}, chunks


@settings(max_examples=25)
@given(case=grids_and_chunks(), dtype=st.sampled_from(["float64", "float32"]))
def test_dask_equals_numpy_bit_for_bit(case, dtype):
    axes, fixed, chunks = case
    eager = phasemap.evaluate(dtype=dtype, **axes, **fixed)
    lazy = phasemap.evaluate(dtype=dtype, chunks=chunks, **axes, **fixed)
    assert lazy.J_L.chunks is not None
    for d, c in chunks.items():
        assert lazy.J_L.chunksizes[d][0] == c
    assert lazy.J_L.dims == eager.J_L.dims == tuple(axes)
    computed = lazy.compute()
    for name in eager.data_vars:
        assert computed[name].dtype == eager[name].dtype
        assert np.array_equal(computed[name].values, eager[name].values,
                              equal_nan=computed[name].dtype.kind == "f"), name


def test_physics_kernel_and_fused_model_kernel_agree_bit_for_bit():
    """The model's fused kernel (physics + labels) must run exactly the physics' arithmetic
    (this also catches a stale numba cache of one of them)."""
    rng = np.random.default_rng(11)
    n = 20000
    T = 10 ** rng.uniform(-2, 2, n)
    p = {"eps": rng.normal(0, 50, n), "T": T, "dT": T * rng.uniform(-1.99, 1.99, n),
         "dV": rng.normal(0, 20, n), "mu": rng.normal(0, 5, n),
         "gamma_L": 10 ** rng.uniform(-3, 3, n), "gamma_R": 10 ** rng.uniform(-3, 3, n)}
    phys = single_level(*(p[k] for k in PARAMS))
    ds = phasemap.evaluate(**{k: xr.DataArray(v, dims="point") for k, v in p.items()})
    for name in FLOAT_OUTPUTS:
        assert np.array_equal(ds[name].values, phys[name]), name
    reg, mach = phasemap.classify(p["dT"], p["dV"], phys["J_L"], phys["Q_L"], phys["Q_R"],
                                  phys["P"])
    assert np.array_equal(ds.regime.values, reg)
    assert np.array_equal(ds.machine.values, mach)
