"""Load on the service: concurrent clients on loopback, throughput and latency percentiles.

Starts ``phasemap serve`` on a free loopback port with a temporary store (or uses ``--url`` of a
running server on this machine), computes a small grid through ``POST /api/grids``, then drives
each scenario with ``--clients`` concurrent HTTP clients for at most ``--seconds`` seconds and
``--requests`` requests:

* ``health``     ``GET /api/health`` (the HTTP stack alone: the reference for the others)
* ``evaluate``   ``GET /api/evaluate`` at random points (closed form, no store)
* ``point``      ``GET /api/grids/{id}/point`` at random grid points (read from Zarr)
* ``slice-line`` ``GET /api/grids/{id}/slice`` of one line (eps), JSON
* ``slice-map``  ``GET /api/grids/{id}/slice`` of an eps x dV map (two variables), JSON
* ``slice-nc``   the same map as NetCDF

and, as an in-process reference measured in the same run, the same point reads through
``Store.open`` + ``point_record`` without HTTP (one thread). Every request goes to loopback
only; loops are bounded in count and time.

    python benchmarks/load.py                      # about a minute on 2 cores
    python benchmarks/load.py --clients 16 --seconds 20 --json results.json
    python benchmarks/load.py --url http://127.0.0.1:8000 --token "$PHASEMAP_TOKEN"
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np

GRID = {"name": "load benchmark", "params": {"T": 7.5},
        "axes": {"eps": {"start": -40, "stop": 40, "num": 401},
                 "dV": {"start": -20, "stop": 20, "num": 201},
                 "dT": [1.0, 2.5, 5.0]}}


def loopback_only(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return url
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url
    except ValueError:
        pass
    raise SystemExit(f"refusing to load {url}: this benchmark only targets loopback addresses")


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan")}
    a = np.asarray(samples) * 1e3
    return {f"p{q}": float(np.percentile(a, q)) for q in (50, 90, 99)}


def drive(url: str, make_request: Callable[[random.Random], tuple[str, dict]], *,
          clients: int, seconds: float, max_requests: int, seed: int = 0) -> dict:
    """Run ``clients`` threads issuing requests until the time or the count runs out."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    nbytes = 0
    lock = threading.Lock()
    issued = 0
    stop_at = time.perf_counter() + seconds
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        nonlocal issued, nbytes
        rng = random.Random(seed * 1000 + k)
        mine: list[float] = []
        codes: dict[int, int] = {}
        size = 0
        with httpx.Client(base_url=url, timeout=60) as c:
            barrier.wait()
            while time.perf_counter() < stop_at:
                with lock:
                    if issued >= max_requests:
                        break
                    issued += 1
                path, params = make_request(rng)
                t0 = time.perf_counter()
                try:
                    r = c.get(path, params=params)
                    code, size_r = r.status_code, len(r.content)
                except httpx.HTTPError:
                    code, size_r = 0, 0
                mine.append(time.perf_counter() - t0)
                codes[code] = codes.get(code, 0) + 1
                size += size_r
        with lock:
            latencies.extend(mine)
            nbytes += size
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(seconds + 120)
    wall = time.perf_counter() - t0
    ok = statuses.get(200, 0)
    return {"requests": len(latencies), "ok": ok, "errors": len(latencies) - ok,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "seconds": wall, "throughput": len(latencies) / wall if wall else float("nan"),
            "mb_per_s": nbytes / wall / 1e6 if wall else float("nan"),
            "mean_ms": statistics.fmean(latencies) * 1e3 if latencies else float("nan"),
            **percentiles(latencies)}


