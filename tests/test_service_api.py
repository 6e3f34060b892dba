"""The HTTP API of ``phasemap serve``, tested through a real server on loopback.

The server is the real command (``python -m phasemap.cli serve``) in a subprocess, with a token
and small limits (see :data:`phasemap.service.testing.TEST_ENV`), on a temporary store.
"""

from __future__ import annotations

import io
import json
import threading
import time

import httpx
import numpy as np
import pytest
import xarray as xr

import phasemap
from phasemap.service.testing import TEST_TOKEN, shared_test_server
from phasemap.store import Store, plan, spec_id

AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}

#: A small grid: 41 x 21 x 2 points, T fixed.
SMALL = {"name": "api test", "params": {"T": 7.5},
         "axes": {"eps": {"start": -20, "stop": 20, "num": 41},
                  "dV": {"start": -10, "stop": 10, "num": 21},
                  "dT": [2.5, 5.0]}}


@pytest.fixture(scope="module")
def server():
    return shared_test_server()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def wait_done(client: httpx.Client, rid: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/grids/{rid}").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"grid {rid} not done after {timeout} s: {body}")


@pytest.fixture(scope="module")
def small_id(client) -> str:
    r = client.post("/api/grids", json=SMALL, headers=AUTH)
    assert r.status_code in (200, 202), r.text
    rid = r.json()["id"]
    assert wait_done(client, rid)["status"] == "done"
    return rid


def test_health(client):
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["version"] == phasemap.__version__


def test_openapi_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/health", "/api/evaluate", "/api/grids", "/api/grids/{id}",
              "/api/grids/{id}/point", "/api/grids/{id}/slice", "/api/datasets"):
        assert p in paths


