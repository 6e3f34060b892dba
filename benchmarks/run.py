"""phasemap benchmark suite: every figure beside a reference measured in the same run.

    python benchmarks/run.py            # the full suite (~10-20 min on 2 cores, ~15 GB of disk)
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
7. scale-out: the same compute on a LocalCluster of 1 and 2 worker processes, alternating,
   and its two limits (scheduler cost per task, shard objects the storage writes per second);
8. the same through ``--cluster slurm`` with 1 and 2 jobs (``--slurm``, or in the full suite
   whenever ``sinfo`` answers);
9. issue 14's reads on a 4-D dataset: 2-D slices along several axis pairs against a
   contiguous memmap read of the same bytes, and its cache hit against a small dataset's.

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

    def slab(i=0):  # what the explorer reads for a map: Store.slice, every output
        return core.Store(str(store)).slice(rid, x="eps", y="dV",
                                            at={"T": T[i % len(T)], "dT": dT[i % len(dT)]})

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


# --- 7. scale-out on a LocalCluster of worker processes (and SLURM) -----------------------

def _noop(i: int) -> int:
    return i


def _worker_cpu(pids: dict) -> float:
    """CPU seconds (user + system) the worker processes ``pids`` have used so far; NaN when
    a worker is not on this machine."""
    import psutil

    total = 0.0
    for pid in pids.values():
        try:
            t = psutil.Process(pid).cpu_times()
        except (psutil.Error, TypeError):
            return math.nan
        total += t.user + t.system
    return total


@dataclass
class ScaleRun:
    """One timed ``phasemap.compute`` on a cluster: what the task stream and the workers say."""

    workers: int
    wall: float       # seconds, the whole phasemap.compute call
    points: int       # points computed
    shards: int
    tasks: int
    busy: float       # seconds of task execution summed over workers (task stream)
    cpu: float        # CPU seconds the worker processes used (NaN if not measurable)
    main_cpu: float   # CPU seconds of this process: the client and (local) the scheduler
    serial: float     # seconds of the call outside the task stream (plan, record, open)

    @property
    def rate(self) -> float:
        return self.points / self.wall / 1e6

    @property
    def shard_seconds(self) -> float:
        """Worker wall time per shard (inside tasks)."""
        return self.busy / max(1, self.shards)

    @property
    def shard_cpu(self) -> float:
        """Worker CPU seconds per shard: the time per shard of a worker with a core to
        itself."""
        return self.cpu / max(1, self.shards)


def timed_compute(client, spec: dict, store: Path, workers: int) -> ScaleRun:
    """``phasemap.compute(spec)`` into a fresh ``store`` on ``client``, with its task stream
    and the workers' CPU time."""
    from distributed import get_task_stream

    pids = client.run(os.getpid)
    cpu0 = _worker_cpu(pids)
    with get_task_stream(client) as ts:
        t0 = time.time()
        t, c = time.perf_counter(), time.process_time()
        ds = phasemap.compute(spec, store=str(store), client=client)
        wall, main_cpu = time.perf_counter() - t, time.process_time() - c
    cpu = _worker_cpu(pids) - cpu0
    stream = [task for task in ts.data
              if min(s["start"] for s in task["startstops"]) >= t0]
    busy = sum(s["stop"] - s["start"] for task in stream for s in task["startstops"]
               if s["action"] == "compute")
    # the part of the call no worker can share: before the first task and after the last
    span = (max(s["stop"] for task in stream for s in task["startstops"])
            - min(s["start"] for task in stream for s in task["startstops"])) if stream else 0
    points = int(ds.attrs.get("points_computed", 0))
    shard_points = FamilyLayout.from_spec(phasemap.GridSpec.from_dict(spec)).shard_points
    shutil.rmtree(store, ignore_errors=True)
    return ScaleRun(workers, wall, points, points // shard_points, len(stream), busy, cpu,
                    main_cpu, max(0.0, wall - span))


def task_overhead(client, n: int) -> tuple[float, float]:
    """Per-task cost of the scheduler: (wall seconds per task, CPU seconds of this process
    per task) for ``n`` no-op tasks. This process runs the client and, for a LocalCluster or
    a dask-jobqueue cluster, the scheduler too: its CPU per task is what the scheduler
    spends serially, the limit on tasks per second whatever the number of workers."""
    client.gather(client.map(_noop, range(50), pure=False))  # warm: function shipped
    c0, t = time.process_time(), time.perf_counter()
    client.gather(client.map(_noop, range(n), pure=False))
    return (time.perf_counter() - t) / n, (time.process_time() - c0) / n


