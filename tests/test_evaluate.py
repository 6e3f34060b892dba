"""phasemap.evaluate: variables, CF attributes, dims, coordinates, laziness, dtypes."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from conftest import FLOAT_OUTPUTS, PARAMS, ComputeForbidden, no_dask_compute

import phasemap
from phasemap.evaluation import LAZY_POINTS, is_lazy
from phasemap.models import get_model
from phasemap.models import single_level_closed_form as single_level

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

OUTPUTS = (*FLOAT_OUTPUTS, "regime", "machine")


def test_variables_and_attributes():
    ds = phasemap.evaluate(eps=[-15.0, -5.0, 0.0, 5.0], dV=[0.0, 5.0], T=7.5, dT=5.0)
    model = get_model("single_level")
    assert list(ds.data_vars) == list(model.outputs)
    assert set(OUTPUTS) <= set(ds.data_vars)
    for name in model.quantities:
        assert ds[name].dtype == np.float64
        assert ds[name].attrs["units"], name
        assert ds[name].attrs["long_name"], name
    for name in PARAMS:                                    # every coordinate, scalar or not
        assert name in ds.coords
        assert ds[name].attrs["units"] in ("E0", "gamma0"), name
        assert ds[name].attrs["long_name"], name
    for name in ("regime", "machine"):
        v = ds[name]
        assert v.dtype == np.int8
        assert v.attrs["long_name"]
        table = phasemap.REGIME_LABELS if name == "regime" else phasemap.MACHINE_LABELS
        np.testing.assert_array_equal(v.attrs["flag_values"], np.arange(len(table)))
        assert np.asarray(v.attrs["flag_values"]).dtype == np.int8
        assert v.attrs["flag_meanings"].split() == list(table)
    assert ds.J_L.attrs["units"] == "gamma0"
    assert ds.Q_L.attrs["units"] == "E0 gamma0"
    assert ds.p1.attrs["units"] == "1"
    assert ds.attrs["model"] == "single_level"
    assert ds.attrs["model_version"] == phasemap.get_model("single_level").version
    assert ds.attrs["Conventions"].startswith("CF-")
    assert "Phys. Rev. E 111, 044112" in ds.attrs["references"]


def test_values_are_the_kernel_values():
    eps = np.linspace(-30.0, 30.0, 61)
    dV = np.array([-5.0, 0.0, 5.0])
    ds = phasemap.evaluate(eps=eps, dV=dV, T=7.5, dT=5.0, mu=0.5, gamma_L=1.0, gamma_R=3.0)
    ref = single_level(eps[:, None], 7.5, 5.0, dV[None, :], 0.5, 1.0, 3.0)
    for name in FLOAT_OUTPUTS:
        np.testing.assert_array_equal(ds[name].values, ref[name])
    reg, mach = phasemap.classify(5.0, dV[None, :], ref["J_L"], ref["Q_L"], ref["Q_R"],
                                  ref["P"])
    np.testing.assert_array_equal(ds.regime.values, reg)
    np.testing.assert_array_equal(ds.machine.values, mach)


@pytest.mark.parametrize("order", [("eps", "dV", "T"), ("T", "eps", "dV"),
                                   ("dV", "T", "eps")])
def test_dims_follow_call_order(order):
    values = {"eps": [-1.0, 0.0, 1.0, 2.0], "dV": [0.0, 5.0], "T": [5.0, 7.5, 10.0]}
    ds = phasemap.evaluate(**{k: values[k] for k in order}, dT=1.0)
    for name in OUTPUTS:
        assert ds[name].dims == order
    assert tuple(ds.sizes) == order
    for k in order:
        np.testing.assert_array_equal(ds[k].values, values[k])
        assert ds[k].dims == (k,)


def test_scalar_params_become_scalar_coords_and_defaults_are_recorded():
    ds = phasemap.evaluate(eps=[0.0, 1.0], T=7.5, dT=5, dV=np.float32(2.5))
    for name, value in {"T": 7.5, "dT": 5.0, "dV": 2.5, "mu": 0.0, "gamma_L": 2.0,
                        "gamma_R": 2.0}.items():
        assert ds[name].ndim == 0, name
        assert ds[name].dtype == np.float64
        assert float(ds[name]) == value
        assert name not in ds.dims
    assert ds.J_L.dims == ("eps",)


def test_all_scalars_give_a_zero_dimensional_dataset():
    ds = phasemap.evaluate(eps=-15.0, T=7.5, dT=5.0, dV=5.0)
    assert ds.J_L.dims == () and ds.regime.dims == ()
    assert ds.phasemap.labels().item() == "absolute_negative_mobility"


def test_pointwise_evaluation_with_shared_dim():
    eps = xr.DataArray([-15.0, -5.0, 0.0, 5.0], dims="point")
    dV = xr.DataArray([5.0, 5.0, -5.0, 0.0], dims="point")
    T = xr.DataArray([7.5, 3.0, 7.5, 1.0], dims="point")
    ds = phasemap.evaluate(eps=eps, dV=dV, T=T, dT=1.0)
    assert ds.J_L.dims == ("point",) and ds.sizes["point"] == 4
    assert ds.eps.dims == ("point",)
    np.testing.assert_array_equal(ds.eps.values, eps.values)
    for i in range(4):
        one = phasemap.evaluate(eps=float(eps[i]), dV=float(dV[i]), T=float(T[i]), dT=1.0)
        for name in OUTPUTS:
            assert ds[name].values[i] == one[name].values, (name, i)


def test_pointwise_mixed_with_an_axis():
    eps = xr.DataArray([-15.0, 5.0], dims="point")
    dT = xr.DataArray([5.0, 1.0], dims="point")
    ds = phasemap.evaluate(eps=eps, dT=dT, dV=[0.0, 2.5, 5.0], T=7.5)
    assert set(ds.J_L.dims) == {"point", "dV"}
    assert ds.J_L.sizes == {"point": 2, "dV": 3}
    ref = phasemap.evaluate(eps=5.0, dT=1.0, dV=2.5, T=7.5)
    assert ds.J_L.sel(dV=2.5).isel(point=1).item() == ref.J_L.item()


# --- laziness ----------------------------------------------------------------------------

def test_no_dask_compute_guard_works():
    """The guard used below really stops computations."""
    x = da.ones(10, chunks=5)
    with no_dask_compute(), pytest.raises(ComputeForbidden):
        x.sum().compute()


def test_large_grid_is_lazy_and_nothing_is_computed():
    eps = np.linspace(-40.0, 40.0, 3000)
    dV = np.linspace(-10.0, 10.0, 3000)
    T = [5.0, 7.5, 10.0]
    assert 3000 * 3000 * 3 > LAZY_POINTS
    with no_dask_compute():
        ds = phasemap.evaluate(eps=eps, dV=dV, T=T, dT=2.0)
        assert is_lazy(ds)
        for name in OUTPUTS:
            assert isinstance(ds[name].data, da.Array), name
        assert ds.J_L.shape == (3000, 3000, 3)
        assert ds.J_L.dims == ("eps", "dV", "T")
        # coordinates and attributes are there without computing
        np.testing.assert_array_equal(ds.eps.values, eps)
        assert ds.regime.attrs["flag_meanings"].split()[0] == "equilibrium"
        point = ds.isel(eps=1234, dV=2345, T=1)
        assert isinstance(point.J_L.data, da.Array)
    got = point.compute()
    ref = single_level(eps[1234], 7.5, 2.0, dV[2345])
    for name in FLOAT_OUTPUTS:
        assert float(got[name]) == float(ref[name]), name
    reg, mach = phasemap.classify(2.0, dV[2345], ref["J_L"], ref["Q_L"], ref["Q_R"])
    assert int(got.regime) == int(reg) and int(got.machine) == int(mach)


def test_explicit_chunks_make_a_small_grid_lazy():
    ds = phasemap.evaluate(eps=np.linspace(-5, 5, 11), dV=[0.0, 1.0], chunks={"eps": 4})
    assert is_lazy(ds)
    assert ds.J_L.chunksizes["eps"] == (4, 4, 3)
    assert ds.J_L.chunksizes["dV"] == (2,)
    eager = phasemap.evaluate(eps=np.linspace(-5, 5, 11), dV=[0.0, 1.0])
    assert not is_lazy(eager)
    xr.testing.assert_identical(ds.compute(), eager)


def test_dask_backed_inputs_stay_lazy():
    eps = xr.DataArray(np.linspace(-20, 20, 101), dims="point").chunk({"point": 25})
    ds = phasemap.evaluate(eps=eps, T=7.5, dT=5.0, dV=5.0)
    assert is_lazy(ds)
    eager = phasemap.evaluate(eps=eps.compute(), T=7.5, dT=5.0, dV=5.0)
    for name in OUTPUTS:
        np.testing.assert_array_equal(ds[name].values, eager[name].values)


# --- dtype -------------------------------------------------------------------------------

@pytest.mark.parametrize("lazy", [False, True])
def test_float32_outputs(lazy):
    kw = {"eps": np.linspace(-30, 30, 121), "dV": [-5.0, 5.0], "T": 7.5, "dT": 5.0}
    ds = phasemap.evaluate(dtype="float32", chunks={"eps": 50} if lazy else None, **kw)
    ref = phasemap.evaluate(**kw)
    for name in FLOAT_OUTPUTS:
        assert ds[name].dtype == np.float32, name
        np.testing.assert_array_equal(ds[name].values, ref[name].values.astype(np.float32))
        assert ds[name].attrs["units"] == ref[name].attrs["units"]
    for name in ("regime", "machine"):
        assert ds[name].dtype == np.int8
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
    assert ds.eps.dtype == np.float64                       # coordinates stay exact


@pytest.mark.parametrize("dtype", ["int8", "float16", "complex-ish", None])
def test_bad_dtype_is_a_parameter_error(dtype):
    with pytest.raises(phasemap.ParameterError) as info:
        phasemap.evaluate(eps=[0.0], dtype=dtype)
    assert info.value.param == "dtype"
    assert "float32" in str(info.value) and str(dtype) in str(info.value)


def test_model_objects_and_names_are_accepted():
    m = phasemap.get_model("single_level")
    a = phasemap.evaluate(m, eps=[-1.0, 1.0], dT=1.0)
    b = phasemap.evaluate("single_level", eps=[-1.0, 1.0], dT=1.0)
    xr.testing.assert_identical(a, b)
    assert set(phasemap.available_models()) >= {"single_level", "pauli"}


def test_string_and_multidimensional_inputs_are_parameter_errors():
    with pytest.raises(phasemap.ParameterError, match="eps"):
        phasemap.evaluate(eps="zero")
    with pytest.raises(phasemap.ParameterError, match="eps"):
        phasemap.evaluate(eps=np.zeros((2, 2)))
