"""The thermodynamic uncertainty relation on every registered Markov (Pauli) model.

For a Markov jump process the ratio Q = s·S/J² is at least 2 (Barato & Seifert, PRL 114,
158101 (2015)); the models' ``tur`` output is that ratio with S the zero-frequency noise of
their counting-field generator. Checked at random points of each sequential-tunnelling
model, where the current is large enough for the ratio to carry its digits.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from phasemap.models import get_model

finite = {"allow_nan": False, "allow_infinity": False}


@st.composite
def points(draw, model: str):
    T = draw(st.floats(0.2, 20.0, **finite))
    p = {"eps": draw(st.floats(-8.0, 8.0, **finite)) * T, "T": T,
         "dT": draw(st.floats(-1.9, 1.9, **finite)) * T,
         "dV": draw(st.floats(-10.0, 10.0, **finite)) * T,
         "gamma_L": 10 ** draw(st.floats(-2.0, 2.0, **finite)),
         "gamma_R": 10 ** draw(st.floats(-2.0, 2.0, **finite))}
    if model in ("anderson", "coulomb_coupled_dots"):
        p["U"] = draw(st.floats(0.0, 6.0, **finite)) * T
    if model == "coulomb_coupled_dots":
        p.update(eps_G=draw(st.floats(-4.0, 4.0, **finite)) * T,
                 T_G=T * draw(st.floats(0.5, 3.0, **finite)),
                 gamma_G=10 ** draw(st.floats(-1.0, 1.0, **finite)),
                 gamma_L_U=10 ** draw(st.floats(-2.0, 2.0, **finite)),
                 gamma_R_U=10 ** draw(st.floats(-2.0, 2.0, **finite)))
    return p


def _check(model: str, p: dict) -> None:
    out = get_model(model)(**p)
    J, S, s, Q = (float(np.asarray(out[k])) for k in ("J_L", "noise_J", "s", "tur"))
    assert S > 0.0 and s >= 0.0
    if abs(J) > 1e-12 * S and np.isfinite(Q):
        assert Q >= 2.0 * (1 - 1e-9), (p, Q)


@settings(max_examples=60, deadline=None)
@given(points("pauli"))
def test_tur_pauli(p):
    _check("pauli", p)


@settings(max_examples=40, deadline=None)
@given(points("anderson"))
def test_tur_anderson(p):
    _check("anderson", p)


@settings(max_examples=40, deadline=None)
@given(points("coulomb_coupled_dots"))
def test_tur_coulomb_coupled_dots(p):
    _check("coulomb_coupled_dots", p)


def test_tur_single_level_closed_form_equals_the_engine():
    """The closed-form noise of the single level and the engine's generator agree."""
    p = {"eps": np.linspace(-30, 30, 61), "T": 7.5, "dT": 5.0, "dV": 5.0}
    a, b = get_model("single_level")(**p), get_model("pauli")(**p)
    np.testing.assert_allclose(a["noise_J"], b["noise_J"], rtol=1e-10)
    assert (np.asarray(a["tur"])[np.isfinite(a["tur"])] >= 2.0).all()
