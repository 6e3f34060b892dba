"""Issue 14's store figures: the cache hit and 2-D slices of a 4-D survey, with references
measured in the same run.

    python benchmarks/store_scale.py                # 1e8: eps 1000 x T 10 x dT 10 x dV 1000
    python benchmarks/store_scale.py --points 1e9     # the issue's survey (dT 100): ~8 GB, minutes
    python benchmarks/store_scale.py --points 1e7 --store /tmp/s   # quick

Every figure is a median of repeats, beside a reference measured in the same run on the same
store:

* **cache hit**: ``phasemap.compute`` of a stored dataset (its record states it complete:
  one read, one listing of the commit records' names, the lazy dataset opened) against the
  full check it replaced (every commit record read by the planner, then the same opening);
  also the hit of a dataset 10x smaller, to show it does not grow with the shards;
* **slice**: ``Store.slice`` of the 1e6-point (eps, dV) plane at fixed T, dT (J_L against
  the same plane through the lazy dataset, ``ds.isel(T=i, dT=j).compute()``, what the
  explorer did before; then every output and both labels), and the other planes;
* **write cost** of the slider-thin inner chunks: compute speed and bytes per point against
  the even split of sides used before (same survey at up to 1e7 points, fresh stores).

Called from ``benchmarks/run.py``: :func:`bench_store_scale` returns the rows.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phasemap
from phasemap.grid import GridSpec
from phasemap.store import Store, plan


def survey(points: float, name: str = "survey") -> GridSpec:
    """eps 1000 x T 10 x dT (points / 1e7) x dV 1000, the issue's steps: every (eps, dV)
    plane is 1e6 points whatever the total."""
    n_dT = max(1, round(points / 1e7))
    return GridSpec.from_dict({"model": "single_level", "name": name, "axes": {
        "eps": {"start": -50.0, "stop": 49.9, "num": 1000},
        "T": {"start": 1.0, "stop": 10.0, "num": 10},
        "dT": {"start": 0.0, "stop": 0.08 * (n_dT - 1), "num": n_dT} if n_dT > 1 else [0.0],
        "dV": {"start": -50.0, "stop": 49.9, "num": 1000}}})


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_store_scale(points: float = 1e8, root: str | None = None, repeats: int = 5
                      ) -> list[dict]:
    """Compute the survey of ``points`` into ``root`` (a temporary store if ``None``) and
    time the cache hit and the slices; return rows ``{name, value, unit, reference,
    ref_value, ratio}``."""
    tmp = None
    if root is None:
        tmp = root = tempfile.mkdtemp(prefix="phasemap-scale-")
    store = Store(root)
    rows: list[dict] = []

    def row(name, value, unit, reference="", ref_value=None):
        ratio = value / ref_value if ref_value else None
        rows.append({"name": name, "value": value, "unit": unit, "reference": reference,
                     "ref_value": ref_value, "ratio": ratio})
        ref = f"   (reference: {reference} {ref_value:.4g} {unit}, ratio {ratio:.3g})" \
            if ref_value else ""
        print(f"{name:58s} {value:10.4g} {unit}{ref}", flush=True)

    try:
        spec = survey(points)
        small = survey(points / 10, name="small")
        p = plan(spec, store)
        row(f"points computed / requested, {spec.size:.3g}-point survey",
            p.points_to_compute / p.points, "x", "shards x shard points",
            len(p.needed) * p.layout.shard_points / p.points)
        warm = GridSpec.from_dict({"model": "single_level", "axes": {  # numba's first calls
            "eps": {"start": 0.0, "stop": 0.3, "num": 4}, "T": {"start": 1.0, "stop": 2.0,
                                                              "num": 2},
            "dT": {"start": 0.0, "stop": 0.08, "num": 2},
            "dV": {"start": 0.0, "stop": 0.3, "num": 4}}})
        phasemap.compute(warm, store=store)
        store.slice(warm, x="eps", y="dV", at={"T": 1.0, "dT": 0.0})
        for s in (small, spec):
            t0 = time.perf_counter()
            ds = phasemap.compute(s, store=store)
            seconds = time.perf_counter() - t0
            row(f"compute {s.size:.3g} points", s.size / seconds / 1e6, "Mpts/s")
            assert ds.attrs["points_computed"] + ds.attrs["points_reused"] == s.size
        n_shards = len(plan(spec, store).needed)
        hit = _median(lambda: phasemap.compute(spec, store=store), repeats)
        fam = store.family(p.layout, create=False)

        def full_check():
            q = plan(spec, store)  # every commit record read
            assert not q.missing
            fam.open_window(q.window, spec)

        full = _median(full_check, max(1, repeats // 2))
        row(f"cache hit, {spec.size:.3g} points ({n_shards} shards)", hit * 1e3, "ms",
            "full check of every record", full * 1e3)
        small_hit = _median(lambda: phasemap.compute(small, store=store), repeats)
        row(f"cache hit, {small.size:.3g} points", small_hit * 1e3, "ms",
            f"hit of {spec.size:.3g} points", hit * 1e3)

        ds = phasemap.compute(spec, store=store)
        values = {d: spec.axis_values(d) for d in spec.dims}
        at = {"T": float(values["T"][4]), "dT": float(values["dT"][len(values["dT"]) // 2])}
        plane = _median(lambda: store.slice(spec, x="eps", y="dV", at=at), repeats)
        index = {d: int(abs(values[d] - v).argmin()) for d, v in at.items()}
        one = _median(lambda: store.slice(spec, x="eps", y="dV", at=at,
                                          variables=["J_L"]), repeats)
        lazy = _median(lambda: ds[["J_L"]].isel(index).compute(), 1)
        row("slice eps x dV (1e6 points), J_L", one * 1e3, "ms",
            "same plane through the lazy dataset", lazy * 1e3)
        row("slice eps x dV (1e6 points), every output", plane * 1e3, "ms",
            "J_L only", one * 1e3)
        mid = {d: float(v[len(v) // 2]) for d, v in values.items()}
        for x, y in (("eps", "T"), ("T", "dV"), ("eps", "dT"), ("dT", "dV"), ("T", "dT")):
            if len(values[x]) < 2 or len(values[y]) < 2:
                continue
            rest = {d: v for d, v in mid.items() if d not in (x, y)}
            t = _median(lambda x=x, y=y, rest=rest: store.slice(spec, x=x, y=y, at=rest),
                        repeats)
            n = len(values[x]) * len(values[y])
            row(f"slice {x} x {y} ({n:,} points), every output", t * 1e3, "ms")
        write_cost(min(points, 1e7), row)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def write_cost(points: float, row) -> None:
    """What the slider-thin inner chunks cost at write time and on disk: the same survey
    computed into two fresh stores, with this layout and with the even split of shard and
    inner sides every family used before issue 14 (the reference)."""
    from phasemap.store import layout

    spec = survey(points)
    current = layout._sides_log2

    def even(shard_log2: int, n: int) -> tuple[list[int], list[int]]:
        return (layout._split_log2(shard_log2, n),
                layout._split_log2(min(layout.INNER_LOG2, shard_log2), n))

    figures: dict[str, tuple[float, float]] = {}
    # alternated, best of 2 each: both layouts see the same moments of a shared machine
    for name, rule in (("even", even), ("sliders thin", current)) * 2:
        layout._sides_log2 = rule
        root = tempfile.mkdtemp(prefix="phasemap-write-")
        try:
            store = Store(root)
            t0 = time.perf_counter()
            phasemap.compute(spec, store=store)
            seconds = time.perf_counter() - t0
            disk = sum(f.stat().st_size for f in Path(root, "families").rglob("c/**/*")
                       if f.is_file())
            speed = spec.size / seconds / 1e6
            figures[name] = (max(speed, figures.get(name, (0.0, 0.0))[0]), disk / spec.size)
        finally:
            layout._sides_log2 = current
            shutil.rmtree(root, ignore_errors=True)
    row(f"compute {spec.size:.3g} points, slider-thin inner chunks",
        figures["sliders thin"][0], "Mpts/s", "even inner chunks", figures["even"][0])
    row("bytes on disk per point, slider-thin inner chunks", figures["sliders thin"][1],
        "B", "even inner chunks", figures["even"][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=float, default=1e8)
    parser.add_argument("--store", default=None, help="store directory (default: a "
                        "temporary one, removed afterwards)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bench_store_scale(args.points, args.store, args.repeats)


if __name__ == "__main__":
    main()
