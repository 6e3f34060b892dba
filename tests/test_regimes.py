"""The regime taxonomy of docs/regimes.md, checked exactly.

The paper's Figs. 8 and 9 sequences along eps (dense grid and single points), AT for dV = 0,
equilibrium, the reversible level, the machine lens, the CF flag attributes, the accessor,
and every rule of both tables on hand-built inputs to :func:`phasemap.classify`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import phasemap
from phasemap.errors import ParameterError

# The tables of docs/regimes.md, in order.
REGIME_TABLE = (
    "equilibrium",
    "reversible",
    "anomalous_thermodiffusion",
    "absolute_negative_mobility",
    "reverse_heat_transport",
    "heat_engine",
    "refrigerator",
    "joule_heating",
    "conventional",
    "undefined",
)
MACHINE_TABLE = ("idle", "heat_engine", "conductor", "refrigerator", "heater", "accelerator",
                 "undefined")

STEP = 0.01
# Grid points at half steps: no point falls on a boundary (+-2.5, +-7.5) itself.
EPS_GRID = np.round(np.arange(-3000, 3000) * STEP + STEP / 2, 10)

FIG8 = [(-np.inf, -7.5, "absolute_negative_mobility"), (-7.5, -2.5, "reverse_heat_transport"),
        (-2.5, 2.5, "joule_heating"), (2.5, np.inf, "conventional")]
FIG9 = [(-np.inf, -2.5, "conventional"), (-2.5, 2.5, "joule_heating"),
        (2.5, 7.5, "refrigerator"), (7.5, np.inf, "heat_engine")]


def labels_at(eps, lens="regime", **params):
    ds = phasemap.evaluate(eps=np.atleast_1d(eps), **params)
    return list(ds.phasemap.labels(lens).values)


# --- the paper's figures -----------------------------------------------------------------

def test_must_show():
    ds = phasemap.evaluate(eps=[-15, -5, 0, 5], T=7.5, dT=5, dV=5)
    assert list(ds.phasemap.labels().values) == [
        "absolute_negative_mobility", "reverse_heat_transport", "joule_heating",
        "conventional"]


@pytest.mark.parametrize(("dV", "regions"), [(5.0, FIG8), (-5.0, FIG9)])
def test_figure_sequence_on_a_dense_grid(dV, regions):
    ds = phasemap.evaluate(eps=EPS_GRID, T=7.5, dT=5.0, dV=dV)
    labels = ds.phasemap.labels().values
    for lo, hi, name in regions:
        inside = (EPS_GRID > lo) & (EPS_GRID < hi)
        assert inside.any()
        assert (labels[inside] == name).all(), (lo, hi, set(labels[inside]))
    b = ds.phasemap.boundaries("eps")
    assert list(b.columns) == ["lower", "upper", "from", "to"]
    assert len(b) == len(regions) - 1
    for row, (left, right) in zip(b.itertuples(index=False), itertools.pairwise(regions),
                                  strict=True):
        edge = left[1]
        assert row.lower < edge < row.upper
        assert row.upper - row.lower == pytest.approx(STEP)
        assert (row[2], row[3]) == (left[2], right[2])


@pytest.mark.parametrize(("dV", "regions"), [(5.0, FIG8), (-5.0, FIG9)])
def test_figure_sequence_at_points(dV, regions):
    for lo, hi, name in regions:
        lo_, hi_ = max(lo, -40.0), min(hi, 40.0)
        pts = [lo_ + (hi_ - lo_) * f for f in (0.01, 0.3, 0.5, 0.7, 0.99)]
        assert labels_at(pts, T=7.5, dT=5.0, dV=dV) == [name] * len(pts), (name, pts)


def test_machine_lens_of_the_paper_regions():
    """The paper's ANM region is a heat engine and its RHT region a refrigerator."""
    ds = phasemap.evaluate(eps=EPS_GRID, T=7.5, dT=5.0, dV=5.0)
    regime = ds.phasemap.labels().values
    machine = ds.phasemap.labels("machine").values
    assert (machine[regime == "absolute_negative_mobility"] == "heat_engine").all()
    assert (machine[regime == "reverse_heat_transport"] == "refrigerator").all()
    assert (machine[regime == "joule_heating"] == "heater").all()
    assert (machine[regime == "conventional"] == "accelerator").all()
    # Fig. 9: heat_engine and refrigerator in both lenses.
    ds9 = phasemap.evaluate(eps=EPS_GRID, T=7.5, dT=5.0, dV=-5.0)
    r9 = ds9.phasemap.labels().values
    m9 = ds9.phasemap.labels("machine").values
    assert (m9[r9 == "heat_engine"] == "heat_engine").all()
    assert (m9[r9 == "refrigerator"] == "refrigerator").all()


