"""The benchmark suite cannot rot: its quick mode runs here and must print every figure.

No wall-clock asserts (the machine is shared); only that each figure and its reference are
printed with a ratio. Also checks the two fast paths the benchmarks rely on: the store's own
shard writer and reader produce and read exactly what Zarr's sharding codec does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

FIGURES = [
    r"evaluate \(in memory\): .* \| numba prange yardstick",
    r"end-to-end compute into the store: .* \| naive xarray\+dask, to_zarr defaults",
    r"end-to-end compute into the store: .* \| storage limit: the store's shard writer",
    r"end-to-end compute into the store: .* \| storage limit: Zarr's own sharded write",
    r"end-to-end compute into the store: .* \| compute limit: J_L yardstick alone",
    r"cache hit \(open \+ read one value\): .* ms \| naive Zarr",
    r"point query \(open dataset: select \+ read\): .* ms \| naive Zarr",
    r"2-D slice, every output: .* ms \| naive Zarr",
    r"peak RSS computing .* GiB \| size of the grid's outputs",
    r"pauli per-point cost: .* ns/pt \| single_level per point",
    r"points computed per point requested, 4-D survey .* Mpts \| points requested",
    r"points computed per point requested, paper-like .* Mpts \| points requested",
    r"points computed per point requested, 2-D map .* Mpts \| points requested",
    r"scale-out: 2 worker processes: .* Mpts/s \| 1 worker process",
    r"scale-out: points per worker CPU-second, 2 workers: .* \| 1 worker",
    r"scale-out limit: scheduler CPU per task: .* ms \| worker CPU per task",
    r"scale-out limit: shard objects the storage writes: .* shards/s \| shards one worker",
    r"2-D slice \(eps, dV\) of the 4-D dataset, .* ms \| contiguous numpy memmap read",
    r"2-D slice \(eps, dT\) of the 4-D dataset, .* ms \| contiguous numpy memmap read",
    r"2-D slice \(eps, T\) of the 4-D dataset, .* ms \| contiguous numpy memmap read",
    r"2-D slice \(dT, dV\) of the 4-D dataset, .* ms \| contiguous numpy memmap read",
    r"cache hit on the .*-point 4-D dataset: .* ms \| cache hit on a .*-point dataset",
]


@pytest.mark.slow
def test_quick_benchmark_prints_every_figure(tmp_path):
    env = dict(os.environ)
    env.pop("PHASEMAP_STORE", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--markdown",
         "--no-slurm",
         "--workdir", str(tmp_path), "--json", str(tmp_path / "figures.json")],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"\d+ cores", out)
    for lib in ("numpy", "numba", "dask", "distributed", "xarray", "zarr", "numcodecs"):
        assert re.search(rf"{lib} \d", out), lib
    for pattern in FIGURES:
        lines = [ln for ln in out.splitlines()
                 if re.search(pattern, ln) and not ln.startswith("|")]
        assert lines, f"figure missing: {pattern}\n{out}"
        assert all(re.search(r"ratio \d+\.\d+x", ln) for ln in lines), lines
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert len(figures["rows"]) == len(FIGURES)
    assert all(np.isfinite(r["value"]) and r["value"] > 0 for r in figures["rows"])
    assert "| figure | value | reference |" in out
    # everything it built was in its work directory, and is gone
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("bench-")]


def test_shard_writer_and_reader_match_zarr(tmp_path):
    """The store's shard bytes are Zarr's, its reader agrees with Zarr's, and corruption is
    caught by the per-chunk CRC32C on both paths."""
    import zarr

    from phasemap.store import core

    store = core.Store(str(tmp_path))
    arr = zarr.create_array(store.zstore, name="x", shape=(2**20, 4, 2**20), shards=(64, 1, 128),
                            chunks=(16, 1, 32), dtype="f8", fill_value=np.nan,
                            compressors=core.compressors(), config={"write_empty_chunks": True})
    rng = np.random.default_rng(1)
    data = np.cumsum(rng.standard_normal((64, 1, 128)), axis=-1)
    enc = core._shard_encoder(store, "x")
    assert enc is not None
    ours = enc.encode(data)
    arr[64:128, 2:3, 0:128] = data
    theirs = (tmp_path / "x" / "c" / "1" / "2" / "0").read_bytes()
    assert ours == theirs
    store.write_blob("x/c/1/2/0", ours)
    sel = (slice(70, 101), slice(2, 3), slice(5, 77))
    got = enc.read(store.root, "x", sel, np.nan)
    assert got.tobytes() == arr[sel].tobytes()
    # an unwritten shard reads as the fill value
    assert np.isnan(enc.read(store.root, "x", (slice(0, 3), slice(0, 1), slice(0, 3)),
                             np.nan)).all()
    corrupt = bytearray(ours)
    corrupt[100] ^= 0xFF
    store.write_blob("x/c/1/2/0", bytes(corrupt))
    with pytest.raises(ValueError, match="checksum"):
        enc.read(store.root, "x", sel, np.nan)
    with pytest.raises(Exception):  # noqa: B017 - Zarr's own error type varies by version
        arr[sel]


SLURM_FIGURES = [
    r"--cluster slurm, 1 job: .* Mpts/s \| LocalCluster, 1 worker process",
    r"--cluster slurm, 2 jobs: .* Mpts/s \| LocalCluster, 2 worker processes",
    r"--cluster slurm: 2 jobs: .* Mpts/s \| 1 job",
]


def _slurm_up() -> bool:
    import shutil

    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                             timeout=20).stdout
    except (subprocess.TimeoutExpired, OSError):
        return False
    return any(s.strip().rstrip("*") in ("idle", "mixed", "allocated", "completing")
               for s in out.split())


@pytest.mark.slow
@pytest.mark.cluster
def test_quick_benchmark_runs_the_slurm_figures(tmp_path):
    """The --cluster slurm section (1 and 2 jobs, beside the LocalCluster reference of the
    same run) on the single-node SLURM that ``.ci/run`` starts; skipped without one."""
    if not _slurm_up():
        pytest.skip("no SLURM node is up: `bash .ci/slurm-up.sh` starts one")
    env = dict(os.environ)
    env.pop("PHASEMAP_STORE", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "8",
         "--slurm", "--workdir", str(tmp_path), "--json", str(tmp_path / "figures.json")],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for pattern in SLURM_FIGURES:
        lines = [ln for ln in result.stdout.splitlines() if re.search(pattern, ln)]
        assert lines and all(re.search(r"ratio \d+\.\d+x", ln) for ln in lines), pattern
    rows = json.loads((tmp_path / "figures.json").read_text())["rows"]
    slurm = [r for r in rows if r["figure"].startswith("--cluster slurm")]
    assert len(slurm) == 3 and all(np.isfinite(r["value"]) and r["value"] > 0 for r in slurm)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("bench-")]