def test_evaluate_the_papers_anm_point(client):
    r = client.get("/api/evaluate", params={"eps": -15, "T": 7.5, "dT": 5, "dV": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["J_L"] < 0
    assert body["regime"] == "absolute_negative_mobility"
    assert body["machine"] in phasemap.MACHINE_LABELS
    for key in ("J_L", "Q_L", "Q_R", "P", "s", "p1", "eps", "T", "dT", "dV", "mu",
                "gamma_L", "gamma_R"):
        assert isinstance(body[key], float), key
    ref = phasemap.evaluate(eps=-15, T=7.5, dT=5, dV=5)
    assert body["J_L"] == float(ref.J_L)


@pytest.mark.parametrize(("params", "named"), [
    ({"eps": 0, "T": 2.0, "dT": 4.0, "dV": 1}, "dT"),      # T_R = T - dT/2 = 0
    ({"eps": 0, "T": 2.0, "dT": -5.0, "dV": 1}, "dT"),     # T_L < 0
    ({"eps": 0, "T": -1.0}, "T"),
    ({"eps": "abc", "T": 7.5}, "eps"),                      # not a number
    ({"eps": "nan"}, "eps"),
    ({"gamma_L": 0}, "gamma_L"),
    ({"eps": 1, "temperature": 3}, "temperature"),          # unknown parameter
    ({"model": "nonsense"}, "model"),
])
def test_evaluate_bad_input_is_422_naming_the_parameter(client, params, named):
    r = client.get("/api/evaluate", params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert named in body["param"].split(","), body
    assert {"param", "value", "allowed", "message"} <= set(body)
    assert named in body["message"]


def test_grid_lifecycle_point_and_slices(client, small_id, tmp_path):
    assert small_id == spec_id(phasemap.GridSpec.from_dict(SMALL))
    status = client.get(f"/api/grids/{small_id}").json()
    assert status["status"] == "done"
    pr = status["progress"]
    assert pr["done_shards"] == pr["total_shards"] > 0
    assert status["dims"] == ["eps", "dV", "dT"] and status["shape"] == [41, 21, 2]

    listed = client.get("/api/datasets").json()["datasets"]
    assert small_id in {d["id"] for d in listed}

    # a point: the stored values are those of evaluate
    r = client.get(f"/api/grids/{small_id}/point",
                   params={"eps": -15, "dV": 5, "dT": 5, "T": 7.5})
    assert r.status_code == 200, r.text
    point = r.json()
    ref = phasemap.evaluate(eps=-15, T=7.5, dT=5, dV=5)
    assert point["regime"] == "absolute_negative_mobility"
    np.testing.assert_allclose(point["J_L"], float(ref.J_L), rtol=1e-12)
    np.testing.assert_allclose(point["Q_R"], float(ref.Q_R), rtol=1e-12)
    assert point["machine"] == phasemap.MACHINE_LABELS[int(ref.machine)]

    # an off-grid point without interp names the parameter
    r = client.get(f"/api/grids/{small_id}/point", params={"eps": -15.3, "dV": 5, "dT": 5})
    assert r.status_code == 422 and r.json()["param"] == "eps"
    r = client.get(f"/api/grids/{small_id}/point",
                   params={"eps": -15.3, "dV": 5, "dT": 5, "interp": "true"})
    assert r.status_code == 200 and r.json()["J_L"] < 0

    # a slice as JSON (xarray's to_dict layout) and as NetCDF
    r = client.get(f"/api/grids/{small_id}/slice", params={"dT": 5})
    assert r.status_code == 200, r.text
    js = r.json()
    assert js["dims"] == {"eps": 41, "dV": 21}
    assert js["labels"]["regime"] == list(phasemap.REGIME_LABELS)
    regime = np.asarray(js["data_vars"]["regime"]["data"])
    assert regime.shape == (41, 21)

    r = client.get(f"/api/grids/{small_id}/slice", params={"dT": 5, "format": "netcdf"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-netcdf")
    path = tmp_path / "slice.nc"
    path.write_bytes(r.content)
    with xr.open_dataset(path) as nc:
        nc = nc.load()
    assert dict(nc.sizes) == {"eps": 41, "dV": 21}
    np.testing.assert_array_equal(nc.regime.values, regime)
    np.testing.assert_array_equal(nc.J_L.values, np.asarray(js["data_vars"]["J_L"]["data"]))
    assert float(nc.dT) == 5.0
    assert nc.J_L.attrs["units"] == "gamma0"
    ref = phasemap.evaluate(eps=nc.eps.values, dV=nc.dV.values, T=7.5, dT=5.0)
    for name in ("J_L", "Q_L", "Q_R", "P", "s", "regime", "machine"):
        np.testing.assert_array_equal(nc[name].values, ref[name].values, err_msg=name)

    # selected variables only, and a slice over the limit (1000 points here) is refused
    r = client.get(f"/api/grids/{small_id}/slice", params={"dT": 5, "vars": "J_L,regime"})
    assert set(r.json()["data_vars"]) == {"J_L", "regime"}
    r = client.get(f"/api/grids/{small_id}/slice")
    assert r.status_code == 422 and r.json()["param"] == "slice"
    r = client.get(f"/api/grids/{small_id}/slice", params={"dT": 4})
    assert r.status_code == 422 and r.json()["param"] == "dT"


def test_concurrent_netcdf_slices(client, server, small_id):
    """HDF5 is not thread-safe: concurrent NetCDF answers must not take the server down."""
    results: list[int] = []

    def fetch(dT):
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for _ in range(3):
                r = c.get(f"/api/grids/{small_id}/slice",
                          params={"dT": dT, "format": "netcdf", "vars": "J_L,regime"})
                results.append(r.status_code)

    threads = [threading.Thread(target=fetch, args=(2.5 if k % 2 else 5.0,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [200] * 24
    assert client.get("/api/health").status_code == 200


def test_dataset_reads_are_cacheable(client, small_id):
    url = f"/api/grids/{small_id}/point"
    params = {"eps": 0, "dV": 0, "dT": 2.5}
    r = client.get(url, params=params)
    etag = r.headers["etag"]
    assert "immutable" in r.headers["cache-control"]
    again = client.get(url, params=params, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert client.get(url, params={**params, "eps": 1}).headers["etag"] != etag
    assert client.get(f"/api/grids/{small_id}").headers["cache-control"] == "no-cache"


def test_concurrent_identical_submissions_make_one_computation(client, server):
    spec = {"name": "dedupe", "params": {"T": 5.0, "dT": 2.0},
            "axes": {"eps": {"start": -30, "stop": 30, "num": 121},
                     "dV": {"start": -6, "stop": 6, "num": 25}}}
    grid = phasemap.GridSpec.from_dict(spec)
    store = Store(server.store)
    expected = plan(grid, store).points_to_compute
    assert expected > 0, "the store already holds this grid: pick another one"

    n = 8
    barrier = threading.Barrier(n)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def submit():
        with httpx.Client(base_url=server.url, timeout=60) as c:
            barrier.wait()
            r = c.post("/api/grids", json=spec, headers=AUTH)
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=submit) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(answers) == n
    assert all(r.status_code in (200, 202) for r in answers), [r.text for r in answers]
    ids = {r.json()["id"] for r in answers}
    assert ids == {spec_id(grid)}
    rid = ids.pop()

    status = wait_done(client, rid)
    assert status["status"] == "done"
    assert status["submissions"] == n
    assert status["computations"] == 1
    assert status["progress"]["points_computed"] == expected
    assert store.request(rid)["points_computed"] == expected
    assert plan(grid, store).missing == []


def test_compute_requires_the_token(client):
    r = client.post("/api/grids", json=SMALL)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    r = client.post("/api/grids", json=SMALL, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403
    r = client.post("/api/grids", json=SMALL, headers={"Authorization": f"Basic {TEST_TOKEN}"})
    assert r.status_code in (401, 403)
    # reading needs no token
    assert client.get("/api/datasets").status_code == 200


@pytest.mark.parametrize("raw_id", [
    "..%2F..%2Fetc", "..%2F..%2Fetc%2Fpasswd", "%2E%2E", "..", "...", "a.json",
    "%2Fetc%2Fpasswd", "requests", "x" * 65, "%00", "abc%20def",
])
def test_ids_cannot_name_paths(client, server, raw_id):
    for suffix in ("", "/point", "/slice"):
        r = client.get(f"{server.url}/api/grids/{raw_id}{suffix}")
        assert r.status_code in (404, 422), (raw_id, suffix, r.status_code, r.text)


def test_explorer_page_and_bad_session_ids(client):
    r = client.get("/explorer")
    assert r.status_code == 200 and "phasemap explorer" in r.text
    assert client.get("/explorer", params={"bokeh_session_id": ""}).status_code == 400
    assert client.get("/", follow_redirects=False).headers["location"] == "/explorer"


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::PendingDeprecationWarning")
def test_unused_explorer_sessions_are_discarded(tmp_path):
    """A page whose browser never connects (or went away) must not keep its session."""
    from fastapi.testclient import TestClient

    from phasemap.service import ServiceConfig, create_app

    app = create_app(ServiceConfig(store=str(tmp_path / "store"), session_lifetime_ms=1000))
    with TestClient(app, base_url=LOCAL) as c:  # a Host the server answers for
        assert c.get("/explorer").status_code == 200
        assert c.get("/api/health").json()["explorer_sessions"] >= 1
        deadline = time.monotonic() + 30
        while c.get("/api/health").json()["explorer_sessions"] > 0:
            assert time.monotonic() < deadline, "explorer sessions are never discarded"
            time.sleep(0.25)


def test_unknown_dataset_is_404(client):
    r = client.get("/api/grids/0123456789abcdef")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


def test_oversize_bodies_are_413(client, server):
    big = {"axes": {"eps": [float(i) for i in range(20000)]}}
    r = client.post("/api/grids", json=big, headers=AUTH)
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"axes": {"eps": ['
        for _ in range(2000):
            yield b"1.0, " * 20
        yield b"1.0]}}"

    r = client.post("/api/grids", content=chunks(), headers={**AUTH,
                                                            "Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize(("spec", "named"), [
    ({"axes": {"eps": {"start": -1, "stop": 1, "num": 10**9}}}, "grid"),   # over the limit
    ({"axes": {"eps": {"start": -1, "stop": 1, "num": 500},
               "dV": {"start": -1, "stop": 1, "num": 500}}}, "grid"),
    ({"axes": {"temperature": [1, 2]}}, "temperature"),
    ({"axes": {"T": [1.0, -1.0]}}, "T"),
    ({"params": {"T": 1.0}, "axes": {"dT": [2.5, 3.0]}}, "dT"),  # no valid point at all
    ({"model": "nonsense", "axes": {"eps": [0.0]}}, "model"),
    ({"axes": {"eps": {"start": 1, "stop": 0, "num": 3}}}, "axes.eps"),
    ({"axes": {"eps": {"start": 0, "stop": 1, "num": 0}}}, "eps"),
    ({"axes": {"eps": [1.0, 1.0]}}, "eps"),
    ({"axes": {"eps": {"start": 0, "stop": 1, "num": 3}}, "colour": "red"}, "colour"),
    ([1, 2, 3], "spec"),
])
def test_bad_grid_specs_are_422(client, spec, named):
    r = client.post("/api/grids", json=spec, headers=AUTH)
    assert r.status_code == 422, r.text
    assert named in r.json()["param"], r.json()


def test_not_json_is_422(client):
    r = client.post("/api/grids", content=b"{not json", headers={
        **AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["param"] == "spec"


def test_slice_json_has_no_nan_literals(client, small_id):
    r = client.get(f"/api/grids/{small_id}/slice", params={"dT": 2.5, "vars": "s"})
    assert b"NaN" not in r.content and b"Infinity" not in r.content
    assert io.BytesIO(r.content).read(1) == b"{"


def test_job_manager_in_process(tmp_path):
    """Dedupe and a clean close from another thread than the one that started Dask."""
    from phasemap.service import JobManager

    store = Store(tmp_path / "store")
    spec = phasemap.GridSpec.from_dict({"params": {"T": 7.5, "dT": 5.0},
                                        "axes": {"eps": {"start": -4, "stop": 4, "num": 9}}})
    jobs = JobManager(store, workers=1)
    try:
        got: list = []
        threads = [threading.Thread(target=lambda: got.append(jobs.submit(spec)))
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len({id(j) for j in got}) == 1
        job = jobs.wait(spec_id(spec), timeout=120)
        assert job.status == "done", job.error
        assert (job.submissions, job.computations) == (6, 1)
        assert jobs.client_started
        again = jobs.submit(spec)  # a finished job is joined, not recomputed
        assert again is job and job.computations == 1
    finally:
        jobs.close()
    assert not jobs.client_started
    with pytest.raises(RuntimeError):
        jobs.submit(spec)


# --- in-process: the real app over a real JobManager and store ------------------------------

LOCAL = "http://127.0.0.1:8000"  # the Host and Origin of a server listening on loopback


def tiny(num: int = 5, **extra) -> dict:
    return {"params": {"T": 7.5, "dT": 5.0}, "axes": {"eps": {"start": -4, "stop": 4,
                                                              "num": num}}, **extra}


@pytest.fixture
def local(tmp_path):
    """(client, jobs, store, release): the app in this process with a job that blocks the
    job thread until ``release.set()``."""
    from fastapi.testclient import TestClient

    from phasemap.service import ServiceConfig, create_app
    from phasemap.service.app import job_manager
    from phasemap.store import compute as store_compute

    config = ServiceConfig(store=str(tmp_path / "store"), max_queued_jobs=4,
                           max_request_shards=64, max_grid_points=200_000,
                           max_chunk_points=4096, workers=1, token=None)
    store = Store(config.store)
    jobs = job_manager(config, store)
    release = threading.Event()

    def blocking(spec, store=None, client=None, progress=None):
        release.wait(120)
        return store_compute(spec, store=store)

    blocker = jobs.submit(phasemap.GridSpec.from_dict(tiny(7)), blocking, check=False)
    app = create_app(config, jobs, explorer=False)
    try:
        with TestClient(app, base_url=LOCAL) as c:
            yield c, jobs, store, release, blocker
    finally:
        release.set()
        jobs.close()


def test_reading_an_unfinished_grid_is_409(local):
    c, jobs, _, release, blocker = local
    for path in ("point", "slice"):
        r = c.get(f"/api/grids/{blocker.id}/{path}", params={"eps": 0})
        assert r.status_code == 409, r.text
        assert r.json()["error"] == "not_ready"
        assert r.json()["status"] in ("queued", "running")
        assert r.headers["cache-control"] == "no-store"
    release.set()
    assert jobs.wait(blocker.id, timeout=120).status == "done"
    r = c.get(f"/api/grids/{blocker.id}/point", params={"eps": 0})
    assert r.status_code == 200 and r.json()["J_L"] == float(
        phasemap.evaluate(eps=0.0, T=7.5, dT=5.0).J_L)


def test_the_job_queue_is_bounded(local):
    c, *_ = local
    answers = [c.post("/api/grids", json=tiny(9 + i)) for i in range(50)]
    codes = [r.status_code for r in answers]
    assert codes.count(202) == 3, codes  # 4 at most in flight, one is the blocked job
    refused = [r for r in answers if r.status_code == 429]
    assert len(refused) == 47
    assert refused[0].json()["error"] == "busy" and "queued" in refused[0].json()["message"]
    assert int(refused[0].headers["retry-after"]) > 0
    # joining a grid already in flight is not a new job
    again = c.post("/api/grids", json=tiny(9))
    assert again.status_code == 202 and again.json()["id"] == answers[0].json()["id"]


@pytest.mark.parametrize(("spec", "named", "says"), [
    (tiny(num="30000000"), "axes.eps.num", "integer"),
    (tiny(num="9000000000"), "axes.eps.num", "integer"),
    (tiny(num=5.0), "axes.eps.num", "integer"),
    (tiny(num=True), "axes.eps.num", "integer"),
    (tiny(num=9_000_000_000), "grid", "at most 200,000 points"),
    (tiny(chunks={"eps": 16777216}), "chunks", "at most 4,096 points"),
    (tiny(chunks={"eps": "4"}), "chunks.eps", "integer"),
    (tiny(name="n" * 5000), "name", "at most 200 characters"),
    ({"params": {"T": 7.5, "dT": 5.0}, "axes": {"eps": [float(i) for i in range(100)],
                                                "dV": [float(i) for i in range(3)]}},
     "grid", "300 shards"),
    (tiny(num=0), "axes.eps.num", "integer >= 1"),
])
def test_request_costs_are_counted_before_parsing(local, spec, named, says):
    c, *_ = local
    r = c.post("/api/grids", json=spec)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["param"] == named and says in body["message"], body
    assert "Input should" not in body["message"]


def test_writes_need_json_and_a_same_site_origin(local):
    c, *_ = local
    cross = {"Content-Type": "text/plain"}
    r = c.post("/api/grids", content=json.dumps(tiny(11)), headers=cross)
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "http://127.0.0.1:9999"},
                    {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        r = c.post("/api/grids", json=tiny(11), headers=headers)
        assert r.status_code == 403 and r.json()["error"] == "bad_origin", headers
    r = c.post("/api/grids", json=tiny(11), headers={"Origin": LOCAL})
    assert r.status_code == 202, r.text
    r = c.post("/api/grids", json=tiny(12), headers={"Origin": "http://localhost:8000"})
    assert r.status_code == 202, r.text


@pytest.mark.parametrize(("host", "code"), [
    ("evil.example", 400), ("evil.example:8000", 400), ("127.0.0.1.evil.example", 400),
    ("127.0.0.1:8000", 200), ("localhost:8000", 200), ("[::1]:8000", 200),
])
def test_host_header_is_checked(local, host, code):
    c, *_ = local
    r = c.get("/api/health", headers={"Host": host})
    assert r.status_code == code, r.text
    if code == 400:
        assert r.json()["error"] == "bad_host"


def test_allowed_hosts_extend_the_list():
    from phasemap.service import ServiceConfig
    from phasemap.service.security import RequestGuard

    guard = RequestGuard(None, ServiceConfig(allowed_hosts=["phasemap.lab"], port=80))
    scope = {"type": "http", "method": "GET", "path": "/api/health"}
    assert guard.problem(scope, {"host": "phasemap.lab"}) is None
    assert guard.problem(scope, {"host": "phasemap.lab:80"}) is None
    assert guard.problem(scope, {"host": "other.lab"})[0] == 400
    post = {**scope, "method": "POST"}
    assert guard.problem(post, {"host": "phasemap.lab", "origin": "http://phasemap.lab",
                                "content-type": "application/json"}) is None


def test_health_counts_each_dataset_once(local, tmp_path):
    c, _, store, *_ = local
    before = c.get("/api/health").json()["datasets"]
    for num in (3, 4):
        phasemap.compute(phasemap.GridSpec.from_dict(tiny(num)), store=store)
    health = c.get("/api/health").json()
    listed = c.get("/api/datasets").json()["datasets"]
    assert health["datasets"] == before + 2
    assert health["datasets"] == sum(d["status"] == "done" for d in listed)


def test_http_errors_speak_http(local):
    c, jobs, _, release, blocker = local
    release.set()
    jobs.wait(blocker.id, timeout=120)
    rid = blocker.id  # eps from -4 to 4 in 7 points, T = 7.5 and dT = 5 fixed
    r = c.get(f"/api/grids/{rid}/point", params={"eps": 0.5})
    body = r.json()
    assert r.status_code == 422 and body["param"] == "eps"
    assert "interp=true" in body["message"] and "--" not in body["message"]
    r = c.get(f"/api/grids/{rid}/point", params={"eps": 0, "T": 5})
    body = r.json()
    assert r.status_code == 422 and body["param"] == "T"
    assert "fixed at 7.5" in body["message"], body
    r = c.get(f"/api/grids/{rid}/point", params={"T": 7.5})
    body = r.json()
    assert r.status_code == 422 and body["param"] == "eps" and "--at" not in body["message"]
    r = c.get(f"/api/grids/{rid}/slice", params={"eps": 0.5})
    assert r.status_code == 422 and "interp" not in r.json()["message"]
    r = c.post("/api/grids", json=tiny(num=0))
    assert "Input should" not in r.json()["message"]


def test_no_store_paths_in_answers(local, tmp_path):
    c, jobs, _, release, blocker = local
    release.set()
    jobs.wait(blocker.id, timeout=120)
    import shutil

    shutil.rmtree(tmp_path / "store" / "families")
    for path, params in (("point", {"eps": 0}), ("slice", {})):
        r = c.get(f"/api/grids/{blocker.id}/{path}", params=params)
        assert r.status_code >= 400, r.text
        assert str(tmp_path) not in r.text and "families" not in r.text, r.text
        assert r.headers["cache-control"] == "no-store"


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::PendingDeprecationWarning")
def test_explorer_websocket_origin_and_components(tmp_path):
    """The explorer's websocket opens only from an allowed Origin; /components imports
    nothing a request names and answers 404, not 500."""
    import re
    import sys

    from fastapi.testclient import TestClient
    from starlette.websockets import WebSocketDisconnect

    from phasemap.service import ServiceConfig, create_app

    config = ServiceConfig(store=str(tmp_path / "store"), token=None,
                           websocket_origins=["explorer.lab:443"])
    with TestClient(create_app(config), base_url=LOCAL) as c:
        def connect(origin):
            page = c.get("/explorer")
            token = re.search(r'"token":\s*"([^"]+)"', page.text).group(1)
            headers = {"origin": origin} if origin else {}
            with c.websocket_connect("ws://127.0.0.1:8000/explorer/ws", headers=headers,
                                     subprotocols=["bokeh", token]) as ws:
                return json.loads(ws.receive_text())["msgtype"]

        assert connect(LOCAL) == "ACK"
        assert connect("https://explorer.lab") == "ACK"
        for origin in ("http://evil.example", "http://127.0.0.1:9999", None):
            with pytest.raises(WebSocketDisconnect) as refused:
                connect(origin)
            assert refused.value.code == 1008, origin

        assert "antigravity" not in sys.modules
        for path in ("antigravity/x/__css__/a.css", "this/x/__css__/a.css",
                     "panel.widgets/Select/__css__/x.css", "panel/Nope/__css__/a.css",
                     "panel", "os/path/_css/etc/passwd"):
            r = c.get(f"/components/{path}")
            assert r.status_code in (400, 403, 404), (path, r.status_code)
        assert "antigravity" not in sys.modules


def test_kernels_warm_up_in_the_background(client, small_id):
    """The server answers at once and says when its kernels are compiled; then the first
    point read and the first interpolation are served (timings: docs/service.md)."""
    deadline = time.monotonic() + 600
    while not client.get("/api/health").json()["warm"]:
        assert time.monotonic() < deadline, "the warm-up never finished"
        time.sleep(0.5)
    r = client.get(f"/api/grids/{small_id}/point",
                   params={"eps": -15.5, "dV": 5, "dT": 5, "interp": "true"})
    assert r.status_code == 200 and r.json()["regime"] == "absolute_negative_mobility"


def test_the_landing_page_opens_the_papers_map():
    from phasemap.query import load_spec
    from phasemap.service.explorer import default_dataset, paper_map_ids

    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    paper = spec_id(load_spec(repo / "pipelines" / "paper" / "maps_eps_dV.yaml"))
    assert paper_map_ids()[0] == paper

    def record(rid, shape, created):
        return {"id": rid, "shape": shape, "points": int(np.prod(shape)), "created": created}

    records = [record(paper, [401, 401], "2026-01-01"), record("line", [801, 1], "2026-01-02"),
               record("big", [1001, 1001], "2026-01-03"),
               record("usertest", [3, 2], "2026-12-01")]  # the newest: a user's test grid
    assert default_dataset(records, paper_map_ids()) == paper
    assert default_dataset(records[1:], paper_map_ids()) == "big"   # the largest map
    assert default_dataset(records[1:2], paper_map_ids()) == "line"
    assert default_dataset([], paper_map_ids()) is None