@pytest.mark.parametrize("T", [3.0, 7.5, 20.0])
@pytest.mark.parametrize("dT", [5.0, 0.5, -3.0])
@pytest.mark.parametrize("mu", [0.0, 1.25])
def test_thermodiffusion_is_anomalous_for_every_level_below_mu(T, dT, mu):
    eps = mu + np.concatenate([-np.geomspace(1e-3, 200, 40), np.geomspace(1e-3, 200, 40)])
    ds = phasemap.evaluate(eps=np.sort(eps), T=T, dT=dT, dV=0.0, mu=mu)
    labels = ds.phasemap.labels().values
    below = ds.eps.values < mu
    assert (labels[below] == "anomalous_thermodiffusion").all()
    assert (labels[~below] == "conventional").all()
    assert (ds.phasemap.labels("machine").values == "conductor").all()  # P = 0
    assert labels_at(mu, T=T, dT=dT, dV=0.0, mu=mu) == ["reversible"]


def test_equilibrium_when_no_force():
    ds = phasemap.evaluate(eps=np.linspace(-50, 50, 101), T=[0.5, 7.5], dT=0.0, dV=0.0,
                           mu=0.3)
    assert (ds.phasemap.labels().values == "equilibrium").all()
    assert (ds.phasemap.labels("machine").values == "idle").all()
    assert (ds.J_L.values == 0).all() and (ds.s.values == 0).all()


@pytest.mark.parametrize(("eps", "dV", "mu"), [(-7.5, 5.0, 0.0), (7.5, -5.0, 0.0),
                                               (-7.25, 5.0, 0.25), (-1.5, 1.0, 0.0)])
def test_reversible_exactly_on_eps_r(eps, dV, mu):
    # eps_r = mu - T dV / dT with T = 7.5, dT = 5 (exact in binary for these values)
    assert eps == mu - 7.5 * dV / 5.0
    ds = phasemap.evaluate(eps=[np.nextafter(eps, -np.inf), eps, np.nextafter(eps, np.inf)],
                           T=7.5, dT=5.0, dV=dV, mu=mu)
    regime = list(ds.phasemap.labels().values)
    assert regime[1] == "reversible"
    assert "reversible" not in (regime[0], regime[2])
    assert ds.phasemap.labels("machine").values[1] == "idle"
    assert ds.J_L.values[1] == 0 and ds.s.values[1] == 0
    assert np.sign(ds.J_L.values[0]) == -np.sign(ds.J_L.values[2]) != 0


def test_labels_identical_for_the_mirrored_device():
    kw = {"eps": EPS_GRID[::7], "T": 7.5}
    for dT, dV in [(5.0, 5.0), (5.0, -5.0), (0.0, 3.0), (2.0, 0.0)]:
        a = phasemap.evaluate(dT=dT, dV=dV, gamma_L=0.5, gamma_R=3.0, **kw)
        b = phasemap.evaluate(dT=-dT, dV=-dV, gamma_L=3.0, gamma_R=0.5, **kw)
        for lens in ("regime", "machine"):
            np.testing.assert_array_equal(a[lens].values, b[lens].values)


# --- attributes and accessor -------------------------------------------------------------

def test_label_constants_follow_the_tables():
    assert phasemap.REGIME_LABELS == REGIME_TABLE
    assert phasemap.MACHINE_LABELS == MACHINE_TABLE


@pytest.mark.parametrize(("lens", "table"), [("regime", REGIME_TABLE),
                                             ("machine", MACHINE_TABLE)])
def test_flag_attributes(lens, table):
    ds = phasemap.evaluate(eps=[-1.0, 1.0], T=7.5, dT=5.0, dV=5.0)
    da = ds[lens]
    assert da.dtype == np.int8
    fv = np.asarray(da.attrs["flag_values"])
    assert fv.dtype == np.int8
    np.testing.assert_array_equal(fv, np.arange(len(table)))
    assert da.attrs["flag_meanings"] == " ".join(table)
    assert da.attrs["flag_meanings"].split() == list(table)


