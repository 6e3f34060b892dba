"""Background grid computations on one shared Dask client, deduplicated by dataset id.

Every compute request of the service (``POST /api/grids``, the explorer's grid form, the
paper datasets at start-up) goes through one :class:`JobManager`. A submission is keyed by the
store's own dataset id (:func:`phasemap.store.spec_id`), so identical submissions, however
many arrive at once, share one :class:`Job` and one call of :func:`phasemap.compute`.
Computations run one after another on a single job thread; the parallelism is inside each
computation, on the manager's Dask client (an embedded in-process ``LocalCluster`` started on
first use and closed by :meth:`JobManager.close`).
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..cluster import usable_cores
from ..errors import GridTooLargeError, PhasemapError
from ..grid import GridSpec
from ..store import Store, plan, spec_id

#: Statuses a job goes through: queued -> running -> done | failed.
STATUSES = ("queued", "running", "done", "failed")

ComputeFn = Callable[..., Any]


@dataclass
class Job:
    """One computation of one dataset id, shared by every identical submission."""

    id: str
    spec: GridSpec
    status: str = "queued"
    submissions: int = 1
    computations: int = 0
    done_shards: int = 0
    total_shards: int = 0
    points_computed: int = 0
    points: int = 0
    error: str | None = None
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    future: Future | None = field(default=None, repr=False)
    event: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly status (what ``GET /api/grids/{id}`` answers)."""
        elapsed = None
        if self.started is not None:
            elapsed = round((self.finished or time.time()) - self.started, 3)
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "name": self.spec.name,
            "dims": list(self.spec.dims),
            "shape": list(self.spec.shape),
            "points": self.points or self.spec.size,
            "progress": {
                "done_shards": self.done_shards,
                "total_shards": self.total_shards,
                "points_computed": self.points_computed,
                "fraction": (self.done_shards / self.total_shards if self.total_shards
                             else (1.0 if self.status == "done" else 0.0)),
            },
            "submissions": self.submissions,
            "computations": self.computations,
            "seconds": elapsed,
        }
        if self.error:
            out["error"] = self.error
        return out


class QueueFull(PhasemapError):
    """The server already has as many grids waiting or running as it accepts."""

    http_status = 429
    http_code = "busy"


