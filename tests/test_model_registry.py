"""A model states its parameters and outputs once; every layer reads them from the registry.

The model registered here exists only in this test: it has a parameter (``lam``) and outputs
(``n``, ``flag``) that no layer of phasemap names, and it must evaluate, be stored, be read back
and carry its own CF metadata with no change to the library.
"""

from __future__ import annotations

import numpy as np
import pytest

import phasemap
from phasemap import GridSpec
from phasemap.errors import ParameterError
from phasemap.models import Output, Parameter, get_model, register
from phasemap.store import Store, compute


def _toy_kernel(eps, T, lam):
    """A level with occupation n = 1/(1 + e^{(eps - lam)/T}) and a sign flag."""
    x = (eps - lam) / T
    n = np.where(x >= 0, np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))),
                 1 / (1 + np.exp(-np.abs(x))))
    return {"n": n, "Q": (eps - lam) * n, "flag": (x > 0).astype(np.int8)}


@pytest.fixture(scope="module")
def toy():
    from phasemap.models import Model, available_models

    if "toy_occupation" in available_models():
        return get_model("toy_occupation")
    return register(Model(
        name="toy_occupation", version="1", description="occupation of a level (test model)",
        parameters=(Parameter("eps", "E0", 0.0),
                    Parameter("T", "E0", 1.0, lower=0.0, lower_open=True),
                    Parameter("lam", "E0", 0.5, lower=-10, upper=10, symbol="λ",
                              description="reference energy")),
        kernel=_toy_kernel,
        outputs=(Output("n", units="1", long_name="mean occupation", signed=False),
                 Output("Q", units="E0", long_name="energy above lam times n"),
                 Output("flag", long_name="above lam", dtype="i1",
                        flags=("below", "above"))),
        references="a test of phasemap's registry",
    ))


def test_evaluate_takes_names_dtypes_and_attrs_from_the_model(toy):
    ds = phasemap.evaluate(model="toy_occupation", eps=[-1.0, 0.0, 2.0], T=0.5, lam=1.0)
    assert list(ds.data_vars) == ["n", "Q", "flag"]
    assert ds.flag.dtype == np.int8 and ds.n.dtype == np.float64
    np.testing.assert_allclose(ds.n, 1 / (1 + np.exp((np.array([-1, 0, 2]) - 1.0) / 0.5)),
                               rtol=1e-15)
    assert ds.n.attrs["long_name"] == "mean occupation" and ds.n.attrs["units"] == "1"
    assert ds.flag.attrs["flag_meanings"] == "below above"
    assert list(ds.flag.attrs["flag_values"]) == [0, 1]
    assert ds.lam.attrs["symbol"] == "λ" and ds.lam.attrs["long_name"] == "reference energy"
    assert ds.attrs["references"] == "a test of phasemap's registry"


def test_validation_uses_the_models_parameters(toy):
    with pytest.raises(ParameterError) as e:
        phasemap.evaluate(model="toy_occupation", lam=11.0)
    assert e.value.param == "lam" and "10" in e.value.allowed
    with pytest.raises(ParameterError) as e:
        phasemap.evaluate(model="toy_occupation", dV=1.0)
    assert e.value.param == "dV"


def test_store_round_trip_of_a_user_model(toy, tmp_path):
    spec = GridSpec.from_dict({"model": "toy_occupation", "params": {"T": 0.5},
                               "axes": {"eps": {"start": -3, "stop": 3, "num": 61},
                                        "lam": [0.0, 1.0]}})
    store = Store(tmp_path / "store")
    ds = compute(spec, store)
    ref = phasemap.evaluate_spec(spec)
    for name in ("n", "Q", "flag"):
        assert ds[name].dtype == ref[name].dtype
        assert np.asarray(ds[name]).tobytes() == np.asarray(ref[name]).tobytes(), name
        assert ds[name].attrs["long_name"] == ref[name].attrs["long_name"]
    again = compute(spec, store)
    assert again.attrs["points_computed"] == 0


def test_output_declarations_are_checked():
    with pytest.raises(ValueError, match="needs flags"):
        Output("lbl", dtype="i1")
    with pytest.raises(ValueError, match="declare it"):
        get_model("single_level").__class__(
            name="bad", version="1", description="", parameters=(), kernel=_toy_kernel,
            outputs=("no_such_output",))
    sl = get_model("single_level")
    assert sl.dtype_of("regime") == np.int8
    assert sl.dtype_of("J_L", "float32") == np.float32
    assert sl.labels == ("regime", "machine", "merit_flag")
    with pytest.raises(ParameterError) as e:
        sl.output("nope")
    assert e.value.param == "output"