def test_accessor_labels_fractions_boundaries_on_a_map():
    ds = phasemap.evaluate(eps=EPS_GRID[::10], dV=[-5.0, 0.0, 5.0], T=7.5, dT=5.0)
    lab = ds.phasemap.labels()
    assert lab.dims == ds.regime.dims and lab.shape == ds.regime.shape
    np.testing.assert_array_equal(lab.eps.values, ds.eps.values)
    assert lab.sel(dV=5.0).sel(eps=-15.0, method="nearest").item() == (
        "absolute_negative_mobility")

    for lens, table in (("regime", REGIME_TABLE), ("machine", MACHINE_TABLE)):
        fr = ds.phasemap.fractions(lens)
        assert isinstance(fr, pd.Series)
        assert list(fr.index) == list(table)            # every label, zeros included
        assert fr.sum() == pytest.approx(1.0, abs=1e-12)
        assert (fr >= 0).all()
        codes = ds[lens].values.ravel()
        for i, name in enumerate(table):
            assert fr[name] == pytest.approx(np.mean(codes == i))
    fr = ds.phasemap.fractions()
    assert fr["equilibrium"] == 0 and fr["reversible"] == 0
    # 300 of the 600 levels lie below mu = 0, only in the dV = 0 row of three
    assert fr["anomalous_thermodiffusion"] == pytest.approx(300 / 1800)

    b = ds.phasemap.boundaries("eps")
    assert set(b.columns) == {"dV", "lower", "upper", "from", "to"}
    assert sorted(set(b.dV)) == [-5.0, 0.0, 5.0]
    at0 = b[b.dV == 0.0]
    assert len(at0) == 1
    row = at0.iloc[0]
    assert row["lower"] < 0 < row["upper"]
    assert (row["from"], row["to"]) == ("anomalous_thermodiffusion", "conventional")
    assert len(b[b.dV == 5.0]) == 3 and len(b[b.dV == -5.0]) == 3
    # Along the other axis (every eps column that changes label across dV).
    bv = ds.phasemap.boundaries("dV", lens="machine")
    assert set(bv.columns) == {"eps", "lower", "upper", "from", "to"}
    assert len(bv) > 0 and (bv["from"] != bv["to"]).all()


def test_accessor_on_a_lazy_dataset():
    ds = phasemap.evaluate(eps=EPS_GRID[::10], dV=[-5.0, 0.0, 5.0], T=7.5, dT=5.0)
    lazy = phasemap.evaluate(eps=EPS_GRID[::10], dV=[-5.0, 0.0, 5.0], T=7.5, dT=5.0,
                             chunks={"eps": 64})
    assert lazy.regime.chunks is not None
    pd.testing.assert_series_equal(lazy.phasemap.fractions(), ds.phasemap.fractions())
    pd.testing.assert_frame_equal(lazy.phasemap.boundaries("eps"),
                                  ds.phasemap.boundaries("eps"))
    xr.testing.assert_equal(lazy.phasemap.labels(), ds.phasemap.labels())


def test_accessor_errors():
    ds = phasemap.evaluate(eps=[0.0, 1.0], T=7.5, dT=5.0)
    with pytest.raises(ParameterError, match="lens"):
        ds.phasemap.labels("nope")
    with pytest.raises(ParameterError, match="axis"):
        ds.phasemap.boundaries("T")
    with pytest.raises(ParameterError, match="lens"):
        ds.drop_vars("machine").phasemap.fractions("machine")


# --- classify on hand-built inputs: every rule of both tables ---------------------------