class JobManager:
    """Runs grid computations in the background, one at a time, on one shared Dask client.

    Parameters
    ----------
    store : Store
        Where results go (and where cached results are found).
    max_grid_points, max_compute_points : int, optional
        Submissions above these sizes are refused with :class:`GridTooLargeError`.
    max_shards : int, optional
        Submissions that would create more shards are refused (:class:`GridTooLargeError`).
    max_queued : int, optional
        New submissions while this many jobs are queued or running are refused with
        :class:`QueueFull` (joining a job in flight is always allowed).
    workers : int, optional
        Threads of the embedded Dask worker (default: one per core).
    client : distributed.Client, optional
        Use this client instead of starting an embedded cluster (it is not closed here).
    """

    def __init__(self, store: Store, *, max_grid_points: int | None = None,
                 max_compute_points: int | None = None, max_shards: int | None = None,
                 max_queued: int | None = None, workers: int | None = None,
                 client: Any = None):
        self.store = store
        self.max_grid_points = max_grid_points
        self.max_compute_points = max_compute_points
        self.max_shards = max_shards
        self.max_queued = max_queued
        self.workers = workers
        self._client = client
        self._own_client = client is None
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._client_lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="phasemap-job")
        self._closed = False
        #: How many jobs the registry remembers (finished ones are forgotten first).
        self.keep = 10_000

    # --- the shared Dask client -----------------------------------------------------------
    @property
    def client(self):
        """The shared client; the embedded cluster is started on first use."""
        with self._client_lock:
            if self._client is None:
                if self._closed:
                    raise RuntimeError("the job manager is closed")
                import dask
                from distributed import Client, LocalCluster

                threads = self.workers or usable_cores()
                # The shape of phasemap.cluster.embedded_client, kept open for the server's
                # life. The client is registered as the default client (the store's
                # planner looks it up for as_completed), but dask collections keep computing
                # on local threads: reads in request handlers must not queue behind grid
                # computations on the cluster.
                # Its HTTP endpoints (which distributed starts even without a dashboard)
                # listen on loopback only, never on every interface.
                # Not entered as context managers: the client is created on the job thread
                # and closed from another (Client.__exit__ would reset a context variable
                # of the wrong thread).
                cluster = LocalCluster(
                    n_workers=1, threads_per_worker=threads, processes=False,
                    dashboard_address=None, worker_dashboard_address="127.0.0.1:0",
                    scheduler_kwargs={"dashboard": False,
                                      "dashboard_address": "127.0.0.1:0"})
                self._stack.callback(cluster.close)
                client = Client(cluster)
                self._stack.callback(client.close)
                self._client = client
                dask.config.set(scheduler="threads")
            return self._client

    @property
    def client_started(self) -> bool:
        return self._client is not None

    # --- submitting -------------------------------------------------------------------------
    def check(self, spec: GridSpec) -> None:
        """Refuse a spec above the configured limits (raises :class:`GridTooLargeError`)."""
        if self.max_grid_points is not None:
            spec.check(max_points=self.max_grid_points)
        if self.max_compute_points is not None or self.max_shards is not None:
            p = plan(spec, self.store)
            if self.max_shards is not None and len(p.missing) > self.max_shards:
                raise GridTooLargeError(
                    "grid", f"{len(p.missing):,} shards to create",
                    f"at most {self.max_shards:,} shards per request (each value of a list "
                    "axis is a shard of its own: use start/stop/num ranges)")
            if (self.max_compute_points is not None
                    and p.points_to_compute > self.max_compute_points):
                raise GridTooLargeError(
                    "grid", f"{p.points_to_compute:,} points to compute in "
                            f"{len(p.missing):,} shards",
                    f"at most {self.max_compute_points:,} points to compute per request "
                    "(a sparse grid needs the whole shards around its points)")

    def submit(self, spec: GridSpec, compute: ComputeFn | None = None, *,
               check: bool = True) -> Job:
        """Start computing ``spec`` in the background, or join the job already doing it.

        ``compute`` replaces :func:`phasemap.compute` (same signature); it is how the CLI
        prints a progress bar for the paper datasets. ``check=False`` skips the size limits
        (for the project's own specs).
        """
        rid = spec_id(spec)
        with self._lock:
            if self._closed:
                raise RuntimeError("the job manager is closed")
            job = self._jobs.get(rid)
            if job is not None and job.status != "failed":
                job.submissions += 1
                return job
            if check:
                waiting = sum(j.status in ("queued", "running") for j in self._jobs.values())
                if self.max_queued is not None and waiting >= self.max_queued:
                    raise QueueFull(f"{waiting} grids are queued or running, the most this "
                                    "server takes; retry when one has finished")
                self.check(spec)
            job = Job(id=rid, spec=spec, points=spec.size)
            if self._jobs.get(rid) is not None:
                job.submissions = self._jobs[rid].submissions + 1
            self._jobs[rid] = job
            self._prune()
            job.future = self._executor.submit(self._run, job, compute)
            return job

    def _prune(self) -> None:
        """Forget the oldest finished jobs beyond :attr:`keep` (the store keeps the data)."""
        finished = [j for j in self._jobs.values() if j.status in ("done", "failed")]
        for job in sorted(finished, key=lambda j: j.finished or 0)[:max(0, len(
                self._jobs) - self.keep)]:
            del self._jobs[job.id]

    def _run(self, job: Job, compute: ComputeFn | None) -> None:
        from ..store import compute as store_compute

        compute = compute or store_compute
        job.status = "running"
        job.started = time.time()
        job.computations += 1

        def progress(done: int, total: int, points: int) -> None:
            job.done_shards, job.total_shards, job.points_computed = done, total, points

        try:
            p = plan(job.spec, self.store)
            job.total_shards = len(p.needed)
            client = self.client if p.missing else None
            ds = compute(job.spec, store=self.store, client=client, progress=progress)
            job.points_computed = int(ds.attrs.get("points_computed", job.points_computed))
            job.done_shards = job.total_shards
            job.status = "done"
        except PhasemapError as exc:
            job.error = str(exc)
            job.status = "failed"
        except Exception as exc:  # reported through the job's status, never lost
            job.error = f"{type(exc).__name__}: {exc}"
            job.status = "failed"
            traceback.print_exc()
        finally:
            job.finished = time.time()
            job.event.set()

    # --- reading ----------------------------------------------------------------------------
    def get(self, rid: str) -> Job | None:
        with self._lock:
            return self._jobs.get(rid)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def wait(self, rid: str, timeout: float | None = None) -> Job:
        job = self.get(rid)
        if job is None:
            raise KeyError(rid)
        job.event.wait(timeout)
        return job

    def running(self) -> int:
        return sum(j.status in ("queued", "running") for j in self.jobs())

    # --- shutting down ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting work, cancel queued jobs and close the embedded cluster."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        for job in self.jobs():
            if job.status == "queued":
                job.status, job.error = "failed", "server shut down before the job started"
                job.event.set()
        with self._client_lock:
            if self._own_client:
                self._stack.close()
            self._client = None

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
