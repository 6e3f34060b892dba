"""The validity flag of sequential tunnelling (issue 13, section 4; docs/model.md, "Validity").

``valid`` is 1 where the level broadening gamma_L + gamma_R is at most 0.1 min(T_L, T_R), 0
elsewhere; it is a coordinate computed from the parameters, so evaluate and the store agree.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from conftest import no_dask_compute

import phasemap
from phasemap.evaluation import add_validity
from phasemap.models import BROADENING_FACTOR


@pytest.mark.parametrize("model", ["single_level", "pauli"])
def test_issue_example_is_flagged(model):
    """T = 1e-3 with gamma = 1 was accepted silently: it is outside the domain."""
    ds = phasemap.evaluate(model, eps=[0.0], T=1e-3, gamma_L=1.0, gamma_R=1.0)
    assert ds.valid.dtype == np.int8
    assert int(ds.valid) == 0
    ok = phasemap.evaluate(model, eps=[0.0], T=1e-3, gamma_L=2e-5, gamma_R=3e-5)
    assert int(ok.valid) == 1


def test_the_colder_lead_decides_and_the_boundary_is_inclusive():
    T, dT = 7.5, 5.0                        # T_L = 10, T_R = 5: the bound is 0.5
    assert BROADENING_FACTOR == 0.1
    g = np.array([0.2, 0.25, 0.2500001, 0.3])
    ds = phasemap.evaluate(eps=[0.0], T=T, dT=dT, gamma_L=g, gamma_R=0.25)
    assert ds.valid.dims == ("gamma_L",)
    assert list(ds.valid.values) == [1, 1, 0, 0]
    mirrored = phasemap.evaluate(eps=[0.0], T=T, dT=-dT, gamma_L=g, gamma_R=0.25)
    np.testing.assert_array_equal(mirrored.valid.values, ds.valid.values)


def test_flag_attributes_and_dims():
    ds = phasemap.evaluate(eps=[-1.0, 1.0], dV=[0.0, 5.0], T=[1.0, 100.0], dT=0.5,
                           gamma_L=0.5, gamma_R=0.5)
    v = ds.valid
    assert "valid" in ds.coords and "valid" not in ds.data_vars  # outputs unchanged
    assert v.dims == ("T",)                   # only the dims of the parameters it uses
    assert list(v.values) == [0, 1]
    np.testing.assert_array_equal(v.attrs["flag_values"], np.array([0, 1], dtype=np.int8))
    assert v.attrs["flag_meanings"].split() == ["approximation_not_valid",
                                                "approximation_valid"]
    assert "0.1 min(T_L, T_R)" in v.attrs["comment"]


def test_pointwise_and_lazy():
    eps = xr.DataArray([-1.0, 0.0, 1.0], dims="point")
    T = xr.DataArray([1e-3, 7.5, 50.0], dims="point")
    ds = phasemap.evaluate(eps=eps, T=T, gamma_L=0.1, gamma_R=0.1)
    assert ds.valid.dims == ("point",) and list(ds.valid.values) == [0, 1, 1]
    with no_dask_compute():
        lazy = phasemap.evaluate(eps=np.linspace(-5, 5, 64), T=[0.5, 7.5], gamma_L=0.2,
                                 gamma_R=0.2, chunks={"eps": 16})
    assert list(lazy.valid.values) == [0, 1]


def test_add_validity_derives_the_same_flag_from_coordinates():
    """What the store does on read: a dataset without ``valid`` gets the same one back."""
    ds = phasemap.evaluate(eps=[0.0, 1.0], T=[0.5, 7.5, 40.0], dT=0.25, gamma_L=0.3)
    bare = ds.drop_vars("valid")
    again = add_validity(bare, "single_level")
    xr.testing.assert_identical(again.valid, ds.valid)


def test_labels_do_not_depend_on_the_rate_scale():
    """Every current of sequential tunnelling is proportional to the rates, so the paper's
    maps (gamma = 1: outside the domain at T = 7.5) hold for the same device with rates
    small enough to be inside it."""
    eps = np.linspace(-30.0, 30.0, 241)
    paper = phasemap.evaluate(eps=eps, dV=[-5.0, 0.0, 5.0], T=7.5, dT=5.0)
    weak = phasemap.evaluate(eps=eps, dV=[-5.0, 0.0, 5.0], T=7.5, dT=5.0, gamma_L=0.125,
                             gamma_R=0.125)
    assert int(paper.valid) == 0 and int(weak.valid) == 1
    for lens in ("regime", "machine"):
        np.testing.assert_array_equal(paper[lens].values, weak[lens].values)
    np.testing.assert_allclose(weak.J_L.values * 16, paper.J_L.values, rtol=1e-14, atol=0)
