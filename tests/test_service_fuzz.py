"""The HTTP API fuzzed from its own OpenAPI schema: no answer may be a server error.

Schemathesis reads ``/openapi.json`` from the live server (the real ``phasemap serve`` on
loopback, see :func:`phasemap.service.testing.shared_test_server`) and sends generated requests
to every operation, with the compute token so that grid submissions get past the auth check.
The examples per operation are bounded so the module runs in well under a minute; Hypothesis
tests below also aim generated numbers at the read endpoints of a real stored dataset, which
the schema alone cannot name.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from conftest import FUZZ_CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from phasemap.service.testing import TEST_TOKEN, computed_grid, shared_test_server

AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}
SPEC = {"name": "fuzz target", "params": {"T": 7.5},
        "axes": {"eps": {"start": -8, "stop": 8, "num": 17},
                 "dV": {"start": -4, "stop": 4, "num": 9},
                 "dT": [1.0, 5.0]}}
FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def server():
    return shared_test_server()


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@FUZZ
def test_no_server_errors(case):
    FUZZ_CASES["sent"] += 1
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error], timeout=60)


def test_the_fuzzer_sent_requests():
    """Runs after the schema cases (file order): a fuzz run of zero cases is a failure."""
    assert FUZZ_CASES["sent"] > 0, "schemathesis generated no case (plugin broken?)"


@pytest.fixture(scope="module")
def dataset(server) -> tuple[str, str]:
    return server.url, computed_grid(server.url, SPEC)


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-8.0, -1.0, 0.0, 1.0, 5.0, 7.5, 8.0, 1e308, -1e-320]),
    st.integers(-10**30, 10**30).map(str),
    st.text(max_size=8),
)
query = st.dictionaries(
    st.sampled_from(["eps", "T", "dT", "dV", "mu", "gamma_L", "interp", "format", "vars",
                     "x"]),
    numbers, max_size=5)


@given(query=query, what=st.sampled_from(["point", "slice"]))
@FUZZ
def test_reads_of_a_real_dataset_never_fail_on_the_server(dataset, query, what):
    url, rid = dataset
    params = {k: (v if isinstance(v, str) else repr(v) if isinstance(v, float) else v)
              for k, v in query.items()}
    FUZZ_CASES["sent"] += 1
    r = httpx.get(f"{url}/api/grids/{rid}/{what}", params=params, timeout=60)
    assert r.status_code < 500, (params, r.status_code, r.text[:500])
    if r.status_code == 200 and r.headers["content-type"].startswith("application/json"):
        r.json()