def shard_io(store: Path, work: Path, threads: int, repeat: int = 3) -> tuple[float, float]:
    """Shard objects the storage accepts per second, and MB/s: every shard object of the
    computed ``store`` written again, atomically (the store's ``write_blob``: temporary file
    + rename, as ``compute`` writes them), into a fresh store from ``threads`` threads; best
    of ``repeat``. The second limit of scale-out: workers sharing one filesystem cannot write
    shards faster than this, however many there are."""
    keys = [str(f.relative_to(store)) for f in Path(store).glob("families/*/*/c/**/*")
            if f.is_file()]
    blobs = [(k, (store / k).read_bytes()) for k in keys]
    best_dt, cpu = math.inf, math.nan
    for i in range(repeat):
        dst = core.Store(str(work / f"io-copy{i}"))
        for d in {k.rsplit("/", 1)[0] for k in keys}:  # folders first: not part of the rate
            os.makedirs(dst._path(d), exist_ok=True)
        t, c = time.perf_counter(), time.process_time()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda kb, dst=dst: dst.write_blob(*kb), blobs))
        if time.perf_counter() - t < best_dt:
            best_dt, cpu = time.perf_counter() - t, time.process_time() - c
    for i in range(repeat):  # deleted after the last run (ext4 is slower right after)
        shutil.rmtree(work / f"io-copy{i}", ignore_errors=True)
    size = sum(len(b) for _, b in blobs)
    print(f"  storage: {len(blobs)} shard objects ({size / len(blobs) / 2**20:.2f} MiB each) "
          f"written in {best_dt:.2f} s from {threads} threads, {cpu / len(blobs) * 1e3:.2f} "
          f"CPU-ms each", flush=True)
    return len(blobs) / best_dt, size / best_dt / 1e6


def _cluster_runs(clients: dict, spec: dict, work: Path, repeat: int, tag: str
                  ) -> dict[int, list[ScaleRun]]:
    """``repeat`` rounds over ``clients`` ({N: client}), the order alternating every round so
    that each N sees the same moments of a shared machine."""
    runs: dict[int, list[ScaleRun]] = {n: [] for n in clients}
    order = sorted(clients)
    for r in range(repeat):
        for n in (order if r % 2 == 0 else order[::-1]):
            run = timed_compute(clients[n], spec, work / f"{tag}{n}-{r}", n)
            runs[n].append(run)
            print(f"  {tag} N={n} round {r + 1}: {run.wall:.2f} s, {run.rate:.1f} Mpts/s, "
                  f"{run.tasks} tasks for {run.shards} shards, workers busy "
                  f"{run.busy / (run.wall * n):.0%} of the wall time, "
                  f"worker CPU {run.cpu / run.wall:.2f} CPU-s/s, client+scheduler "
                  f"{run.main_cpu / run.wall:.2f} CPU-s/s, "
                  f"{run.shard_seconds * 1e3:.1f} ms per shard", flush=True)
    return runs


def _time_shards(url: str, definition: dict, shards: list, slot_values: dict) -> list[float]:
    """Seconds for each of ``shards``, computed one task each (on a worker)."""
    from phasemap.store.run import _shards_task

    out = []
    for shard in shards:
        t = time.perf_counter()
        _shards_task(url, definition, [shard], slot_values)
        out.append(time.perf_counter() - t)
    return out


def first_task_cost(client, spec: dict, work: Path) -> tuple[float, float]:
    """On workers that have not computed anything yet: (seconds of the first one-shard task,
    median seconds of the next four), the worst worker. The difference is what a fresh worker
    (a new SLURM job) pays once: imports and numba's load of the store kernel."""
    from phasemap.store import Store, plan
    from phasemap.store.family import Family
    from phasemap.store.layout import Window

    g = phasemap.GridSpec.from_dict(spec)
    st = Store(str(work / "first-task"))
    p = plan(g, st)
    fam = Family(st, p.layout)
    fam.create()
    window = Window.from_spec(p.layout, g, fam.slots_for(g, register=True))
    shards = sorted(window.shards())[:5]
    workers = list(client.scheduler_info(n_workers=-1)["workers"])
    futures = [client.submit(_time_shards, st.url, p.layout.definition(), shards,
                             window.explicit_values(), workers=[w], pure=False,
                             allow_other_workers=False) for w in workers]
    times = client.gather(futures)
    shutil.rmtree(work / "first-task", ignore_errors=True)
    return max(t[0] for t in times), max(statistics.median(t[1:]) for t in times)