def reference_points(store_url: str, rid: str, coords: dict, n: int) -> dict:
    """The point reads of the ``point`` scenario in-process, without HTTP (one thread)."""
    from phasemap.query import point_record
    from phasemap.store import Store

    ds = Store(store_url).open(rid)
    rng = random.Random(1)
    lat = []
    for _ in range(n):
        at = {d: rng.choice(v) for d, v in coords.items()}
        t0 = time.perf_counter()
        point_record(ds, at)
        lat.append(time.perf_counter() - t0)
    total = sum(lat)
    return {"requests": n, "ok": n, "errors": 0, "statuses": {}, "seconds": total,
            "throughput": n / total, "mb_per_s": float("nan"),
            "mean_ms": statistics.fmean(lat) * 1e3, **percentiles(lat)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running server on loopback (default: start one)")
    ap.add_argument("--store", help="store of the started server (default: a temporary one)")
    ap.add_argument("--token", help="the server's compute token, if it has one")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    ap.add_argument("--seconds", type=float, default=8.0,
                    help="time limit per scenario [s] (default 8)")
    ap.add_argument("--requests", type=int, default=5000,
                    help="request limit per scenario (default 5000)")
    ap.add_argument("--scenarios", default="health,evaluate,point,slice-line,slice-map,"
                                           "slice-nc")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if not 1 <= args.clients <= 256:
        ap.error("--clients must be between 1 and 256")
    if not 0 < args.seconds <= 600:
        ap.error("--seconds must be in (0, 600]")

    server = None
    tmp = None
    if args.url:
        url = loopback_only(args.url.rstrip("/"))
        store_url = args.store
    else:
        from phasemap.service.testing import ServerProcess

        tmp = tempfile.TemporaryDirectory(prefix="phasemap-load-")
        store_url = args.store or str(Path(tmp.name) / "store")
        server = ServerProcess(store_url, token=args.token)
        t0 = time.perf_counter()
        url = server.start()
        print(f"server {url} up in {time.perf_counter() - t0:.1f} s (store {store_url})",
              file=sys.stderr)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    try:
        with httpx.Client(base_url=url, timeout=600) as c:
            t0 = time.perf_counter()
            r = c.post("/api/grids", json=GRID, headers=headers)
            r.raise_for_status()
            rid = r.json()["id"]
            while (status := c.get(f"/api/grids/{rid}").json())["status"] not in (
                    "done", "failed"):
                time.sleep(0.2)
            if status["status"] != "done":
                raise SystemExit(f"grid failed: {status.get('error')}")
            print(f"dataset {rid}: {status['points']:,} points, "
                  f"{status['progress']['points_computed']:,} computed in "
                  f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)

        from phasemap.grid import GridSpec

        spec = GridSpec.from_dict(GRID)
        coords = {d: [float(v) for v in spec.axis_values(d)] for d in spec.dims}
        coords["T"] = [7.5]

        def point(rng):
            return f"/api/grids/{rid}/point", {d: rng.choice(v) for d, v in coords.items()}

        def evaluate(rng):
            return "/api/evaluate", {"eps": rng.uniform(-40, 40), "T": 7.5,
                                     "dT": rng.uniform(0, 10), "dV": rng.uniform(-20, 20)}

        def slice_line(rng):
            return f"/api/grids/{rid}/slice", {"dV": rng.choice(coords["dV"]),
                                                "dT": rng.choice(coords["dT"])}

        def slice_map(rng, fmt="json"):
            return f"/api/grids/{rid}/slice", {"dT": rng.choice(coords["dT"]),
                                                "vars": rng.choice(["J_L,regime", "regime,s",
                                                                    "J_L,machine"]),
                                                "format": fmt}

        scenarios = {
            "health": lambda rng: ("/api/health", {}),
            "evaluate": evaluate,
            "point": point,
            "slice-line": slice_line,
            "slice-map": slice_map,
            "slice-nc": lambda rng: slice_map(rng, "netcdf"),
        }
        results: dict[str, dict] = {}
        for name in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
            if name not in scenarios:
                raise SystemExit(f"unknown scenario {name!r}: {', '.join(scenarios)}")
            results[name] = drive(url, scenarios[name], clients=args.clients,
                                  seconds=args.seconds, max_requests=args.requests)
            res = results[name]
            print(f"  {name:<11} {res['throughput']:8.1f} req/s  p50 {res['p50']:8.1f} ms",
                  file=sys.stderr)
        if store_url and Path(store_url).exists():
            results["point (in-process, no HTTP, 1 thread)"] = reference_points(
                store_url, rid, coords, 200)
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            tmp.cleanup()

    print(f"\nphasemap service load: {args.clients} clients, <= {args.seconds:g} s and "
          f"<= {args.requests} requests per scenario, loopback")
    print(f"{'scenario':<40} {'req/s':>9} {'MB/s':>7} {'p50 ms':>9} {'p90 ms':>9} "
          f"{'p99 ms':>9} {'n':>6} {'errors':>6}")
    for name, res in results.items():
        print(f"{name:<40} {res['throughput']:9.1f} {res['mb_per_s']:7.2f} {res['p50']:9.2f} "
              f"{res['p90']:9.2f} {res['p99']:9.2f} {res['requests']:6d} {res['errors']:6d}")
    if args.json:
        args.json.write_text(json.dumps({"clients": args.clients, "seconds": args.seconds,
                                         "results": results}, indent=1))
    return 1 if any(res["errors"] for res in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
