"""phasemap benchmark suite: every figure beside a reference measured in the same run.

    python benchmarks/run.py            # the full suite (~3 min on 2 cores, ~15 GB of disk)
    python benchmarks/run.py --quick    # a smoke run of every figure on small grids (CI)
    python benchmarks/run.py --markdown # also print the table as Markdown (docs/performance.md)

Figures (see benchmarks/README.md for what each one measures and why):

1. ``evaluate`` in memory against the numba yardstick (benchmarks/yardstick.py);
2. end-to-end ``phasemap.compute`` of a 1e8-point grid into a fresh store, against the naive
   pipeline (closed forms in plain xarray on dask, ``to_zarr`` at default settings) and the
   storage limit (writing the already computed J_L with the store's codec and shards);
3. a cache hit, a point query and a 1e6-point 2-D slice on that grid, against the same
   operations on the naive pipeline's Zarr;
4. peak RSS of computing a 1e9-point grid in a subprocess (the ``phasemap compute`` CLI),
   polled with psutil and the child's VmHWM;
5. the per-point cost of the ``pauli`` model against ``single_level``;
6. points the planner computes per point requested, for grids users write;
7. scale-out: the same compute on a LocalCluster of 1 and 2 worker processes.

Everything is built here, in temporary directories, and removed at the end.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import yardstick  # noqa: E402

import phasemap  # noqa: E402
from phasemap.store import core  # noqa: E402
from phasemap.store.layout import FamilyLayout  # noqa: E402

GIB = 2**30


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    reference: str
    ref_value: float
    target: str = ""
    met: bool | None = None
    #: "higher" when a larger value is better (throughput), "lower" for times and memory
    better: str = "higher"

    @property
    def ratio(self) -> float:
        if not self.ref_value:
            return math.nan
        return self.value / self.ref_value


ROWS: list[Row] = []


def add(row: Row) -> None:
    ROWS.append(row)
    met = "" if row.met is None else ("met" if row.met else "MISSED")
    print(f"  {row.figure}: {fmt(row.value)} {row.unit} | {row.reference}: "
          f"{fmt(row.ref_value)} {row.unit} | ratio {row.ratio:.2f}x"
          + (f" | target {row.target}: {met}" if row.target else ""), flush=True)


def fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3g}"


def best(fn, repeat: int) -> float:
    """Best wall time of ``repeat`` calls (the machine is shared: the minimum is the figure
    least disturbed by other work)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def median_ms(fn, repeat: int) -> float:
    fn()  # warm: imports, numba dispatch, open-array caches
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


# --- 1. evaluate in memory ----------------------------------------------------------------

def bench_evaluate(n: int, repeat: int) -> None:
    print(f"\n[1] evaluate in memory, {n} x {n} (eps, dV) grid, T=7.5, dT=5, every output",
          flush=True)
    eps = np.linspace(-40.0, 40.0, n)
    dV = np.linspace(-20.0, 20.0, n)
    # identical numbers first: the yardstick computes exactly what evaluate returns
    ref = yardstick.fused_grid(eps, dV)
    ds = phasemap.evaluate(eps=eps, dV=dV, T=7.5, dT=5.0)
    for name, arr in ref.items():
        if arr.tobytes() != ds[name].values.tobytes():
            raise SystemExit(f"evaluate and the yardstick disagree on {name}")
    # alternated, so that both see the same moments of a shared machine; best of each
    t_eval = t_ys = math.inf
    for _ in range(repeat):
        t_eval = min(t_eval, best(lambda: phasemap.evaluate(eps=eps, dV=dV, T=7.5, dT=5.0), 1))
        t_ys = min(t_ys, best(lambda: yardstick.fused_grid(eps, dV), 1))
    pts = n * n / 1e6
    add(Row("evaluate (in memory)", pts / t_eval, "Mpts/s",
            "numba prange yardstick, same outputs", pts / t_ys, ">= 0.8x",
            pts / t_eval >= 0.8 * pts / t_ys))


# --- 2. end to end ------------------------------------------------------------------------