# (dT, dV, J_L, Q_L, Q_R, P or None, regime, machine), all in the forward frame.
RULES = [
    # regime rule 1: equilibrium wins over everything (even a non-zero current)
    (0.0, 0.0, 0.0, 0.0, 0.0, None, "equilibrium", "idle"),
    (0.0, 0.0, 0.3, 0.1, 0.2, None, "equilibrium", "conductor"),
    # rule 2: reversible
    (5.0, 5.0, 0.0, 0.0, 0.0, None, "reversible", "idle"),
    (5.0, -5.0, 0.0, 0.0, 0.0, None, "reversible", "idle"),
    # rule 3: AT (dV = 0, J < 0); P = 0 -> conductor
    (5.0, 0.0, -0.2, 1.0, 0.8, None, "anomalous_thermodiffusion", "conductor"),
    # rule 4: ANM; P = dV J < 0 -> heat engine
    (5.0, 5.0, -0.07, 1.26, 0.90, None, "absolute_negative_mobility", "heat_engine"),
    # rule 5: RHT; P > 0, Q_R < 0 -> refrigerator
    (5.0, 5.0, 0.06, -0.43, -0.14, None, "reverse_heat_transport", "refrigerator"),
    # RHT needs dT > 0: the same flows at dT = 0 are joule_heating? no: Q_R < 0 -> conventional
    (0.0, 5.0, 0.06, -0.43, -0.14, None, "conventional", "refrigerator"),
    # rule 6: heat engine (dV < 0, P < 0); machine heat engine
    (5.0, -5.0, 0.1, 0.9, 0.4, None, "heat_engine", "heat_engine"),
    # ... wins over rule 7 even when Q_R < 0
    (5.0, -5.0, 0.1, -0.2, -0.7, None, "heat_engine", "heat_engine"),
    # rule 7: refrigerator (dV < 0, P >= 0, Q_R < 0)
    (5.0, -5.0, -0.1, 0.3, -0.2, None, "refrigerator", "refrigerator"),
    # rule 8: joule heating Q_L < 0 < Q_R; machine heater (P > 0, Q_R > 0, Q_L < 0)
    (5.0, 5.0, 0.18, -0.46, 0.46, None, "joule_heating", "heater"),
    (5.0, -5.0, -0.1, -0.3, 0.2, None, "joule_heating", "heater"),
    # rule 9: conventional; machine accelerator (P > 0, both heats >= 0)
    (5.0, 5.0, 0.25, 0.64, 1.9, None, "conventional", "accelerator"),
    (5.0, 0.0, 0.2, 1.0, 1.0, None, "conventional", "conductor"),
    # Q_L = 0 exactly is not < 0: not joule heating
    (5.0, 5.0, 0.2, 0.0, 1.0, None, "conventional", "accelerator"),
    # explicit P that disagrees in sign with dV J: the given P is used
    (5.0, 5.0, 0.2, -0.5, 0.5, 0.0, "joule_heating", "conductor"),
    (5.0, 5.0, 0.2, 0.5, 0.4, -0.1, "conventional", "heat_engine"),
]


def _mirror_rule(dT, dV, J, QL, QR):
    return -dT, -dV, -J, -QR, -QL


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r[6]}/{r[7]}")
def test_classify_each_rule(rule):
    dT, dV, J, QL, QR, P, regime, machine = rule
    r, m = phasemap.classify(dT, dV, J, QL, QR, P)
    assert r.dtype == np.int8 and m.dtype == np.int8
    assert REGIME_TABLE[int(r)] == regime
    assert MACHINE_TABLE[int(m)] == machine
    # The mirror image (leads swapped) gets the same labels; P is unchanged by the swap.
    if dT != 0 or dV != 0:
        r2, m2 = phasemap.classify(*_mirror_rule(dT, dV, J, QL, QR), P)
        assert (int(r2), int(m2)) == (int(r), int(m))


def test_classify_broadcasts_over_arrays():
    cols = list(zip(*RULES, strict=True))
    dT, dV, J, QL, QR = (np.array(c, dtype=float) for c in cols[:5])
    P = np.array([dv * j if p is None else p for dv, j, p in zip(dV, J, cols[5], strict=True)])
    r, m = phasemap.classify(dT, dV, J, QL, QR, P)
    assert [REGIME_TABLE[i] for i in r] == list(cols[6])
    assert [MACHINE_TABLE[i] for i in m] == list(cols[7])
    # 2-D broadcasting: a column of dT against a row of currents.
    r2, _ = phasemap.classify(np.array([[5.0], [-5.0]]), 0.0, np.array([-0.1, 0.1]),
                              1.0, 1.0)
    assert r2.shape == (2, 2)
    assert [[REGIME_TABLE[i] for i in row] for row in r2] == [
        ["anomalous_thermodiffusion", "conventional"],
        ["conventional", "anomalous_thermodiffusion"]]


