"""Computing through clusters that are not the embedded default.

* a real ``dask scheduler`` and two ``dask worker`` processes on loopback, used through a
  scheduler file and through its ``tcp://`` address;
* a single-node SLURM cluster used through dask-jobqueue (``.ci/run`` starts it with
  ``.ci/slurm-up.sh``; the tests only use it).

Both must give the same bytes as the embedded cluster. The job-queue YAML files shipped in
``pipelines/cluster/`` are checked to be valid dask-jobqueue arguments.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import REPO
from helpers import subprocess_env as _env

import phasemap
from phasemap import GridSpec
from phasemap.store import Store, compute

SPEC = {"model": "single_level", "params": {"dT": 5.0},
        "axes": {"eps": {"start": -60.0, "stop": 60.0, "num": 1201},
                 "dV": {"start": -6.0, "stop": 6.0, "num": 13}}}
OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1", "regime", "machine")


def _start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    fh = log.open("wb")
    return subprocess.Popen(args, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=_env(),
                            start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    """Terminate the processes this test started (their own process groups), then kill."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def _phasemap(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "phasemap.cli", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _same_bytes(a, b) -> None:
    a, b = a.load(), b.load()  # one read each: the derived outputs share J_L
    for name in OUTPUTS:
        va, vb = np.asarray(a[name].values), np.asarray(b[name].values)
        assert va.dtype == vb.dtype and va.tobytes() == vb.tobytes(), name


def _shard_bytes(root: Path) -> dict[str, bytes]:
    base = root / "families"
    return {str(p.relative_to(base)): p.read_bytes()
            for p in base.glob("*/*/c/**/*") if p.is_file()}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """The grid computed by the embedded default (the reference for every cluster)."""
    root = tmp_path_factory.mktemp("embedded") / "store"
    ds = compute(GridSpec.from_dict(SPEC), Store(root))
    _same_bytes(ds, phasemap.evaluate_spec(GridSpec.from_dict(SPEC)))
    return ds, root


# --- dask.distributed on loopback -------------------------------------------------------

@pytest.mark.cluster
def test_scheduler_file_and_address_on_a_loopback_cluster(tmp_path, embedded,
                                                           monkeypatch):
    from distributed import Client
    from typer.testing import CliRunner

    from phasemap.cli import app

    ref, ref_root = embedded
    spec_path = tmp_path / "grid.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    sched_file = tmp_path / "scheduler.json"
    workers_cwd = tmp_path / "elsewhere"  # workers run in another directory than the CLI
    workers_cwd.mkdir()
    procs: list[subprocess.Popen] = []
    client = None
    try:
        procs.append(_start([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                             "--port", "0", "--no-dashboard", "--scheduler-file",
                             str(sched_file)], tmp_path, tmp_path / "scheduler.log"))
        deadline = time.monotonic() + 60
        while not (sched_file.exists() and sched_file.stat().st_size):
            assert procs[0].poll() is None, (tmp_path / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "scheduler did not write its file"
            time.sleep(0.1)
        for i in range(2):
            procs.append(_start([sys.executable, "-m", "dask", "worker", "--scheduler-file",
                                 str(sched_file), "--host", "127.0.0.1", "--nthreads", "1",
                                 "--no-nanny",
                                 "--no-dashboard", "--name", f"w{i}", "--local-directory",
                                 str(tmp_path / f"w{i}")], workers_cwd,
                                tmp_path / f"worker{i}.log"))
        client = Client(scheduler_file=str(sched_file), timeout="30s", set_as_default=False)
        client.wait_for_workers(2, timeout=90)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")

        # 1. the scheduler file, with the store given relative to the CLI's cwd
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(app, ["compute", str(spec_path), "--scheduler",
                                          str(sched_file), "--store", "store-a"])
        assert result.exit_code == 0, result.output
        assert "points computed" in result.stdout
        assert not (workers_cwd / "store-a").exists(), "workers wrote relative to their cwd"
        store_a = Store(tmp_path / "store-a")
        assert store_a.verify() == []
        ds = compute(GridSpec.from_dict(SPEC), store_a)
        assert ds.attrs["points_computed"] == 0
        _same_bytes(ds, ref)
        assert _shard_bytes(tmp_path / "store-a") == _shard_bytes(ref_root)

        # 2. the tcp:// address
        result = CliRunner().invoke(app, ["compute", str(spec_path), "--scheduler", address,
                                          "--store", str(tmp_path / "store-b")])
        assert result.exit_code == 0, result.output
        _same_bytes(compute(GridSpec.from_dict(SPEC), tmp_path / "store-b"), ref)

        # the shards really ran on this scheduler's workers
        def prefixes(dask_scheduler):
            return {name: dict(tp.state_counts) for name, tp in
                    dask_scheduler.task_prefixes.items()}

        seen = client.run_on_scheduler(prefixes)
        shard_tasks = {k: v for k, v in seen.items() if "shard" in k}
        assert shard_tasks, seen
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 2
        assert all(w.startswith("tcp://127.0.0.1:") for w in workers), workers
    finally:
        if client is not None:
            client.close()
        _stop(procs[1:])
        _stop(procs[:1])


# --- SLURM through dask-jobqueue --------------------------------------------------------

def _slurm_node_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                             timeout=20).stdout
    except (subprocess.TimeoutExpired, OSError):
        return False
    return any(s.strip().rstrip("*") in ("idle", "mixed", "allocated", "completing")
               for s in out.split())