def grid_spec(n_eps: int, n_T: int, n_dT: int, n_dV: int, name: str) -> dict:
    """Maps over (eps, dV) at a few temperatures T and differences dT (explicit values)."""
    T = [round(2.5 + 0.5 * i, 6) for i in range(n_T)]
    dT = ([round(-4.5 + 9.0 * i / (n_dT - 1), 6) for i in range(n_dT)] if n_dT > 1 else [2.0])
    return {"model": "single_level", "name": name,
            "axes": {"eps": {"start": -50.0, "stop": -50.0 + 0.1 * (n_eps - 1), "num": n_eps},
                     "T": T, "dT": dT,
                     "dV": {"start": -25.0, "stop": -25.0 + 0.05 * (n_dV - 1), "num": n_dV}}}


def naive_pipeline(spec: dict, path: Path, chunks: dict[str, int]) -> None:
    """The closed forms in plain xarray on dask (the stable formulas in plain numpy), four
    outputs saved with ``to_zarr`` at default settings: what one writes without phasemap."""
    import xarray as xr

    axes = phasemap.GridSpec.from_dict(spec).coords()
    c = {k: xr.DataArray(v, dims=k, coords={k: v}).chunk({k: chunks[k]})
         for k, v in axes.items()}
    eps, T, dT, dV = c["eps"], c["T"], c["dT"], c["dV"]
    mu, gamma = 0.0, 2.0 * 2.0 / (2.0 + 2.0)
    TL, TR = T + dT / 2, T - dT / 2
    eL, eR = eps - (mu + dV / 2), eps - (mu - dV / 2)
    xL, xR = eL / TL, eR / TR
    d = ((eps - mu) * dT + T * dV) / (TL * TR)
    # f(x) = 1/(1+e^x) and 1 - f(x) = f(-x), without overflow
    fL, gL = np.exp(-np.logaddexp(0.0, xL)), np.exp(-np.logaddexp(0.0, -xL))
    fR, gR = np.exp(-np.logaddexp(0.0, xR)), np.exp(-np.logaddexp(0.0, -xR))
    diff = xr.where(d <= 0, gL * fR * np.expm1(d), -gR * fL * np.expm1(-d))
    J = gamma * diff
    ds = xr.Dataset({"J_L": J, "Q_L": eL * J, "Q_R": eR * J, "s": J * d})
    ds = ds.transpose("eps", "T", "dT", "dV")
    with np.errstate(all="ignore"):
        ds.to_zarr(path, mode="w")


def storage_limit_zarr(J: np.ndarray, path: Path, layout: FamilyLayout) -> float:
    """Seconds to write ``J`` into a Zarr array with the store's codecs, shards and inner
    chunks through Zarr itself (dask.array.store, a thread per core)."""
    import dask.array as da
    import zarr

    arr = zarr.create_array(zarr.storage.LocalStore(str(path)), name="J_L", shape=J.shape,
                            shards=layout.shard_shape, chunks=layout.inner_shape,
                            dtype="f8", fill_value=np.nan, compressors=core.compressors(),
                            config={"write_empty_chunks": True})
    t = time.perf_counter()
    da.from_array(J, chunks=layout.shard_shape).store(arr, lock=False, scheduler="threads")
    return time.perf_counter() - t