def test_classify_reversed_frame_rules():
    """Reverse-frame inputs (dT < 0, or dT = 0 and dV < 0) are swapped before the rules."""
    # dT < 0, dV = 0, J > 0: particles flow from R (hot) to L (cold) against... in the
    # forward frame J < 0: anomalous thermodiffusion.
    r, _ = phasemap.classify(-5.0, 0.0, 0.2, 0.9, 0.7)
    assert REGIME_TABLE[int(r)] == "anomalous_thermodiffusion"
    # dT = 0, dV < 0, J < 0 is the forward-frame dV > 0, J > 0 with Q_L <- -Q_R = -0.4,
    # Q_R <- -Q_L = 0.3: joule heating.
    r, m = phasemap.classify(0.0, -5.0, -0.1, -0.3, 0.4)
    assert (REGIME_TABLE[int(r)], MACHINE_TABLE[int(m)]) == ("joule_heating", "heater")
    # dT = 0, dV < 0, J > 0: forward dV > 0, J < 0 -> ANM
    r, m = phasemap.classify(0.0, -5.0, 0.1, 0.3, 0.4)
    assert (REGIME_TABLE[int(r)], MACHINE_TABLE[int(m)]) == ("absolute_negative_mobility",
                                                            "heat_engine")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", range(6))
def test_classify_not_finite_is_undefined(bad, where):
    """Any non-finite argument makes the point undefined in both lenses, never a regime."""
    args = [5.0, 5.0, 0.2, -0.5, 0.5, 1.0]
    args[where] = bad
    with np.errstate(invalid="ignore"):
        r, m = phasemap.classify(*args)
    assert (REGIME_TABLE[int(r)], MACHINE_TABLE[int(m)]) == ("undefined", "undefined")


@pytest.mark.parametrize(("dT", "dV", "J", "regime", "machine"), [
    # P omitted: its sign is sign(dV) sign(J_L), even where dV * J_L underflows to 0
    (5.0, 1e-300, -1e-300, "absolute_negative_mobility", "heat_engine"),
    (5.0, -1e-300, 1e-300, "heat_engine", "heat_engine"),
    (-5.0, 1e-300, -5e-324, "heat_engine", "heat_engine"),
])
def test_classify_power_sign_from_the_factors(dT, dV, J, regime, machine):
    assert dV * J == 0.0  # the rounded product would say "conductor"
    r, m = phasemap.classify(dT, dV, J, 1.0, 1.0)
    assert (REGIME_TABLE[int(r)], MACHINE_TABLE[int(m)]) == (regime, machine)


@pytest.mark.parametrize("bad", [{"eps": np.nan}, {"T": np.inf}, {"dV": -np.inf},
                                 {"gamma_R": np.inf}, {"mu": np.nan}])
def test_model_labels_points_with_non_finite_input_undefined(bad):
    """The kernel (called without evaluate's validation) never gives such a point a
    regime, even where its outputs happen to be finite (gamma_R = inf)."""
    params = {"eps": -15.0, "T": 7.5, "dT": 5.0, "dV": 5.0} | bad
    with np.errstate(all="ignore"):
        out = phasemap.get_model("single_level")(**params)
    assert REGIME_TABLE[int(out["regime"])] == "undefined"
    assert MACHINE_TABLE[int(out["machine"])] == "undefined"


def test_model_and_classify_agree_where_products_underflow():
    """Issue 13's point: (eps, T, dT, dV) = (-25.27, 0.0364, -4.1e-14, -2.0e-14) is a heat
    engine (P = dV J_L < 0 although dV J_L rounds to 0); the fused kernel and classify on
    its outputs say so, and no output is -0.0."""
    out = phasemap.get_model("single_level")(eps=-25.27, T=0.0364, dT=-4.1e-14, dV=-2.0e-14,
                                             gamma_L=0.001, gamma_R=0.001)
    assert MACHINE_TABLE[int(out["machine"])] == "heat_engine"
    assert float(out["P"]) < 0 and -2.0e-14 * float(out["J_L"]) == 0.0
    r, m = phasemap.classify(-4.1e-14, -2.0e-14, out["J_L"], out["Q_L"], out["Q_R"])
    assert (int(r), int(m)) == (int(out["regime"]), int(out["machine"]))
    assert not any(np.signbit(v) and v == 0 for v in out.values())