def _require_slurm() -> None:
    """Use the running single-node SLURM; the tests never start it (``.ci/run`` does, with
    ``.ci/slurm-up.sh``, and stops it afterwards). Skipped without it (a failure under CI)."""
    if not _slurm_node_up():
        pytest.skip("no SLURM node is up: start one with `bash .ci/slurm-up.sh` "
                    "(.ci/run does), stop it with `bash .ci/slurm-down.sh`")


def _squeue(job_name: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-n", job_name, "-o", "%i %T"], capture_output=True,
                         text=True, timeout=20).stdout
    return [line for line in out.splitlines() if line.strip()]


@pytest.mark.cluster
def test_slurm_cluster_through_dask_jobqueue(tmp_path, embedded):
    _require_slurm()
    ref, ref_root = embedded
    job_name = f"phasemap-test-{uuid.uuid4().hex[:8]}"
    logs = tmp_path / "slurm-logs"
    config = yaml.safe_load((REPO / "pipelines" / "cluster" / "slurm.yaml").read_text())
    config.update(log_directory=str(logs), local_directory=str(tmp_path / "worker"),
                  job_name=job_name, worker_timeout=120)
    cfg_path = tmp_path / "slurm.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    spec_path = tmp_path / "grid.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    try:
        res = _phasemap("compute", str(spec_path), "--cluster", "slurm", "--cluster-config",
                        str(cfg_path), "--store", str(tmp_path / "store"), cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        assert "points computed" in res.stdout
        ds = compute(GridSpec.from_dict(SPEC), tmp_path / "store")
        assert ds.attrs["points_computed"] == 0
        _same_bytes(ds, ref)
        assert _shard_bytes(tmp_path / "store") == _shard_bytes(ref_root)
        # a job of ours ran (its log names it) ...
        job_logs = list(logs.glob(f"{job_name}-*.err"))
        assert job_logs, f"no SLURM job log in {logs}"
        # ... and nothing of ours is left in the queue once the cluster is closed
        deadline = time.monotonic() + 30
        while _squeue(job_name) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _squeue(job_name) == []
    finally:
        left = _squeue(job_name) if shutil.which("squeue") else []
        for line in left:  # only jobs this test submitted
            subprocess.run(["scancel", line.split()[0]], timeout=20, check=False)


# --- the shipped job-queue configurations ----------------------------------------------

@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_shipped_jobqueue_configs_are_valid_arguments(kind):
    import dask_jobqueue

    from phasemap.cluster import JOBQUEUE

    config = yaml.safe_load((REPO / "pipelines" / "cluster" / f"{kind}.yaml").read_text())
    assert int(config.pop("jobs")) >= 1
    config.pop("worker_timeout", None)
    job_cls = getattr(dask_jobqueue, JOBQUEUE[kind]).job_cls
    script = job_cls(scheduler="tcp://127.0.0.1:8786", name="check", **config).job_script()
    assert "distributed.cli.dask_worker" in script and "tcp://127.0.0.1:8786" in script


def test_embedded_client_listens_on_loopback_only():
    """distributed opens HTTP endpoints even without a dashboard: none on a public address."""
    import psutil

    from phasemap.cluster import embedded_client

    before = {c.laddr for c in psutil.Process().net_connections(kind="inet")
              if c.status == psutil.CONN_LISTEN}
    with embedded_client(1) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        listening = [c.laddr for c in psutil.Process().net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr not in before]
    assert listening, "expected the cluster's HTTP endpoints"
    assert all(addr.ip in ("127.0.0.1", "::1") for addr in listening), listening
