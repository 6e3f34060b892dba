"""Crash safety: a ``phasemap compute`` killed with SIGKILL, and two computes racing.

The processes are real ``python -m phasemap.cli`` subprocesses writing a real store; the
kill lands once some shards are committed and before the last one is.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import subprocess_env as _env
from typer.testing import CliRunner

import phasemap
from phasemap import GridSpec, StoreError
from phasemap.cli import app
from phasemap.store import FamilyLayout, Store, compute, plan, spec_id

OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s", "p1", "regime", "machine")

#: About 5e6 points over 20+ shards: several seconds of computing on two threads.
BIG = {"model": "single_level", "params": {"dT": 5.0},
       "axes": {"eps": {"start": -204.8, "stop": 204.7, "num": 4096},
                "dV": {"start": -6.4, "stop": 6.39, "num": 1280}}}
#: 16 shards, so that the two racing processes overlap while they compute.
RACE = {"model": "single_level", "params": {"dT": 4.0, "mu": 1.0},
        "axes": {"eps": {"start": -204.8, "stop": 204.7, "num": 4096},
                 "dV": {"start": -128.0, "stop": 127.5, "num": 512}}}


def _cli(spec: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "phasemap.cli", "compute", str(spec), "--store", str(store)]


def _write(spec: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))  # axis order is part of the key
    return path


def _points_computed(stdout: str) -> int:
    m = re.search(r"([\d,]+) points computed", stdout)
    assert m, stdout
    return int(m.group(1).replace(",", ""))


def _shard_bytes(root: Path) -> dict[str, bytes]:
    base = root / "families"
    return {str(p.relative_to(base)): p.read_bytes()
            for p in base.glob("*/*/c/**/*") if p.is_file()}


def _same_bytes(a, b) -> None:
    a, b = a.load(), b.load()  # one read each: the derived outputs share J_L
    for name in OUTPUTS:
        va, vb = np.asarray(a[name].values), np.asarray(b[name].values)
        assert va.dtype == vb.dtype and va.tobytes() == vb.tobytes(), name


def test_sigkill_mid_compute_leaves_a_consistent_store_and_resumes(tmp_path):
    spec = GridSpec.from_dict(BIG)
    layout = FamilyLayout.from_spec(spec)
    spec_path = _write(BIG, tmp_path / "big.yaml")
    store_dir = tmp_path / "killed"
    total = len(plan(spec, Store(tmp_path / "empty")).needed)
    assert total >= 16, "grid too small to be killed mid-way"
    commits = store_dir / "families" / layout.key / "commits"

    proc = subprocess.Popen(_cli(spec_path, store_dir), env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            n = len([p for p in commits.glob("*") if not p.name.startswith(".")]) \
                if commits.is_dir() else 0
            if n >= 2:
                break
            assert proc.poll() is None, "compute ended before it could be killed: " + \
                proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no commit record appeared"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    store = Store(store_dir)
    committed = Store(store_dir).family(layout, create=False).committed()
    assert 2 <= len(committed) < total, (len(committed), total)
    # every committed shard is whole: present, of its recorded size, checksums intact
    assert store.verify() == []
    # the request never finished: nothing claims the grid exists, and opening it says so
    assert store.requests() == []
    with pytest.raises(StoreError, match="compute it first"):
        store.open(spec)
    # the planner sees exactly the uncommitted shards as missing (written-but-uncommitted
    # shards included: they are recomputed, identically)
    p = plan(spec, store)
    assert set(p.missing) == set(p.needed) - committed

    # rerun the same command (in this process, to spare a second interpreter start-up)
    resumed = CliRunner().invoke(app, ["compute", str(spec_path), "--store", str(store_dir)])
    assert resumed.exit_code == 0, resumed.output
    held = sum(store.family(layout, create=False).commit_record(s)["points"] for s in committed)
    assert _points_computed(resumed.stdout) == spec.size - held  # partial shards (issue 14)
    assert store.verify() == []
    store.gc(grace_seconds=0)  # removes any temporary a killed writer left behind

    clean_dir = tmp_path / "uninterrupted"
    clean = compute(spec, Store(clean_dir))
    assert clean.attrs["points_computed"] == spec.size
    after = compute(spec, store)
    assert after.attrs["points_computed"] == 0
    # the same bytes on disk, hence the same dataset (the rest derives from J_L on read)
    assert _shard_bytes(store_dir) == _shard_bytes(clean_dir)
    assert after.J_L.values.tobytes() == clean.J_L.values.tobytes()
    window = {"eps": slice(1000, 1600), "dV": slice(300, 700)}
    _same_bytes(after.isel(window), clean.isel(window))


def test_two_processes_computing_the_same_grid_at_once(tmp_path):
    spec = GridSpec.from_dict(RACE)
    spec_path = _write(RACE, tmp_path / "race.yaml")
    store_dir = tmp_path / "shared"
    procs = [subprocess.Popen(_cli(spec_path, store_dir), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "points computed" in out
    needed = len(plan(spec, Store(store_dir)).needed)
    # between them they computed every shard at least once (both may compute some)
    assert sum(_points_computed(o) for o, _ in outs) >= spec.size
    assert needed > 1

    store = Store(store_dir)
    assert store.verify() == []
    assert [r["id"] for r in store.requests()] == [spec_id(spec)]
    ds = compute(spec, store)
    assert ds.attrs["points_computed"] == 0
    _same_bytes(ds, phasemap.evaluate_spec(spec))
