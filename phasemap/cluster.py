"""Dask clusters from options: embedded (default), an existing scheduler, or a job queue.

``phasemap`` never needs a server to be started by hand: with no options :func:`get_client`
yields ``None`` and ``phasemap.compute`` runs the missing shards on dask's threaded scheduler
in the calling process, a thread per core (the kernels, the codecs and file I/O release the
GIL);
:func:`embedded_client` is an in-process :class:`distributed.LocalCluster` of the same shape
for code that wants a dask client. ``scheduler`` connects to a running dask.distributed
scheduler (``tcp://host:port``) or reads a scheduler file; ``cluster`` starts one through
dask-jobqueue from ``pipelines/cluster/<name>.yaml``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .errors import ParameterError

JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
            "lsf": "LSFCluster"}


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


#: Keyword arguments that keep an in-process LocalCluster's endpoints on loopback: distributed
#: starts HTTP servers for the scheduler and the workers even without a dashboard, and they
#: would otherwise listen on every interface.
LOOPBACK_CLUSTER = {"dashboard_address": None, "worker_dashboard_address": "127.0.0.1:0",
                    "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}}


def cluster_config_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "pipelines" / "cluster"


@contextlib.contextmanager
def embedded_client(n_threads: int | None = None) -> Iterator[Any]:
    """An in-process LocalCluster with one worker and a thread per core."""
    from distributed import Client, LocalCluster

    threads = n_threads or usable_cores()
    with LocalCluster(n_workers=1, threads_per_worker=threads, processes=False,
                      **LOOPBACK_CLUSTER) as cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def get_client(scheduler: str | None = None, cluster: str | None = None,
               config: str | os.PathLike | None = None, jobs: int | None = None
               ) -> Iterator[Any | None]:
    """A ``distributed.Client`` for the options, closed (with any cluster it started) on exit.

    Yields ``None`` when no option is given: ``compute`` then uses dask's threaded scheduler in
    this process, so a request answered from the cache starts nothing.
    """
    from distributed import Client

    if scheduler and cluster:
        raise ParameterError("scheduler", scheduler, "either --scheduler or --cluster, not both")
    if scheduler:
        if scheduler.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
            with Client(scheduler, timeout="30s") as client:
                yield client
            return
        if not Path(scheduler).exists():
            raise ParameterError("scheduler", scheduler,
                                 "a scheduler address tcp://host:port or an existing "
                                 "scheduler file")
        with Client(scheduler_file=scheduler, timeout="30s") as client:
            yield client
        return
    if cluster:
        with jobqueue_cluster(cluster, config, jobs) as (client, _):
            yield client
        return
    yield None


@contextlib.contextmanager
def jobqueue_cluster(kind: str, config: str | os.PathLike | None = None,
                     jobs: int | None = None):
    """Start a dask-jobqueue cluster of ``kind`` from its YAML config; yield (client, cluster)."""
    if kind not in JOBQUEUE:
        raise ParameterError("cluster", kind, f"one of {', '.join(JOBQUEUE)}")
    path = Path(config) if config else cluster_config_dir() / f"{kind}.yaml"
    if not path.exists():
        raise ParameterError("cluster config", str(path), "an existing YAML file of "
                                                          "dask-jobqueue keyword arguments")
    settings = yaml.safe_load(path.read_text()) or {}
    n_jobs = int(jobs or settings.pop("jobs", 1))
    settings.pop("jobs", None)
    timeout = float(settings.pop("worker_timeout", 300))
    import dask_jobqueue
    from distributed import Client

    cls = getattr(dask_jobqueue, JOBQUEUE[kind])
    with cls(**settings) as cl:
        cl.scale(jobs=n_jobs)
        with Client(cl) as client:
            client.wait_for_workers(1, timeout=timeout)
            yield client, cl