def warm_cluster(client, spec: dict, work: Path, n: int) -> None:
    """Imports and numba's kernel load on every worker, outside the clock: the same compute
    into a throw-away store, until every worker has run a task of it."""
    from distributed import get_task_stream

    for i in range(3):
        with get_task_stream(client) as ts:
            phasemap.compute(dict(spec, name="warm"), store=str(work / f"warm{n}-{i}"),
                             client=client)
        shutil.rmtree(work / f"warm{n}-{i}", ignore_errors=True)
        if len({task["worker"] for task in ts.data}) >= n:
            return


def bench_scale_out(spec: dict, work: Path, repeat: int) -> dict[int, list[ScaleRun]]:
    """``phasemap.compute`` on dask LocalClusters of N = 1 and 2 single-threaded worker
    processes, alternating, ``repeat`` rounds; then the two limits and the projection.

    The limits: the scheduler's CPU per task, ``o`` (no-op tasks; this process runs the
    client and the scheduler), and the shard objects per second the storage accepts, ``r``.
    With ``t`` a worker's CPU time per shard (N = 1) and ``S`` the part of the call outside
    the tasks, a grid of ``s`` shards in ``k`` tasks takes ``S + max(s t / N, k o, s / r)``
    (:func:`project`).
    """
    from distributed import Client, LocalCluster

    g = phasemap.GridSpec.from_dict(spec)
    shard_points = FamilyLayout.from_spec(g).shard_points
    print(f"\n[7] scale-out: {' x '.join(map(str, g.shape))} = {g.size:,} points "
          f"({math.ceil(g.size / shard_points)}+ shards of {shard_points:,} points) on "
          f"LocalCluster(processes, 1 thread each), N = 1, 2 alternating, {repeat} rounds",
          flush=True)
    with contextlib.ExitStack() as stack:
        clients = {}
        for n in (1, 2):
            cluster = stack.enter_context(LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                host="127.0.0.1", silence_logs=40))
            clients[n] = stack.enter_context(Client(cluster))
            if n == 2:
                first, later = first_task_cost(clients[n], spec, work)
                print(f"  a fresh worker's first one-shard task: {first * 1e3:.0f} ms, the "
                      f"next ones {later * 1e3:.1f} ms (imports and the kernel load, paid "
                      "once per worker; the warm-up below absorbs it)", flush=True)
            warm_cluster(clients[n], spec, work, n)
        runs = _cluster_runs(clients, spec, work, repeat, "local")
        o_wall, o_cpu = task_overhead(clients[2], 200 if repeat < 3 else 1000)
    ratios = [b.rate / a.rate for a, b in zip(runs[1], runs[2], strict=True)]
    print(f"  N=2 / N=1 per round: {', '.join(f'{r:.2f}x' for r in ratios)} (median "
          f"{statistics.median(ratios):.2f}x, spread {min(ratios):.2f}-{max(ratios):.2f}x); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    best1, best2 = max(r.rate for r in runs[1]), max(r.rate for r in runs[2])
    add(Row("scale-out: 2 worker processes", best2, "Mpts/s", "1 worker process", best1,
            ">= 1.8x (0.9 N)", best2 >= 1.8 * best1))
    # Per worker CPU-second: what our code does with the CPU the workers get, whatever else
    # runs on the machine (equal at N=1 and N=2 if nothing is lost to coordination).
    eff = {n: max(r.points / r.cpu for r in runs[n]) / 1e6 for n in runs}
    add(Row("scale-out: points per worker CPU-second, 2 workers", eff[2], "Mpts/CPU-s",
            "1 worker", eff[1], ">= 0.9x", eff[2] >= 0.9 * eff[1]))
    # the two limits, and the projection to larger N
    io_shards, io_mb = shard_io_after(spec, work)
    one = min(runs[1], key=lambda r: r.wall)
    t, serial = statistics.median(r.shard_cpu for r in runs[1]), one.serial
    print(f"  limits: the scheduler (with the client, in this process) {o_cpu * 1e3:.2f} ms "
          f"CPU per task ({o_wall * 1e3:.2f} ms wall per no-op task on the N=2 cluster); the "
          f"storage {io_shards:,.0f} shard objects/s ({io_mb:,.0f} MB/s, 2 threads); a worker "
          f"{t * 1e3:.1f} CPU-ms per shard, {one.shards / one.tasks:.1f} shards per task; "
          f"{serial * 1e3:.0f} ms of the call outside the tasks", flush=True)
    proj = {n: project(one.points, one.shards, one.tasks, n, serial, t, o_cpu, io_shards)
            for n in (1, 2, 4, 8, 16, 64)}
    print("  projection for this grid, Mpts/s: "
          + ", ".join(f"N={n} {v:,.0f} ({v / proj[1] / n:.0%} of N x one)"
                      for n, v in proj.items()), flush=True)
    add(Row("scale-out limit: scheduler CPU per task", o_cpu * 1e3, "ms",
            "worker CPU per task", t * one.shards / one.tasks * 1e3, better="lower"))
    add(Row("scale-out limit: shard objects the storage writes", io_shards, "shards/s",
            "shards one worker computes", 1 / t))
    return runs


def project(points: int, shards: int, tasks: int, n: int, serial: float, t: float, o: float,
            r: float) -> float:
    """Mpts/s of a compute of ``shards`` shards in ``tasks`` tasks on ``n`` workers:
    ``points / (serial + max(shards * t / n, tasks * o, shards / r))`` -- the part outside
    the tasks, then whichever of the workers (``t`` seconds per shard), the scheduler (``o``
    seconds per task, serial) and the storage (``r`` shard objects per second) is slowest.
    Tasks per run grow slowly with ``n`` (``_batches`` cuts a tail of ``4 n`` single shards),
    which is included: ``tasks + 4 (n - 1)``."""
    tasks = min(shards, tasks + 4 * (n - 1))
    return points / (serial + max(shards * t / n, tasks * o, shards / r)) / 1e6


def shard_io_after(spec: dict, work: Path) -> tuple[float, float]:
    """:func:`shard_io` on a fresh compute of ``spec`` (embedded scheduler)."""
    store = work / "io-src"
    phasemap.compute(spec, store=str(store))
    try:
        return shard_io(store, work, 2)
    finally:
        shutil.rmtree(store, ignore_errors=True)


def slurm_reachable() -> bool:
    """True when ``sinfo`` answers (a SLURM controller this machine can submit to)."""
    if not shutil.which("sinfo"):
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def bench_slurm(spec: dict, work: Path, repeat: int, local: dict[int, list[ScaleRun]]) -> None:
    """The same compute through ``--cluster slurm`` (``phasemap.cluster.get_client``, the
    shipped ``pipelines/cluster/slurm.yaml``) with 1 and then 2 jobs of one single-threaded
    worker each, beside the LocalCluster figures of the same run."""
    from phasemap.cluster import get_client

    print("\n[8] --cluster slurm (dask-jobqueue, pipelines/cluster/slurm.yaml): 1 and 2 jobs",
          flush=True)
    rates = {}
    for jobs in (1, 2):
        t = time.perf_counter()
        with get_client(cluster="slurm", jobs=jobs) as client:
            client.wait_for_workers(jobs, timeout=180)
            start = time.perf_counter() - t
            warm_cluster(client, spec, work, jobs)
            runs = _cluster_runs({jobs: client}, spec, work, repeat, "slurm")[jobs]
        rates[jobs] = max(r.rate for r in runs)
        print(f"  {jobs} job(s): workers up {start:.1f} s after submission; best "
              f"{rates[jobs]:.1f} Mpts/s", flush=True)
    for jobs in (1, 2):
        ref = max(r.rate for r in local[jobs])
        add(Row(f"--cluster slurm, {jobs} job{'s' if jobs > 1 else ''}", rates[jobs], "Mpts/s",
                f"LocalCluster, {jobs} worker process{'es' if jobs > 1 else ''}", ref))
    add(Row("--cluster slurm: 2 jobs", rates[2], "Mpts/s", "1 job", rates[1],
            ">= 1.8x (0.9 N)", rates[2] >= 1.8 * rates[1]))


def run_slurm(spec: dict, work: Path, repeat: int, local: dict[int, list[ScaleRun]],
              strict: bool) -> None:
    """:func:`bench_slurm`; when it was not asked for (SLURM merely answered) a failure is
    reported and the suite goes on."""
    try:
        bench_slurm(spec, work, repeat, local)
    except Exception as exc:
        if strict:
            raise
        print(f"  the SLURM section failed, no SLURM figures: {type(exc).__name__}: {exc}",
              flush=True)


def survey_spec(eps: int | None = None, T: int | None = None) -> dict:
    """``pipelines/survey.yaml`` (800 x 64 x 32 x 64 = 1.05e8 points), optionally cut to its
    first ``eps`` and ``T`` values (same lattices, so the same family)."""
    import yaml

    spec = yaml.safe_load((HERE.parent / "pipelines" / "survey.yaml").read_text())
    axes = spec["axes"]
    for name, num in (("eps", eps), ("T", T)):
        if num:
            a = axes[name]
            step = (a["stop"] - a["start"]) / (a["num"] - 1)
            axes[name] = axis(a["start"], step, num)
    return spec


def survey_4d(n_eps: int, n_T: int, n_dT: int, n_dV: int) -> dict:
    """Issue 14's 4-D survey shape: linear axes, steps 0.1, 1, 0.08 and 0.1."""
    return {"model": "single_level", "name": "survey-4d",
            "axes": {"eps": axis(-50, 0.1, n_eps), "T": axis(4, 1, n_T),
                     "dT": axis(0, 0.08, n_dT), "dV": axis(-50, 0.1, n_dV)}}


def map_2d() -> dict:
    return {"model": "single_level", "name": "map-2d", "params": {"T": 7.5, "dT": 5.0},
            "axes": {"eps": axis(-20, 0.1, 401), "dV": axis(-20, 0.1, 401)}}


# --- 9. issue 14 on a 4-D dataset: 2-D slices, cache hits --------------------------------
# The reads go through the two small functions below (today's public API: Store.open + sel),
# so that a faster slice API replaces them in one place.

def open_stored(store: Path, spec: dict):
    """The stored dataset of ``spec``, opened lazily."""
    return core.Store(str(store)).open(phasemap.GridSpec.from_dict(spec))


def read_slice(store: Path, spec: dict, fixed: dict[str, float]) -> dict[str, np.ndarray]:
    """Every output and both labels of the 2-D slice at ``fixed``, as numpy arrays
    (``Store.slice``: the inner chunks the plane touches, read straight from the shards)."""
    g = phasemap.GridSpec.from_dict(spec)
    x, y = [d for d in g.dims if d not in fixed][::-1]
    ds = core.Store(str(store)).slice(g, x=x, y=y, at=fixed)
    return {name: var.values for name, var in ds.data_vars.items()}


def cache_hit(store: Path, spec: dict) -> float:
    """``phasemap.compute`` of a stored grid (nothing missing) + one value read."""
    ds = phasemap.compute(spec, store=str(store))
    first = next(iter(ds.data_vars.values()))
    return float(first[(0,) * first.ndim])


def bench_4d(spec: dict, small: dict, work: Path, repeat: int) -> None:
    """Issue 14's read figures on a 4-D dataset of linear axes: a 2-D slice along several
    axis pairs (every output and both labels), each beside reading the same number of
    bytes from one contiguous numpy memmap; the cache hit of the 4-D dataset beside that of
    a small dataset in the same store."""
    g = phasemap.GridSpec.from_dict(spec)
    store = work / "store-4d"
    print(f"\n[9] 4-D dataset {' x '.join(map(str, g.shape))} = {g.size:,} points "
          f"({', '.join(g.dims)}): slices and cache hits", flush=True)
    t = time.perf_counter()
    ds = phasemap.compute(spec, store=str(store))
    dt = time.perf_counter() - t
    print(f"  computed in {dt:.1f} s: {ds.attrs['points_computed']:,} points computed for "
          f"{g.size:,} requested, {du(store) / GIB:.2f} GiB on disk", flush=True)
    phasemap.compute(small, store=str(store))
    coords = g.coords()
    dims = list(g.dims)
    pairs = [("eps", "dV"), ("eps", "dT"), ("eps", "T"), ("dT", "dV")]
    for pair in pairs:
        if not set(pair) <= set(dims):
            continue
        fixed_dims = [d for d in dims if d not in pair]
        # a different fixed value each call: no call reads what the previous one did
        fixed = [{d: float(coords[d][(len(coords[d]) // 2 + i) % len(coords[d])])
                  for d in fixed_dims} for i in range(repeat + 1)]
        out = read_slice(store, spec, fixed[0])
        n = math.prod(len(coords[d]) for d in pair)
        nbytes = sum(a.nbytes for a in out.values())
        mm_path = work / "memmap.bin"
        np.lib.format.open_memmap(mm_path, mode="w+", dtype="u1", shape=(nbytes,))[:] = 1

        def ours(i=0, fixed=fixed):
            return read_slice(store, spec, fixed[i % len(fixed)])

        def memmap(i=0, path=mm_path):
            return np.array(np.load(path, mmap_mode="r"))

        t_ours = median_ms(ours, repeat)
        t_mm = median_ms(memmap, repeat)
        mm_path.unlink()
        add(Row(f"2-D slice ({pair[0]}, {pair[1]}) of the 4-D dataset, {n:,} points, "
                f"{len(out)} outputs and labels", t_ours, "ms",
                f"contiguous numpy memmap read of the same {nbytes / 2**20:,.2f} MiB", t_mm,
                "<= 200 ms", t_ours <= 200, better="lower"))
    t_big = median_ms(lambda i=0: cache_hit(store, spec), repeat)
    t_small = median_ms(lambda i=0: cache_hit(store, small), repeat)
    small_size = phasemap.GridSpec.from_dict(small).size
    add(Row(f"cache hit on the {g.size:.0e}-point 4-D dataset", t_big, "ms",
            f"cache hit on a {small_size:,}-point dataset in the same store", t_small,
            "<= 50 ms", t_big <= 50, better="lower"))
    shutil.rmtree(store)


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
    ap.add_argument("--slurm", action="store_true",
                    help="run the --cluster slurm figures (default: when sinfo answers, in "
                         "the full suite only)")
    ap.add_argument("--no-slurm", action="store_true", help="never run the SLURM figures")
    ap.add_argument("--only", help="comma-separated section numbers to run, e.g. 7,8,9")
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
    only = set(args.only.split(",")) if args.only else None

    def want(section: int) -> bool:
        return only is None or str(section) in only

    slurm = args.slurm or (not quick and not args.no_slurm and slurm_reachable())
    try:
        if quick:
            if want(1):
                bench_evaluate(400, 2)
            if want(2) or want(3):
                store, ctx = bench_end_to_end(grid_spec(500, 2, 2, 500, "bench-quick"), work, 1)
                bench_queries(store, ctx, 5)
            if want(4):
                bench_rss(grid_spec(1000, 4, 1, 1000, "bench-rss-quick"), work)
            if want(5):
                bench_pauli(100, 2)
            if want(6):
                bench_padding(work)
            scale = survey_spec(eps=256, T=16)
            if want(7) or want(8):
                local = bench_scale_out(scale, work, 2)
                if slurm and want(8):
                    run_slurm(scale, work, 1, local, strict=args.slurm)
            if want(9):
                bench_4d(survey_4d(128, 2, 16, 128), map_2d(), work, 3)
        else:
            if want(1):
                bench_evaluate(2000, 9)
            if want(2) or want(3):
                store, ctx = bench_end_to_end(grid_spec(1000, 10, 10, 1000, "bench-1e8"), work,
                                              3)
                bench_queries(store, ctx, 21)
                shutil.rmtree(ctx["naive"])
                shutil.rmtree(store)
            if want(4):
                bench_rss(grid_spec(10000, 10, 1, 10000, "bench-1e9"), work)
            if want(5):
                bench_pauli(300, 3)
            if want(6):
                bench_padding(work)
            scale = survey_spec()
            if want(7) or want(8):
                local = bench_scale_out(scale, work, 3)
                if slurm and want(8):
                    run_slurm(scale, work, 2, local, strict=args.slurm)
            if want(9):
                bench_4d(survey_4d(1000, 10, 100, 1000), map_2d(), work, 3)
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
