"""Shared helpers for the core test suite.

Everything a test needs is generated inside the repository: the high-precision reference is
``tests/data/reference_single_level.csv`` (written by ``tests/data/make_reference.py``), the
rest is computed on the fly. Test modules import the plain helpers below with
``from conftest import ...`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import csv
import os
from fractions import Fraction
from pathlib import Path

import dask
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

DATA = Path(__file__).parent / "data"
REFERENCE_CSV = DATA / "reference_single_level.csv"
PARAMS = ("eps", "T", "dT", "dV", "mu", "gamma_L", "gamma_R")
FLOAT_OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1")

settings.register_profile(
    "phasemap",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# A longer hunt: HYPOTHESIS_PROFILE=thorough python3 -m pytest tests/test_properties.py
settings.register_profile("thorough", parent=settings.get_profile("phasemap"),
                          max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "phasemap"))


# --- reference data ---------------------------------------------------------------------

#: columns of the reference table that hold names, not numbers
TEXT_COLUMNS = ("regime", "machine", "category")


def load_reference() -> dict[str, np.ndarray]:
    """The reference table as float64 columns (inputs and outputs read back bit-exactly);
    the label and category columns as arrays of str."""
    with REFERENCE_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: (np.array([r[k] for r in rows]) if k in TEXT_COLUMNS
                else np.array([float(r[k]) for r in rows], dtype=np.float64))
            for k in rows[0]}


@pytest.fixture(scope="session")
def reference() -> dict[str, np.ndarray]:
    return load_reference()


# --- exact arithmetic oracles -----------------------------------------------------------

def exact_numerator(eps, T, dT, dV, mu=0.0) -> Fraction:
    """``(eps - mu) dT + T dV`` in exact rational arithmetic of the float inputs.

    Its sign is the sign of ``J_L`` (docs/model.md); zero exactly on ``eps_r``.
    """
    F = Fraction
    return (F(float(eps)) - F(float(mu))) * F(float(dT)) + F(float(T)) * F(float(dV))


def exact_sign(eps, T, dT, dV, mu=0.0) -> int:
    n = exact_numerator(eps, T, dT, dV, mu)
    return (n > 0) - (n < 0)


# --- hypothesis strategies --------------------------------------------------------------

def _finite(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def moderate_points(draw):
    """Valid inputs in the paper's range and somewhat beyond: T > 0, |dT| < 2T."""
    T = draw(_finite(0.1, 50.0))
    dT = draw(_finite(-1.98, 1.98)) * T
    return {
        "eps": draw(_finite(-100.0, 100.0)),
        "T": T,
        "dT": dT,
        "dV": draw(_finite(-50.0, 50.0)),
        "mu": draw(_finite(-20.0, 20.0)),
        "gamma_L": draw(_finite(0.01, 100.0)),
        "gamma_R": draw(_finite(0.01, 100.0)),
    }


@st.composite
def wide_points(draw):
    """Valid inputs over wide ranges: energies up to 1e6, T down to 1e-3 (and up to 1e6),
    |dT| up to almost 2T, rates from 1e-100 to 1e100 (so that the true outputs themselves,
    e.g. s ~ gamma |x_R - x_L| with |x_R - x_L| up to ~1e29 here, stay below 1e308)."""
    T = 10.0 ** draw(_finite(-3.0, 6.0))
    dT = draw(st.one_of(_finite(-1.999999, 1.999999), st.sampled_from([0.0, 1.9999999999])))
    energy = st.one_of(_finite(-1e6, 1e6), st.sampled_from([0.0, -1e6, 1e6]))
    return {
        "eps": draw(energy),
        "T": T,
        "dT": dT * T,
        "dV": draw(energy),
        "mu": draw(energy),
        "gamma_L": 10.0 ** draw(_finite(-100.0, 100.0)),
        "gamma_R": 10.0 ** draw(_finite(-100.0, 100.0)),
    }


def mirror(p: dict[str, float]) -> dict[str, float]:
    """The same device seen with its leads swapped."""
    q = dict(p)
    q["dT"], q["dV"] = -p["dT"], -p["dV"]
    q["gamma_L"], q["gamma_R"] = p["gamma_R"], p["gamma_L"]
    return q


# --- laziness proof ---------------------------------------------------------------------

class ComputeForbidden(AssertionError):
    pass


def _forbidden_scheduler(*args, **kwargs):
    raise ComputeForbidden("a dask graph was computed where nothing may be computed")


@contextlib.contextmanager
def no_dask_compute():
    """Inside this block any dask computation raises :class:`ComputeForbidden`."""
    with dask.config.set(scheduler=_forbidden_scheduler):
        yield


def rel_err(got, ref) -> np.ndarray:
    """Elementwise relative error; 0 where both are exactly 0, inf where only ref is 0."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(got - ref) / np.abs(ref)
    return np.where((got == ref), 0.0, err)


# --- CI cannot pass by luck ---------------------------------------------------------------
# Under CI=true a browser or cluster test that skips is a failure (the machine lacked what
# .ci/run must provide), and so is a fuzz module that ran no case.

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
MUST_RUN_UNDER_CI = ("browser", "cluster")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (CI and report.skipped and not hasattr(report, "wasxfail")
            and any(item.get_closest_marker(m) for m in MUST_RUN_UNDER_CI)):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run it: {reason}"


#: Cases the API fuzzer actually sent (``tests/test_service_fuzz.py`` counts them).
FUZZ_CASES = {"sent": 0, "collected": 0}


def pytest_collection_modifyitems(session, config, items):
    FUZZ_CASES["collected"] = sum("test_service_fuzz" in item.nodeid for item in items)


def pytest_sessionfinish(session, exitstatus):
    if CI and FUZZ_CASES["collected"] and FUZZ_CASES["sent"] == 0 and exitstatus == 0:
        print("\nFAILED: the API fuzz tests were collected but sent no request (CI=true)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
