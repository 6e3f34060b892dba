"""Grid specs (YAML/JSON), lattice coordinates and the one validation path.

Every bad input is a :class:`phasemap.ParameterError` (also a ``ValueError``) whose message
names the parameter, the value and what is allowed, and ``phasemap.evaluate`` raises the same
error for the same bad input.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import phasemap
from phasemap import GridSpec, ParameterError, RangeAxis
from phasemap.errors import GridTooLargeError
from phasemap.models import get_model

SPEC = {
    "model": "single_level",
    "params": {"T": 7.5, "mu": 0.25},
    "axes": {
        "eps": {"start": -40, "stop": 40, "num": 801},
        "dV": [0.0, 2.5, 5.0],
        "gamma_L": {"start": 0.01, "stop": 100, "num": 5, "scale": "log"},
        "dT": 5.0,
    },
    "chunks": {"eps": 128},
}


def _check_spec(spec: GridSpec):
    assert spec.model == "single_level"
    assert spec.dims == ("eps", "dV", "gamma_L", "dT")           # axes order
    assert spec.shape == (801, 3, 5, 1)
    assert spec.size == 801 * 3 * 5
    c = spec.coords()
    np.testing.assert_array_equal(c["eps"], np.arange(-400, 401) / 10)
    assert c["eps"][400] == 0.0 and c["eps"][-1] == 40.0 and c["eps"][1] == -39.9
    np.testing.assert_array_equal(c["dV"], [0.0, 2.5, 5.0])
    np.testing.assert_allclose(c["gamma_L"], [0.01, 0.1, 1.0, 10.0, 100.0], rtol=1e-15)
    np.testing.assert_array_equal(c["dT"], [5.0])
    assert spec.params == {"T": 7.5, "mu": 0.25}
    assert spec.chunks == {"eps": 128}


# --- reading specs -----------------------------------------------------------------------

def test_from_yaml(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    _check_spec(GridSpec.from_yaml(path))
    _check_spec(GridSpec.load(path))


def test_from_handwritten_yaml(tmp_path):
    path = tmp_path / "fig8.yml"
    path.write_text(
        "model: single_level\n"
        "params:\n"
        "  T: 7.5\n"
        "  mu: 0.25\n"
        "axes:\n"
        "  eps: {start: -40, stop: 40, num: 801}\n"
        "  dV: [0.0, 2.5, 5.0]\n"
        "  gamma_L: {start: 0.01, stop: 100, num: 5, scale: log}\n"
        "  dT: 5.0\n"
        "chunks:\n"
        "  eps: 128\n")
    _check_spec(GridSpec.load(path))


def test_from_json(tmp_path):
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(SPEC))
    _check_spec(GridSpec.from_json(path))
    _check_spec(GridSpec.load(path))
    _check_spec(GridSpec.from_json(json.dumps(SPEC)))      # JSON text is accepted too


def test_params_and_chunks_are_optional_and_dims_follow_axes_order(tmp_path):
    path = tmp_path / "min.yaml"
    path.write_text("axes:\n  dV: [0.0, 5.0]\n  eps: {start: -1, stop: 1, num: 3}\n")
    spec = GridSpec.load(path)
    assert spec.model == "single_level"
    assert spec.params == {} and spec.chunks is None
    assert spec.dims == ("dV", "eps")
    ds = phasemap.evaluate_spec(spec)
    assert ds.J_L.dims == ("dV", "eps")
    ref = phasemap.evaluate(dV=[0.0, 5.0], eps=[-1.0, 0.0, 1.0])
    for name in ref.data_vars:
        np.testing.assert_array_equal(ds[name].values, ref[name].values)


def test_evaluate_spec_honours_params_and_chunks():
    spec = GridSpec.from_dict(SPEC)
    ds = phasemap.evaluate_spec(spec)
    assert ds.J_L.dims == spec.dims
    assert float(ds.T) == 7.5 and float(ds.mu) == 0.25
    assert ds.J_L.chunks is not None and ds.J_L.chunksizes["eps"][0] == 128
    point = ds.isel(eps=250, dV=2, gamma_L=1, dT=0).compute()
    ref = phasemap.evaluate(eps=float(point.eps), dV=5.0, gamma_L=float(point.gamma_L),
                            dT=5.0, T=7.5, mu=0.25)
    assert float(point.J_L) == float(ref.J_L)


def test_round_trip_through_to_dict(tmp_path):
    spec = GridSpec.from_dict(SPEC)
    again = GridSpec.from_dict(spec.to_dict())
    assert again.dims == spec.dims
    for d in spec.dims:
        np.testing.assert_array_equal(again.axis_values(d), spec.axis_values(d))


def test_missing_spec_file_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterError, match="spec"):
        GridSpec.load(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="spec"):
        GridSpec.from_yaml(bad)


# --- lattices: overlapping requests share coordinates bit for bit ------------------------

def test_overlapping_linear_axes_share_values_exactly():
    a = RangeAxis(start=-40, stop=40, num=801).values()
    b = RangeAxis(start=-40, stop=50, num=901).values()
    c = RangeAxis(start=-30, stop=40, num=701).values()
    d = RangeAxis(start=-39.9, stop=-0.1, num=399).values()
    assert np.array_equal(a, b[:801])
    assert np.array_equal(a[100:], c)
    assert np.array_equal(a[1:400], d)
    # and the lattice values are the decimal ones, not accumulated steps
    assert a[1] == -39.9 and a[399] == -0.1 and a[400] == 0.0 and a[-2] == 39.9


def test_overlapping_log_axes_share_values_exactly():
    a = RangeAxis(start=1e-2, stop=1e2, num=41, scale="log").values()
    b = RangeAxis(start=1e-1, stop=1e3, num=41, scale="log").values()
    assert np.array_equal(a[10:], b[:31])
    assert a[0] == 0.01 and a[20] == 1.0 and a[-1] == 100.0


@settings(max_examples=100)
@given(den=st.sampled_from([1, 2, 3, 4, 5, 7, 8, 10, 20, 25, 100, 1000]),
       num=st.integers(1, 7), k0=st.integers(-500, 500), n1=st.integers(2, 300),
       shift=st.integers(0, 200), n2=st.integers(2, 300))
def test_lattice_values_are_independent_of_the_window(den, num, k0, n1, shift, n2):
    """Two windows of the same lattice (step num/den) agree bit for bit where they overlap."""
    step = num / den
    first = RangeAxis(start=k0 * step, stop=(k0 + n1 - 1) * step, num=n1)
    second = RangeAxis(start=(k0 + shift) * step, stop=(k0 + shift + n2 - 1) * step, num=n2)
    a, b = first.values(), second.values()
    overlap = min(n1 - shift, n2)
    if overlap > 0:
        assert np.array_equal(a[shift:shift + overlap], b[:overlap])
    # the coordinate of lattice point k is exactly k * num / den, correctly rounded
    k = k0 + np.arange(n1)
    np.testing.assert_array_equal(a, (k * num) / den)


# --- validation errors -------------------------------------------------------------------

def _spec_error(data) -> ParameterError:
    with pytest.raises(ParameterError) as info:
        GridSpec.from_dict(data)
    err = info.value
    assert isinstance(err, ValueError)
    return err


def _eval_error(**kw) -> ParameterError:
    with pytest.raises(ParameterError) as info:
        phasemap.evaluate(**kw)
    assert isinstance(info.value, ValueError)
    return info.value


def _assert_message(err, *parts):
    msg = str(err)
    for part in parts:
        assert part in msg, (part, msg)
    assert "expected" in msg and err.allowed and err.allowed in msg


BAD_INPUTS = [
    # id, spec dict, evaluate kwargs, substrings the message must contain
    ("T_R<=0", {"params": {"T": 1.0, "dT": 2.0}, "axes": {"eps": [0.0, 1.0]}},
     {"T": 1.0, "dT": 2.0, "eps": [0.0, 1.0]}, ["dT", "'dT': 2.0", "|dT| < 2 T"]),
    ("T_R<=0 at every grid point", {"axes": {"T": [1.0, 1.4], "dT": [3.0, 4.0]}},
     {"T": [1.0, 1.4], "dT": [3.0, 4.0]}, ["dT", "'T': 1.0", "'dT': 3.0", "|dT| < 2 T"]),
    ("T_L<=0", {"params": {"T": 1.0, "dT": -2.5}, "axes": {"eps": [0.0]}},
     {"T": 1.0, "dT": -2.5, "eps": [0.0]}, ["dT", "-2.5", "|dT| < 2 T"]),
    ("T<=0", {"params": {"T": 0.0, "dT": 0.0}, "axes": {"eps": [0.0]}},
     {"T": 0.0, "dT": 0.0, "eps": [0.0]}, ["T=0.0", "(0, inf)"]),
    ("nan in axis", {"axes": {"eps": [0.0, float("nan")]}},
     {"eps": [0.0, float("nan")]}, ["eps=nan", "finite"]),
    ("inf param", {"params": {"dV": float("inf")}, "axes": {"eps": [0.0]}},
     {"dV": float("inf"), "eps": [0.0]}, ["dV=inf", "finite"]),
    ("negative rate", {"params": {"gamma_R": -1.0}, "axes": {"eps": [0.0]}},
     {"gamma_R": -1.0, "eps": [0.0]}, ["gamma_R=-1.0", "(0, inf)"]),
    ("unsorted", {"axes": {"eps": [1.0, 0.0]}}, {"eps": [1.0, 0.0]},
     ["eps=[1.0, 0.0]", "increasing"]),
    ("duplicated", {"axes": {"eps": [0.0, 0.5, 0.5]}}, {"eps": [0.0, 0.5, 0.5]},
     ["eps=0.5", "duplicates"]),
    ("unknown param", {"params": {"foo": 1.0}, "axes": {"eps": [0.0]}},
     {"foo": 1.0, "eps": [0.0]}, ["foo=1.0", "gamma_R"]),
    ("unknown axis", {"axes": {"foo": [0.0, 1.0]}}, {"foo": [0.0, 1.0]},
     ["foo=[0.0, 1.0]", "a parameter of model 'single_level'"]),
    ("unknown model", {"model": "nope", "axes": {"eps": [0.0]}},
     {"model": "nope", "eps": [0.0]}, ["model=nope", "single_level", "pauli"]),
]


@pytest.mark.parametrize(("spec", "kwargs", "parts"), [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_same_error_from_spec_and_evaluate(spec, kwargs, parts):
    e1 = _spec_error(spec)
    e2 = _eval_error(**kwargs)
    for err in (e1, e2):
        _assert_message(err, *parts)
    assert type(e1) is type(e2)
    assert e1.param == e2.param
    assert e1.allowed == e2.allowed
    assert str(e1) == str(e2)


def test_axes_crossing_a_joint_constraint_are_a_grid_with_a_masked_region():
    """A (T, dT) plane is a valid grid (the store masks |dT| >= 2T, issue #15); evaluating
    it in memory, where nothing masks, still refuses the invalid points."""
    spec = GridSpec.from_dict({"axes": {"T": [1.0, 5.0], "dT": [0.0, 3.0]}})
    assert spec.shape == (2, 2)
    err = _eval_error(T=[1.0, 5.0], dT=[0.0, 3.0])
    _assert_message(err, "dT", "'T': 1.0", "'dT': 3.0", "|dT| < 2 T")


def test_log_axis_with_non_positive_start():
    err = _spec_error({"axes": {"gamma_L": {"start": 0, "stop": 10, "num": 5,
                                            "scale": "log"}}})
    _assert_message(err, "gamma_L", "'start': 0.0", "start > 0")
    err = _spec_error({"axes": {"T": {"start": -1, "stop": 10, "num": 5, "scale": "log"}}})
    _assert_message(err, "axes.T", "-1.0", "log axis")


def test_range_axis_errors():
    _assert_message(_spec_error({"axes": {"eps": {"start": 1, "stop": 0, "num": 3}}}),
                    "axes.eps", "'start': 1.0", "stop > start")
    _assert_message(_spec_error({"axes": {"eps": {"start": 0, "stop": 1, "num": 0}}}),
                    "eps", "num", "0")
    _assert_message(_spec_error({"axes": {"eps": {"start": 0, "stop": 1}}}), "eps", "num")
    _assert_message(_spec_error({"axes": {"eps": [0.0]}, "bogus": 1}), "bogus")
    _assert_message(_spec_error({"params": {"eps": 1.0}, "axes": {"eps": [0.0]}}),
                    "params.eps", "1.0", "also an axis")


def test_chunks_for_an_unknown_dim():
    err = _spec_error({"axes": {"eps": [0.0, 1.0]}, "chunks": {"foo": 2}})
    _assert_message(err, "chunks.foo", "=2", "eps")
    err2 = _eval_error(eps=[0.0, 1.0], chunks={"foo": 2})
    _assert_message(err2, "chunks.foo", "=2", "eps")
    assert err2.param == err.param
    _assert_message(_spec_error({"axes": {"eps": [0.0, 1.0]}, "chunks": {"eps": 0}}),
                    "chunks.eps", "=0", "positive integer")
    _assert_message(_eval_error(eps=[0.0, 1.0], chunks={"eps": 0}),
                    "chunks.eps", "=0", "positive integer")


BIG = {"axes": {"eps": {"start": 0, "stop": 1, "num": 200},
                "dV": {"start": 0, "stop": 1, "num": 100}}}


def _assert_size_message(err, points, limit):
    assert isinstance(err, GridTooLargeError)
    model = get_model("single_level")             # every output: float64 quantities, int8 labels
    nbytes = points * sum(model.dtype_of(o).itemsize for o in model.outputs)
    _assert_message(err, "grid", f"{points:,} points", f"{nbytes:,} bytes", f"{limit:,}",
                    "PHASEMAP_MAX_POINTS", "max_points")


def test_size_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("PHASEMAP_MAX_POINTS", "19999")
    _assert_size_message(_spec_error(BIG), 20000, 19999)
    _assert_size_message(_eval_error(eps=np.arange(200.0), dV=np.arange(100.0)), 20000, 19999)
    monkeypatch.setenv("PHASEMAP_MAX_POINTS", "20000")
    GridSpec.from_dict(BIG)                          # exactly at the limit is fine
    phasemap.evaluate(eps=np.arange(200.0), dV=np.arange(100.0))


def test_size_limit_by_argument():
    _assert_size_message(_eval_error(eps=np.arange(200.0), dV=np.arange(100.0),
                                     max_points=1000), 20000, 1000)
    spec = GridSpec.from_dict(BIG)
    with pytest.raises(GridTooLargeError) as info:
        spec.check(max_points=1000)
    _assert_size_message(info.value, 20000, 1000)
    spec.check(max_points=20000)


def test_default_size_limit_rejects_huge_grids_without_allocating():
    huge = {"axes": {"eps": {"start": 0, "stop": 1, "num": 10**6},
                     "dV": {"start": 0, "stop": 1, "num": 10**5}}}
    err = _spec_error(huge)
    assert isinstance(err, GridTooLargeError)
    assert "100,000,000,000 points" in str(err) and "TiB" in str(err)


def test_bad_environment_limit(monkeypatch):
    monkeypatch.setenv("PHASEMAP_MAX_POINTS", "lots")
    err = _eval_error(eps=[0.0])
    _assert_message(err, "PHASEMAP_MAX_POINTS", "lots")


def test_canonical_axis_values_are_exact_decimals():
    spec = GridSpec.from_dict({"axes": {"eps": {"start": -1, "stop": 1, "num": 21}}})
    v = spec.axis_values("eps")
    assert [float(x) for x in v] == [round(-1 + 0.1 * i, 10) for i in range(21)]
    assert all(math.isfinite(x) for x in v)