def storage_limit_store(J: np.ndarray, path: Path, layout: FamilyLayout) -> float:
    """Seconds to write ``J`` as whole shards through the store's own shard writer (encode
    with the store's codecs, one atomic put per shard), a thread per core: the floor of the
    write half of ``phasemap.compute``."""
    import zarr

    st = core.Store(str(path))
    zarr.create_array(st.zstore, name="J_L", shape=layout.shape, shards=layout.shard_shape,
                      chunks=layout.inner_shape, dtype="f8", fill_value=np.nan,
                      compressors=core.compressors(), config={"write_empty_chunks": True})
    enc = core._shard_encoder(st, "J_L")
    sh = layout.shard_shape
    # whole shards, as compute writes them (edges padded before the clock starts)
    padded = np.full([math.ceil(n / s) * s for n, s in zip(J.shape, sh, strict=True)], np.nan)
    padded[tuple(slice(0, n) for n in J.shape)] = J
    keys = list(np.ndindex(*[p // s for p, s in zip(padded.shape, sh, strict=True)]))

    def one(key):
        sel = tuple(slice(i * s, (i + 1) * s) for i, s in zip(key, sh, strict=True))
        st.write_blob("J_L/c/" + "/".join(map(str, key)),
                      enc.encode(padded[sel]))

    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(one, keys))
    return time.perf_counter() - t


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def bench_end_to_end(spec: dict, work: Path, repeat: int) -> tuple[Path, dict]:
    g = phasemap.GridSpec.from_dict(spec)
    pts = g.size / 1e6
    print(f"\n[2] end to end: {' x '.join(map(str, g.shape))} = {g.size:,} points "
          f"({', '.join(g.dims)}), fresh store each time", flush=True)
    layout = FamilyLayout.from_spec(g)
    # Warm up both paths on a small grid first (the store kernel is compiled or loaded from
    # numba's cache on first use: a one-off cost, not throughput).
    small = dict(spec, name="warm-up", axes=dict(spec["axes"], T=spec["axes"]["T"][:1],
                                                 dT=spec["axes"]["dT"][:1]))
    warm = phasemap.compute(small, store=str(work / "warm-up"))
    storage_limit_store(warm.J_L.values, work / "warm-up-limit",
                        FamilyLayout.from_spec(phasemap.GridSpec.from_dict(small)))
    # End to end and the store's writer alternate, so both see the same state of the machine
    # and its page cache, and take turns at going first (file creation on ext4 is slower for
    # whatever runs right after many files were written or deleted). Nothing is deleted
    # until the last run: creating files next to recently deleted ones costs more.
    times, t_stores, store, J = [], [], None, None
    for i in range(repeat):
        store = work / f"store{i}"

        def e2e(store=store):
            t = time.perf_counter()
            ds = phasemap.compute(spec, store=str(store))
            times.append(time.perf_counter() - t)
            return ds

        if i % 2 == 0 or J is None:
            ds = e2e()
            J = ds.J_L.values if J is None else J  # the already computed array, in memory
            t_stores.append(storage_limit_store(J, work / f"limit_store{i}", layout))
        else:
            t_stores.append(storage_limit_store(J, work / f"limit_store{i}", layout))
            ds = e2e()
    t_e2e, t_store = min(times), min(t_stores)
    for i in range(repeat):
        shutil.rmtree(work / f"limit_store{i}")
        if i < repeat - 1:
            shutil.rmtree(work / f"store{i}")
    size = du(store)
    print(f"  phasemap.compute: {t_e2e:.2f} s, {size / 2**20:,.0f} MiB on disk, "
          f"{len(ds.data_vars)} outputs readable (J_L stored); the store's shard writer "
          f"alone: {t_store:.2f} s", flush=True)

    naive = work / "naive.zarr"
    chunks = {"eps": min(250, g.shape[0]), "T": min(5, g.shape[1]), "dT": min(5, g.shape[2]),
              "dV": min(250, g.shape[3])}
    t = time.perf_counter()
    naive_pipeline(spec, naive, chunks)
    t_naive = time.perf_counter() - t
    print(f"  naive pipeline: {t_naive:.2f} s, {du(naive) / 2**20:,.0f} MiB on disk, "
          f"4 outputs, chunks {tuple(chunks.values())}", flush=True)

    t_zarr = min(storage_limit_zarr(J, work / f"limit_zarr{i}", layout) for i in range(repeat))
    del J
    for i in range(repeat):
        shutil.rmtree(work / f"limit_zarr{i}")
    e2e = pts / t_e2e
    add(Row("end-to-end compute into the store", e2e, "Mpts/s",
            "naive xarray+dask, to_zarr defaults", pts / t_naive, ">= 5x",
            e2e >= 5 * pts / t_naive))
    add(Row("end-to-end compute into the store", e2e, "Mpts/s",
            "storage limit: the store's shard writer", pts / t_store, ">= 0.7x",
            e2e >= 0.7 * pts / t_store))
    add(Row("end-to-end compute into the store", e2e, "Mpts/s",
            "storage limit: Zarr's own sharded write", pts / t_zarr, ">= 0.7x",
            e2e >= 0.7 * pts / t_zarr))
    eps, dV = g.coords()["eps"], g.coords()["dV"]
    t_k = best(lambda: yardstick.current_grid(eps, dV), repeat)
    add(Row("end-to-end compute into the store", e2e, "Mpts/s",
            "compute limit: J_L yardstick alone", len(eps) * len(dV) / 1e6 / t_k))
    return store, {"naive": naive, "spec": spec}


# --- 3. queries ---------------------------------------------------------------------------

def bench_queries(store: Path, ctx: dict, repeat: int) -> None:
    import xarray as xr

    from phasemap.query import point_record

    spec = ctx["spec"]
    g = phasemap.GridSpec.from_dict(spec)
    coords = g.coords()
    rid = core.spec_id(g)
    rng = np.random.default_rng(0)
    picks = [{d: float(rng.choice(v)) for d, v in coords.items()} for _ in range(repeat + 1)]
    print(f"\n[3] queries on that grid (median of {repeat}; in-process, as the service "
          f"answers them)", flush=True)

    def cache_hit(i=0):
        ds = phasemap.compute(spec, store=str(store))
        return float(ds.J_L[i % 7, 0, 0, i % 11])

    def naive_hit(i=0):
        ds = xr.open_zarr(ctx["naive"])
        return float(ds.J_L[i % 7, 0, 0, i % 11])

    t_hit = median_ms(cache_hit, repeat)
    add(Row("cache hit (open + read one value)", t_hit, "ms",
            "naive Zarr: open + read one value", median_ms(naive_hit, repeat), "<= 50 ms",
            t_hit <= 50, better="lower"))

    # The service keeps opened datasets (phasemap.service's DatasetCache): a point query is
    # point_record on an open dataset, which reads one inner chunk per stored output.
    opened = core.Store(str(store)).open(rid)
    naive_opened = xr.open_zarr(ctx["naive"])

    def point(i=0):
        return point_record(opened, picks[i])

    def naive_point(i=0):
        return naive_opened.sel(picks[i], method="nearest").compute()

    t_point = median_ms(point, repeat)
    add(Row("point query (open dataset: select + read)", t_point, "ms",
            "naive Zarr: open dataset, select + compute", median_ms(naive_point, repeat),
            "<= 10 ms", t_point <= 10, better="lower"))

    T, dT = coords["T"], coords["dT"]
    n_slice = len(coords["eps"]) * len(coords["dV"])

    def slab(i=0):
        ds = core.Store(str(store)).open(rid)
        return ds.sel(T=T[i % len(T)], dT=dT[i % len(dT)]).compute()

    def naive_slab(i=0):
        ds = xr.open_zarr(ctx["naive"])
        return ds.sel(T=T[i % len(T)], dT=dT[i % len(dT)]).compute()

    t_slice = median_ms(slab, max(3, repeat // 3))
    add(Row(f"{n_slice:,}-point 2-D slice, every output", t_slice, "ms",
            "naive Zarr: same slice, its 4 outputs", median_ms(naive_slab, max(3, repeat // 3)),
            "<= 200 ms", t_slice <= 200, better="lower"))


# --- 4. peak RSS --------------------------------------------------------------------------

def bench_rss(spec: dict, work: Path) -> None:
    import psutil
    import yaml

    g = phasemap.GridSpec.from_dict(spec)
    path = work / "rss.yaml"
    path.write_text(yaml.safe_dump(spec))
    store = work / "rss-store"
    print(f"\n[4] peak RSS: `phasemap compute` of {' x '.join(map(str, g.shape))} = "
          f"{g.size:,} points in a subprocess", flush=True)
    cmd = [sys.executable, "-c", "from phasemap.cli import main; main()", "compute",
           str(path), "--store", str(store)]
    peak = 0
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ps = psutil.Process(proc.pid)
    out = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in
                                             ps.children(recursive=True))
            peak = max(peak, rss)
        # VmHWM: the kernel's own high-water mark of the child since exec (Linux)
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        time.sleep(0.05)
    reader.join()
    elapsed = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"phasemap compute failed:\n{out[0].decode()[-2000:]}")
    # Not getrusage(RUSAGE_CHILDREN): its ru_maxrss counts the pages a forked child shares with
    # this (large) parent before exec, which reported 2.6 GiB for a 0.3 GiB child here.
    size = du(store)
    shutil.rmtree(store)
    print(f"  {elapsed:.1f} s ({g.size / elapsed / 1e6:.1f} Mpts/s including start-up), "
          f"{size / GIB:.2f} GiB on disk", flush=True)
    outputs = g.nbytes / GIB
    add(Row(f"peak RSS computing {g.size:.0e} points", peak / GIB, "GiB",
            "size of the grid's outputs in memory", outputs, "< 2 GiB", peak < 2 * GIB,
            better="lower"))


# --- 5. pauli vs single_level -------------------------------------------------------------

def bench_pauli(n: int, repeat: int) -> None:
    eps = np.linspace(-40.0, 40.0, n)
    dV = np.linspace(-20.0, 20.0, n)
    print(f"\n[5] per-point cost: {n} x {n} grid through evaluate", flush=True)
    t_p = best(lambda: phasemap.evaluate("pauli", eps=eps, dV=dV, T=7.5, dT=5.0), repeat)
    t_s = best(lambda: phasemap.evaluate("single_level", eps=eps, dV=dV, T=7.5, dT=5.0),
               repeat)
    add(Row("pauli per-point cost", t_p / n / n * 1e9, "ns/pt", "single_level per point",
            t_s / n / n * 1e9, better="lower"))


# --- report -------------------------------------------------------------------------------

# --- 6. points computed per point requested (padding) --------------------------------------

def axis(start: float, step: float, num: int) -> dict:
    return {"start": start, "stop": start + step * (num - 1), "num": num}


def bench_padding(work: Path) -> None:
    """Points the planner would compute for grids users write, against the points asked for.

    Read from ``phasemap.store.plan`` on an empty store: nothing is computed. The issue's two
    grids: a 4-D survey (eps 1000 x T 10 x dT 100 x dV 1000) and the paper's kind of grid,
    a few T and dT with fine (eps, dV).
    """
    from phasemap.store import Store, plan

    print("\n[6] points computed / points requested (planner, empty store)", flush=True)
    store = Store(work / "padding")
    grids = {
        "4-D survey 1000x10x100x1000": {"eps": axis(-50, 0.1, 1000), "T": axis(4, 1, 10),
                                        "dT": axis(0, 0.08, 100), "dV": axis(-50, 0.1, 1000)},
        "paper-like 1000x7x3x1000": {"eps": axis(-50, 0.1, 1000), "T": axis(10, 1, 7),
                                     "dT": axis(0, 2.5, 3), "dV": axis(-25, 0.051, 1000)},
        "2-D map 401x401": {"eps": axis(-20, 0.1, 401), "dV": axis(-20, 0.1, 401)},
    }
    for name, axes in grids.items():
        spec = phasemap.GridSpec.from_dict({"model": "single_level", "name": name,
                                            "params": {"T": 7.5} if "T" not in axes else {},
                                            "axes": axes})
        p = plan(spec, store)
        ratio = p.points_to_compute / p.points
        add(Row(f"points computed per point requested, {name}", p.points_to_compute / 1e6,
                "Mpts", "points requested", p.points / 1e6, "<= 1.1x" if p.points >= 1e6
                else "", ratio <= 1.1 if p.points >= 1e6 else None, better="lower"))


# --- 7. scale-out on a LocalCluster of worker processes -------------------------------------

def bench_scale_out(spec: dict, work: Path) -> None:
    """``phasemap.compute`` on a dask LocalCluster of N single-threaded worker processes.

    N = 1 and N = 2 on this machine; the task stream gives the per-task time, from which the
    scheduler's overhead per task (wall time x N minus the busy time, per task) and the
    projection to larger N follow: throughput(N) <= N x shard_points / task_time, and the
    scheduler saturates at 1 / overhead tasks per second.
    """
    from distributed import Client, LocalCluster

    g = phasemap.GridSpec.from_dict(spec)
    print(f"\n[7] scale-out: {g.size:,} points on LocalCluster(processes, 1 thread each)",
          flush=True)
    rates = {}
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None, host="127.0.0.1") as cluster, \
                Client(cluster) as client:
            phasemap.compute(dict(spec, name="warm"), store=str(work / f"warm{n}"),
                             client=client)  # imports, numba cache loads on every worker
            client.get_task_stream()  # reset
            t = time.perf_counter()
            with contextlib.ExitStack():
                ds = phasemap.compute(spec, store=str(work / f"scale{n}"), client=client)
            wall = time.perf_counter() - t
            stream = client.get_task_stream()
        busy = sum(sum(s["stop"] - s["start"] for s in task["startstops"]
                       if s["action"] == "compute") for task in stream)
        tasks = max(1, sum(1 for task in stream if "shard" in str(task.get("key", ""))))
        rates[n] = ds.attrs.get("points_computed", g.size) / wall / 1e6
        overhead_ms = max(0.0, (wall * n - busy) / tasks * 1e3)
        print(f"  N={n}: {wall:.2f} s, {rates[n]:.1f} Mpts/s computed, {tasks} tasks, "
              f"busy {busy / max(wall * n, 1e-9):.0%} of worker time, "
              f"~{overhead_ms:.1f} ms idle per task", flush=True)
        shutil.rmtree(work / f"scale{n}", ignore_errors=True)
        shutil.rmtree(work / f"warm{n}", ignore_errors=True)
    add(Row("scale-out: 2 worker processes", rates[2], "Mpts/s", "1 worker process",
            rates[1], ">= 1.8x (0.9 N)", rates[2] >= 1.8 * rates[1]))


def versions() -> dict[str, str]:
    import dask
    import distributed
    import numba
    import numcodecs
    import xarray
    import zarr

    return {"python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "dask": dask.__version__,
            "distributed": distributed.__version__, "xarray": xarray.__version__,
            "zarr": zarr.__version__, "numcodecs": numcodecs.__version__,
            "phasemap": phasemap.__version__}


def markdown() -> str:
    lines = ["| figure | value | reference | reference value | ratio | target | |",
             "|---|---|---|---|---|---|---|"]
    for r in ROWS:
        met = "" if r.met is None else ("met" if r.met else "**missed**")
        lines.append(f"| {r.figure} | {fmt(r.value)} {r.unit} | {r.reference} | "
                     f"{fmt(r.ref_value)} {r.unit} | {r.ratio:.2f}x | {r.target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small grids: a smoke run (CI)")
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--workdir", type=Path, help="scratch directory (default: a temporary "
                                                 "one beside the repository's data/)")
    args = ap.parse_args(argv)
    quick = args.quick

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"phasemap benchmarks ({'quick' if quick else 'full'}): {cores} cores, "
          f"{platform.machine()}, {platform.system()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    blas = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
            if k in os.environ}
    if blas:
        print(f"environment: {blas} (only the pauli figure uses BLAS)")

    base = args.workdir or (HERE.parent / "data")
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=base))
    t0 = time.perf_counter()
    try:
        if quick:
            bench_evaluate(400, 2)
            store, ctx = bench_end_to_end(grid_spec(500, 2, 2, 500, "bench-quick"), work, 1)
            bench_queries(store, ctx, 5)
            bench_rss(grid_spec(1000, 4, 1, 1000, "bench-rss-quick"), work)
            bench_pauli(100, 2)
            bench_padding(work)
            bench_scale_out(grid_spec(500, 4, 2, 500, "bench-scale-quick"), work)
        else:
            bench_evaluate(2000, 9)
            store, ctx = bench_end_to_end(grid_spec(1000, 10, 10, 1000, "bench-1e8"), work, 3)
            bench_queries(store, ctx, 21)
            shutil.rmtree(ctx["naive"])
            bench_rss(grid_spec(10000, 10, 1, 10000, "bench-1e9"), work)
            bench_pauli(300, 3)
            bench_padding(work)
            bench_scale_out(grid_spec(1000, 10, 4, 1000, "bench-scale"), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s")
    if args.markdown:
        print("\n" + markdown())
    if args.json:
        args.json.write_text(json.dumps({"cores": cores, "versions": versions(),
                                         "quick": quick,
                                         "rows": [r.__dict__ for r in ROWS]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
