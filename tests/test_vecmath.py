"""The vectorisable exponentials and the row-block kernels built on them.

``exp_nonpos`` / ``expm1_nonpos`` are checked against mpmath (40 digits) to 2 ulp over the
whole non-positive range, gradual underflow included; the model gufuncs are checked to give
the same bits whatever the memory layout of their rows (contiguous, constant, strided,
reversed, any length around the block size).
"""

from __future__ import annotations

import math

import mpmath
import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasemap import models
from phasemap._rows import BLOCK
from phasemap.physics._vecmath import exp_nonpos, expm1_nonpos

ULP = 2.0 ** -52


@numba.njit
def _exp_rows(y, e, m):
    for i in range(y.shape[0]):
        e[i] = exp_nonpos(y[i])
        m[i] = expm1_nonpos(y[i])


def _ours(y):
    y = np.asarray(y, dtype=np.float64)
    e, m = np.empty_like(y), np.empty_like(y)
    _exp_rows(y, e, m)
    return e, m


def _ulps(value, exact):
    """|value - exact| in units of the spacing of doubles at ``exact`` (normal range)."""
    exact = mpmath.mpf(exact)
    if exact == 0:
        return 0.0 if value == 0 else math.inf
    _, expo = mpmath.frexp(abs(exact))
    spacing = mpmath.ldexp(1, max(int(expo) - 53, -1074))
    return float(abs(mpmath.mpf(value) - exact) / spacing)


def _sample():
    rng = np.random.default_rng(20261128)
    return -np.concatenate([
        10.0 ** rng.uniform(-300, 0, 400),   # tiny arguments: expm1 ~ y
        rng.uniform(0.0, 1.0, 400),          # around the first reduction boundaries
        rng.uniform(0.0, 60.0, 400),
        rng.uniform(60.0, 708.0, 400),
        rng.uniform(708.0, 745.2, 200),      # subnormal results
        [0.0, 5e-324, 0.34657359027997264, 0.5 * math.log(2) + 1e-17, math.log(2),
         708.3964185322641, 709.0, 744.44007192138, 745.1332191019411],
    ])


def test_exp_and_expm1_within_two_ulp_of_mpmath():
    mpmath.mp.dps = 40
    y = _sample()
    e, m = _ours(y)
    worst_e = worst_m = 0.0
    for yi, ei, mi in zip(y, e, m, strict=True):
        exact_e = mpmath.exp(mpmath.mpf(float(yi)))
        worst_e = max(worst_e, _ulps(float(ei), exact_e))
        if yi != 0.0:
            worst_m = max(worst_m, _ulps(float(mi), mpmath.expm1(mpmath.mpf(float(yi)))))
    assert worst_e <= 2.0, worst_e
    assert worst_m <= 2.0, worst_m


def test_edges_underflow_and_nan():
    y = np.array([0.0, -0.0, -745.2, -746.0, -800.0, -1e300, -np.inf, np.nan])
    e, m = _ours(y)
    assert e[0] == 1.0 and e[1] == 1.0 and m[0] == 0.0 and m[1] == 0.0
    assert np.all(e[2:7] == 0.0) and np.all(m[2:7] == -1.0)
    assert np.isnan(e[7]) and np.isnan(m[7])
    # the last subnormal step: e**-745.13 rounds to the smallest subnormal
    assert _ours([-745.13])[0][0] == 5e-324


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-745.0, max_value=0.0))
def test_exp_agrees_with_the_c_library(y):
    e, m = _ours([y])
    ref = math.exp(y)
    if ref >= 2.2250738585072014e-308:  # normal results: both within ~1 ulp of the truth
        assert abs(e[0] - ref) <= 3 * ULP * ref
    else:
        assert abs(e[0] - ref) <= 5e-324
    ref1 = math.expm1(y)
    assert abs(m[0] - ref1) <= 3 * ULP * abs(ref1)


def _layouts(n_rows, n, seed):
    """The same inputs as contiguous, strided and reversed rows."""
    rng = np.random.default_rng(seed)
    eps = rng.uniform(-40, 40, (n_rows, n))
    dV = rng.uniform(-20, 20, (n_rows, n))
    T = rng.uniform(1.0, 10.0, (n_rows, 1))
    dT = rng.uniform(-0.9, 0.9, (n_rows, 1)) * T
    return eps, T, dT, dV


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.sampled_from([1, 2, 7, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 5]),
       st.integers(0, 2**32 - 1))
def test_gufuncs_give_the_same_bits_for_every_row_layout(n_rows, n, seed):
    model = models.get_model("single_level")
    eps, T, dT, dV = _layouts(n_rows, n, seed)
    base = model(eps=eps, T=T, dT=dT, dV=dV)
    # strided rows (every other element of a wider array), reversed rows, transposed memory
    wide = np.empty((n_rows, 2 * n))
    wide[:, ::2] = eps
    variants = [
        dict(eps=wide[:, ::2], T=T, dT=dT, dV=dV),
        dict(eps=eps[:, ::-1][:, ::-1], T=T, dT=dT, dV=np.asfortranarray(dV)),
        dict(eps=eps, T=np.broadcast_to(T, eps.shape), dT=dT, dV=dV),
    ]
    for params in variants:
        got = model(**params)
        for name in base:
            assert got[name].tobytes() == base[name].tobytes(), name
    # outputs written through strided views (out= with non-contiguous rows)
    out_wide = {k: np.empty((n_rows, 2 * n), dtype=v.dtype) for k, v in base.items()}
    model.kernel(out={k: v[:, ::2] for k, v in out_wide.items()},
                 **(model.defaults() | dict(eps=eps, T=T, dT=dT, dV=dV)))
    for name in base:
        assert out_wide[name][:, ::2].tobytes() == base[name].tobytes(), name
    # the store's J_L-only kernel and the derivation from it agree with the fused kernel
    J = model.store_kernel(eps=eps, T=T, dT=dT, dV=dV, mu=0.0, gamma_L=2.0, gamma_R=2.0)["J_L"]
    assert J.tobytes() == base["J_L"].tobytes()
    derived = model.derive({"J_L": np.asfortranarray(J)}, eps=eps, T=T, dT=dT, dV=dV, mu=0.0,
                           gamma_L=2.0, gamma_R=2.0)
    for name, arr in derived.items():
        assert arr.tobytes() == base[name].tobytes(), name


@pytest.mark.parametrize("gamma", [(1e-300, 2.0), (2.0, 1e300), (3.0, 3.0)])
def test_extreme_rates_do_not_overflow_or_lose_the_sign(gamma):
    model = models.get_model("single_level")
    eps = np.linspace(-50, 50, 1001)
    out = model(eps=eps, T=1.0, dT=1.5, dV=0.3, gamma_L=gamma[0], gamma_R=gamma[1])
    J = out["J_L"]
    assert np.all(np.isfinite(J))
    num = (eps * 1.5 + 1.0 * 0.3)
    assert np.array_equal(np.sign(J), np.sign(num))
