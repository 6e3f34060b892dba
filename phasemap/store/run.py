"""Running: computing and committing missing shards (embedded threads or a dask cluster),
and :func:`compute`, which serves a request from the store."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import xarray as xr

from .. import __version__
from ..errors import StoreError
from ..grid import GridSpec
from .family import Family
from .layout import FamilyLayout, Window, spec_id
from .leases import Lease
from .plan import as_spec, plan
from .records import _utcnow

if TYPE_CHECKING:
    from .core import Store


def _shard_task(url: str, definition: dict, shard: tuple[int, ...],
                slot_values: dict[str, dict[int, float]], box=None) -> int:
    from .core import Store  # the facade imports this module

    fam = Family(Store(url), FamilyLayout.from_definition(definition))
    try:
        return fam.compute_shard(tuple(shard), slot_values, box)
    finally:
        fam.close()


def _shards_task(url: str, definition: dict, shards: list[tuple[int, ...]],
                 slot_values: dict[str, dict[int, float]], box=None) -> int:
    """Compute and commit several shards one after the other (each committed on its own);
    ``box``: only their part inside this window span (see :meth:`Family.compute_shard`)."""
    from .core import Store  # the facade imports this module

    fam = Family(Store(url), FamilyLayout.from_definition(definition))
    try:
        return sum(fam.compute_shard(tuple(shard), slot_values, box) for shard in shards)
    finally:
        fam.close()


#: Most shards one dask task computes. A task costs the scheduler and the client ~1-3 ms of
#: CPU here (docs/performance.md, issue 14), against ~5-10 ms of work per shard; batches keep
#: that overhead to a few per cent.
MAX_SHARDS_PER_TASK = 8


#: Each batch is cut as this fraction of a thread's share of the shards still to come:
#: 1/4 here, so the batches shrink towards the end of a run (see :func:`_batches`).
MIN_TASKS_PER_THREAD = 4


def _batches(shards: list[tuple[int, ...]], threads: int) -> list[list[tuple[int, ...]]]:
    """Cut ``shards`` into tasks, in order: large batches first, smaller ones at the end.

    Each batch holds ``ceil(remaining / (threads * MIN_TASKS_PER_THREAD))`` shards, at most
    :data:`MAX_SHARDS_PER_TASK` (guided self-scheduling): no task holds more than a quarter of
    a thread's share of the work still to come, so the worker that finishes last waits for
    at most a small task (the last ``threads * MIN_TASKS_PER_THREAD`` tasks are single
    shards), while most shards still travel in batches of 8. Fixed batches of 8 could leave
    one worker computing a whole batch (~40-80 ms) while the others were idle; one shard per
    task would cost the client and the scheduler ~1-3 ms of CPU per shard.
    """
    per_thread = max(1, threads) * MIN_TASKS_PER_THREAD
    out, i = [], 0
    while i < len(shards):
        per = min(MAX_SHARDS_PER_TASK, -(-(len(shards) - i) // per_thread))
        out.append(shards[i:i + per])
        i += per
    return out


def run_shards(store: Store, fam: Family, shards: list[tuple[int, ...]],
               slot_values: dict[str, dict[int, float]], client=None,
               progress: Callable[[int, int, int], None] | None = None, box=None) -> int:
    """Compute and commit ``shards`` (only their part inside ``box``, a window's
    :meth:`~.layout.Window.span`, that is not stored yet); return points computed.

    With no ``client``, on dask's threaded scheduler in this process (:func:`_run_local`);
    otherwise as dask tasks on the client's cluster, a few shards per task.
    """
    if not shards:
        return 0
    if client is None:
        return _run_local(fam, list(shards), slot_values, progress, box)
    definition = fam.layout.definition()
    from distributed import as_completed

    try:
        threads = max(1, sum(client.nthreads().values()))
    except Exception:  # a client that cannot say: assume a small cluster
        threads = 2
    batches = _batches(list(shards), threads)
    futures = client.map(_shards_task, [store.url] * len(batches),
                         [definition] * len(batches), batches,
                         [slot_values] * len(batches), [box] * len(batches), pure=False)
    sizes = {fut.key: len(batch) for fut, batch in zip(futures, batches, strict=True)}
    done = points = 0
    for fut in as_completed(futures, loop=client.loop):  # client may not be the default
        points += fut.result()
        done += sizes[fut.key]
        if progress:
            progress(done, len(shards), points)
    return points


def _run_local(fam: Family, shards: list[tuple[int, ...]],
               slot_values: dict[str, dict[int, float]],
               progress: Callable[[int, int, int], None] | None = None, box=None) -> int:
    """Compute and commit ``shards`` on a thread per core of this process; return points.

    The embedded default: dask's local scheduler, one task per shard, on a thread pool of
    its own. The kernels, the codecs and file I/O release the GIL, so the threads use every
    core; a task costs ~0.1 ms of scheduling against ~10 ms per shard, where a task on a
    ``distributed`` LocalCluster cost 2-7 ms (docs/performance.md). Twice as many tasks as
    threads are handed to the pool at a time, so a thread that finishes a shard starts the
    next one at once instead of waiting for this thread to be scheduled and take the GIL
    (which left each thread idle ~0.7 ms between shards, up to the 5 ms GIL switch
    interval). ``progress`` is called
    from this (the calling) thread after every committed shard. On an error or an interrupt
    no new shard is started, the ones in flight finish (each still commits only after its
    bytes), and the error is raised here.
    """
    import concurrent.futures

    import dask.local
    import dask.threaded
    from dask.callbacks import Callback

    from ..cluster import usable_cores

    threads = max(1, min(usable_cores(), len(shards)))
    keys = [("phasemap-shard", i) for i in range(len(shards))]
    graph = {key: (functools.partial(fam.compute_shard, tuple(shard), slot_values, box),)
             for key, shard in zip(keys, shards, strict=True)}
    count = {"done": 0, "points": 0}

    class _Progress(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            count["done"] += 1
            count["points"] += result
            if progress:
                progress(count["done"], len(shards), count["points"])

    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="phasemap-shard"
                                               ) as pool:
        try:
            results = dask.local.get_async(pool.submit, 2 * threads, graph, keys,
                                           get_id=threading.get_ident,
                                           pack_exception=dask.threaded.pack_exception,
                                           callbacks=[_Progress()._callback])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            fam.close()
    return int(sum(results))


def compute(spec: GridSpec | dict | str | os.PathLike, store: Store | str | None = None,
            client=None, progress: Callable[[int, int, int], None] | None = None) -> xr.Dataset:
    """Serve a grid from the store, computing only the shards that are missing.

    Parameters
    ----------
    spec : GridSpec, mapping, or path to a YAML/JSON spec
    store : Store or URL, optional
        Default ``$PHASEMAP_STORE`` or ``data/store``.
    client : distributed.Client, optional
        Where to compute (dask tasks of a few shards each); default dask's threaded scheduler in
        this process (one task per shard).
    progress : callable(done_shards, total_shards, points_computed), optional

    Returns
    -------
    xarray.Dataset
        Opened lazily from the store, with CF metadata and provenance attributes
        (``spec``, ``model_version``, ``phasemap_version``, ``created``, ``points_computed``,
        ``points_reused``, ``dataset_id``, ``store``).
    """
    spec = as_spec(spec)
    from .core import Store  # the facade imports this module

    store = store if isinstance(store, Store) else Store(store)
    t0 = time.perf_counter()
    hit = store._hit(spec)  # a complete dataset: one read, no commit records
    if hit is not None:
        fam, window = hit
        if progress:
            progress(1, 1, 0)
        return _dataset(fam.open_window(window, spec), spec, store, fam, 0, spec.size)
    p = plan(spec, store)
    reused = p.points_stored
    fam = Family(store, p.layout)
    computed = shards_computed = 0
    # Not a complete dataset yet (or its record is older, or its slots changed): plan,
    # compute what is missing, confirm, and record it complete.
    store.check_limits(p)
    with Lease(store, [fam.key]):  # gc keeps the family while this runs
        lost: list[tuple[int, ...]] = []
        for _ in range(MAX_COMPUTE_ROUNDS):
            fam.create()
            if p.missing or lost:
                window = Window.from_spec(p.layout, spec, fam.slots_for(spec, register=True))
                todo = sorted(set(fam.pending(window)) | set(lost))
                computed += run_shards(store, fam, todo, window.explicit_values(),
                                       client=client, progress=progress, box=window.span())
                shards_computed += len(todo)
            elif progress:
                progress(len(p.needed), len(p.needed), 0)
            # Confirm before recording: every shard committed for these values and every
            # object present (something may have removed them behind this compute's back).
            p = plan(spec, store)
            lost = [] if p.missing else fam.absent(p.needed)
            if not p.missing and not lost:
                break
        else:
            raise StoreError(f"shards of this grid keep disappearing from the store while "
                             f"it is computed ({len(p.missing) + len(lost)} after "
                             f"{MAX_COMPUTE_ROUNDS} rounds); is another process deleting "
                             "them?")
        stats = {"points": p.points, "points_computed": computed,
                 "points_reused": reused, "shards_computed": shards_computed,
                 "created": _utcnow(), "seconds": round(time.perf_counter() - t0, 3),
                 "model_version": p.layout.model_version, "phasemap_version": __version__}
        store.record_request(spec, fam, stats, shards=p.needed, window=p.window)
    return _dataset(fam.open_window(p.window, spec), spec, store, fam, computed, reused)


def _dataset(ds: xr.Dataset, spec: GridSpec, store: Store, fam: Family, computed: int,
             reused: int) -> xr.Dataset:
    ds.attrs.update({"spec": json.dumps(spec.to_dict()), "dataset_id": spec_id(spec),
                     "store": store.url, "family": fam.key, "created": _utcnow(),
                     "points_computed": computed, "points_reused": reused})
    if spec.name:
        ds.attrs["title"] = spec.name
    return ds


#: Rounds of computing and confirming a request before :func:`compute` gives up.
MAX_COMPUTE_ROUNDS = 3