def test_a_user_model_through_the_cli_and_http(toy, tmp_path):
    """Computed into the store, read back by `phasemap query` and GET /api/grids/{id}/point,
    and described by GET /api/models, with no change to the library."""
    import json

    import yaml
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from phasemap.cli import app as cli
    from phasemap.service import ServiceConfig, create_app

    spec = {"model": "toy_occupation", "name": "toy", "params": {"T": 0.5},
            "axes": {"eps": {"start": -2, "stop": 2, "num": 41}, "lam": [0.0, 1.0]}}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(spec))
    store = tmp_path / "store"
    runner = CliRunner()
    res = runner.invoke(cli, ["compute", str(path), "--store", str(store)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["query", str(path), "--store", str(store), "--at",
                              "eps=1.5,lam=1.0", "--json"])
    assert res.exit_code == 0, res.output
    record = json.loads(res.stdout)
    truth = 1 / (1 + np.exp((1.5 - 1.0) / 0.5))
    assert record["n"] == pytest.approx(truth, rel=1e-14) and record["flag"] == "above"

    rid = phasemap.compute(spec, store=str(store)).attrs["dataset_id"]
    app = create_app(ServiceConfig(store=str(store)), explorer=False)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        r = c.get(f"/api/grids/{rid}/point", params={"eps": -0.5, "lam": 0.0})
        assert r.status_code == 200, r.text
        assert r.json()["n"] == pytest.approx(1 / (1 + np.exp(-1.0)), rel=1e-14)
        assert r.json()["flag"] == "below"
        r = c.get(f"/api/grids/{rid}/point", params={"eps": -0.5, "lam": 0.0, "dV": 1})
        assert r.status_code == 422 and "lam" in r.text
        described = c.get("/api/models").json()["toy_occupation"]
        assert [p["name"] for p in described["parameters"]] == ["eps", "T", "lam"]
        assert {o["name"]: o.get("flags") for o in described["outputs"]}["flag"] == \
            ["below", "above"]


# --- a user's Pauli model in a few lines (docs/models.md) ------------------------------------

def _two_orbitals():
    from phasemap.models import available_models
    from phasemap.pauli_model import TWO_LEAD_PARAMETERS, pauli_model

    if "two_orbitals" in available_models():
        return get_model("two_orbitals")

    def energies(eps, delta, **_):
        return [0.0, eps, eps + delta]          # empty, orbital a, orbital b

    def rates(gamma_L, gamma_R, **_):
        return {("L", 0, 1): gamma_L, ("R", 0, 1): gamma_R,
                ("L", 0, 2): gamma_L, ("R", 0, 2): gamma_R}

    return register(pauli_model(
        "two_orbitals", version="1", description="two orbitals, no double occupancy",
        charges=[0, 1, 1], energies=energies, rates=rates,
        parameters=(*TWO_LEAD_PARAMETERS, Parameter("delta", "E0", 1.0, lower=0.0)),
        extra={Output("n_b", long_name="occupation of orbital b", signed=False):
               lambda result, params: result.p[..., 2]}))


def test_pauli_model_factory_reproduces_known_limits():
    _two_orbitals()
    eps = np.linspace(-30, 30, 61)
    common = {"T": 7.5, "dT": 5.0, "dV": 5.0, "gamma_L": 2.0, "gamma_R": 0.5}
    far = phasemap.evaluate(model="two_orbitals", eps=eps, delta=1e4, **common)
    single = phasemap.evaluate(model="single_level", eps=eps, **common)
    np.testing.assert_allclose(far.J_L, single.J_L, rtol=1e-12)
    assert (far.regime.values == single.regime.values).all()
    # two degenerate orbitals with no double occupancy: the U -> infinity Anderson formula
    deg = phasemap.evaluate(model="two_orbitals", eps=eps, delta=0.0, **common)
    TL, TR = 7.5 + 2.5, 7.5 - 2.5
    fL, fR = 1 / (1 + np.exp((eps - 2.5) / TL)), 1 / (1 + np.exp((eps + 2.5) / TR))
    expected = 2 * 2.0 * 0.5 * (fL - fR) / (2.0 * (1 + fL) + 0.5 * (1 + fR))
    np.testing.assert_allclose(deg.J_L, expected, rtol=1e-12)
    assert ((deg.n_b > 0) & (deg.n_b < 0.5)).all()  # two orbitals share one electron
    assert deg.n_b.attrs["long_name"] == "occupation of orbital b"
    assert (deg.s >= 0).all()
