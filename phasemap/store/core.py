"""The Zarr store as a cache: families of sparse sharded arrays plus a commit record.

This module (with :mod:`.layout`) is the only code in phasemap that touches Zarr.

Layout of a store root (a local directory or any fsspec URL)::

    families/<family-key>/zarr.json          group; attrs hold the family definition
    families/<family-key>/<output>/...       one sparse sharded array per stored output
    families/<family-key>/commits/<shard>    commit record: one JSON object per finished shard
    families/<family-key>/slots/<axis>/<n>   value of explicit-axis slot n
    requests/<dataset-id>.json               every request served: spec, family, window

Commit protocol: a shard's bytes are written (atomically: temporary file + rename on local
disks, single PUT on object stores), *then* its commit record. Readers and the planner treat a
shard as present only once its record exists, so a crash at any moment loses only the shards
in flight; recomputing is idempotent because the numbers are deterministic. Each inner chunk
carries a CRC32C checksum (Zarr v3 codec) and each record the byte size of every shard object,
which is what :meth:`Store.verify` checks.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import math
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import fsspec
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from .. import __version__
from ..errors import ParameterError, StoreError
from ..grid import GridSpec
from ..models import OUTPUT_DTYPES, get_model
from ..variables import apply_attrs, attrs_for
from .layout import FamilyLayout, Window

ZSTD_LEVEL = 1


def default_store_url() -> str:
    """``$PHASEMAP_STORE``, else ``data/store`` beside the package's repository checkout,
    else ``./data/store``."""
    env = os.environ.get("PHASEMAP_STORE")
    if env:
        return env
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").exists() and (repo / "data").is_dir():
        return str(repo / "data" / "store")
    return str(Path.cwd() / "data" / "store")


def _utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def spec_id(spec: GridSpec) -> str:
    """Dataset id of a request: a hash of its canonical spec."""
    blob = json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def shard_name(shard: Iterable[int]) -> str:
    return ".".join(str(int(i)) for i in shard) or "0"


@dataclass
class ShardReport:
    """What :meth:`Store.verify` found wrong with one committed shard."""

    family: str
    shard: tuple[int, ...]
    variable: str
    problem: str


class Store:
    """A phasemap store at ``url`` (local path or fsspec URL; default :func:`default_store_url`).

    Instances are cheap; they hold no open files.
    """

    def __init__(self, url: str | os.PathLike | None = None):
        url = str(url) if url is not None else default_store_url()
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                else (self.fs.protocol,))
        if self.local:
            self.root = os.path.abspath(self.root)
            os.makedirs(self.root, exist_ok=True)
            self.zstore = zarr.storage.LocalStore(self.root)
        else:
            self.zstore = zarr.storage.FsspecStore.from_url(url)

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # --- small objects --------------------------------------------------------------------
    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def write_blob(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically (readers see the old or the new, never half)."""
        path = self._path(key)
        if self.local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        else:
            self.fs.pipe_file(path, data)

    def read_blob(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            return None

    def list_blobs(self, prefix: str) -> list[str]:
        """Names (not paths) directly under ``prefix``; hidden temporaries excluded."""
        try:
            entries = self.fs.ls(self._path(prefix), detail=False)
        except FileNotFoundError:
            return []
        names = [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]
        return sorted(n for n in names if not n.startswith("."))

    def delete(self, key: str, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(key), recursive=recursive)

    def size_of(self, key: str) -> int | None:
        try:
            return int(self.fs.size(self._path(key)))
        except FileNotFoundError:
            return None

    # --- families -------------------------------------------------------------------------
    def family(self, layout: FamilyLayout, create: bool = True) -> Family:
        fam = Family(self, layout)
        if create:
            fam.create()
        return fam

    def families(self) -> list[str]:
        return self.list_blobs("families")

    def family_by_key(self, key: str) -> Family:
        raw = self.read_blob(f"families/{key}/zarr.json")
        if raw is None:
            raise StoreError(f"no family {key!r} in store {self.url}")
        definition = json.loads(raw)["attributes"]["phasemap_family"]
        return Family(self, FamilyLayout.from_definition(definition))

    # --- requests -------------------------------------------------------------------------
    def record_request(self, spec: GridSpec, family: Family, stats: dict[str, Any]) -> str:
        rid = spec_id(spec)
        record = {"id": rid, "spec": spec.to_dict(), "family": family.key,
                  "shape": list(spec.shape), "dims": list(spec.dims), **stats}
        self.write_blob(f"requests/{rid}.json", json.dumps(record, indent=1).encode())
        return rid

    def requests(self) -> list[dict[str, Any]]:
        out = []
        for name in self.list_blobs("requests"):
            if name.endswith(".json"):
                raw = self.read_blob(f"requests/{name}")
                if raw:
                    out.append(json.loads(raw))
        return out

    def request(self, rid: str) -> dict[str, Any]:
        if not isinstance(rid, str) or not rid.isalnum():
            raise ParameterError("dataset", rid, "a dataset id as listed by the store")
        raw = self.read_blob(f"requests/{rid}.json")
        if raw is None:
            raise ParameterError("dataset", rid, f"a dataset id present in store {self.url}")
        return json.loads(raw)

    def open(self, rid_or_spec: str | GridSpec) -> xr.Dataset:
        """Open a stored dataset lazily, by id or by spec; nothing is computed."""
        spec = (rid_or_spec if isinstance(rid_or_spec, GridSpec)
                else GridSpec.from_dict(self.request(rid_or_spec)["spec"]))
        layout = FamilyLayout.from_spec(spec)
        fam = self.family(layout, create=False)
        window = Window.from_spec(layout, spec)
        missing = set(window.shards()) - fam.committed()
        if missing:
            raise StoreError(f"{len(missing)} of {window.n_shards()} shards of this grid are not "
                             f"in store {self.url}; compute it first")
        return fam.open_window(window, spec)

    def remove_request(self, rid: str) -> None:
        self.request(rid)
        self.delete(f"requests/{rid}.json")

    def gc(self) -> dict[str, int]:
        """Delete families no request refers to, and stray temporaries; return counts."""
        used = {r["family"] for r in self.requests()}
        removed = 0
        for key in self.families():
            if key not in used:
                self.delete(f"families/{key}", recursive=True)
                removed += 1
        temps = 0
        if self.local:
            for dirpath, _, files in os.walk(self.root):
                for f in files:
                    if f.startswith(".tmp-") or f.endswith(".partial"):
                        os.unlink(os.path.join(dirpath, f))
                        temps += 1
        return {"families_removed": removed, "temporaries_removed": temps}

    def verify(self, families: Iterable[str] | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[ShardReport]:
        """Check every committed shard: objects present, sizes as recorded, checksums."""
        bad: list[ShardReport] = []
        keys = list(families) if families is not None else self.families()
        for key in keys:
            bad.extend(self.family_by_key(key).verify(progress))
        return bad

    def repair(self, client=None, progress=None) -> list[ShardReport]:
        """Recompute every shard :meth:`verify` reports; return what was repaired."""
        bad = self.verify()
        by_family: dict[str, set[tuple[int, ...]]] = {}
        for r in bad:
            by_family.setdefault(r.family, set()).add(r.shard)
        for key, shards in by_family.items():
            fam = self.family_by_key(key)
            for shard in shards:
                fam.uncommit(shard)
            slot_values = fam.slot_values()
            run_shards(self, fam, sorted(shards), slot_values, client=client, progress=progress)
        return bad


class Family:
    """One family's Zarr group in a store."""

    def __init__(self, store: Store, layout: FamilyLayout):
        self.store = store
        self.layout = layout
        self.key = layout.key
        self.prefix = f"families/{self.key}"

    def create(self) -> None:
        """Create the group and its arrays if missing (safe to race with other processes)."""
        if self.store.read_blob(f"{self.prefix}/zarr.json") is not None and all(
                self.store.read_blob(f"{self.prefix}/{v}/zarr.json") is not None
                for v in self.layout.stored):
            return
        model = get_model(self.layout.model)
        for var in self.layout.stored:
            dtype = OUTPUT_DTYPES[var] if OUTPUT_DTYPES[var].kind == "i" else self.layout.dtype
            fill = -1 if np.dtype(dtype).kind == "i" else np.nan
            attrs = attrs_for(var)
            if "flag_values" in attrs:
                attrs["flag_values"] = [int(x) for x in attrs["flag_values"]]
            try:
                zarr.create_array(
                    self.store.zstore, name=f"{self.prefix}/{var}", shape=self.layout.shape,
                    shards=self.layout.shard_shape, chunks=self.layout.inner_shape,
                    dtype=dtype, fill_value=fill,
                    compressors=[ZstdCodec(level=ZSTD_LEVEL), Crc32cCodec()],
                    dimension_names=self.layout.dims, attributes=attrs,
                    config={"write_empty_chunks": True}, overwrite=False)
            except zarr.errors.ContainsArrayError:
                pass
        del model
        zarr.open_group(self.store.zstore, path=self.prefix, mode="a",
                        attributes={"phasemap_family": self.layout.definition(),
                                    "phasemap_version": __version__})

    def array(self, var: str):
        return zarr.open_array(self.store.zstore, path=f"{self.prefix}/{var}", mode="r+")

    # commit record ---------------------------------------------------------------------
    def committed(self) -> set[tuple[int, ...]]:
        names = self.store.list_blobs(f"{self.prefix}/commits")
        return {tuple(int(x) for x in n.split(".")) if n != "0" or not self.layout.axes else ()
                for n in names}

    def commit_record(self, shard: tuple[int, ...]) -> dict[str, Any] | None:
        raw = self.store.read_blob(f"{self.prefix}/commits/{shard_name(shard)}")
        return json.loads(raw) if raw else None

    def commit(self, shard: tuple[int, ...], record: dict[str, Any]) -> None:
        self.store.write_blob(f"{self.prefix}/commits/{shard_name(shard)}",
                              json.dumps(record).encode())

    def uncommit(self, shard: tuple[int, ...]) -> None:
        self.store.delete(f"{self.prefix}/commits/{shard_name(shard)}")
        for var in self.layout.stored:
            self.store.delete(self.shard_key(var, shard))

    def shard_key(self, var: str, shard: tuple[int, ...]) -> str:
        return f"{self.prefix}/{var}/c/" + "/".join(str(i) for i in shard)

    # explicit-axis slots -----------------------------------------------------------------
    def register_slots(self, values: dict[str, dict[int, float]]) -> None:
        for axis, slots in values.items():
            for slot, value in slots.items():
                key = f"{self.prefix}/slots/{axis}/{slot}"
                old = self.store.read_blob(key)
                if old is None:
                    self.store.write_blob(key, repr(float(value)).encode())
                elif float(old) != float(value):
                    raise StoreError(f"slot collision on axis {axis!r}: {value!r} and "
                                     f"{float(old)!r} share slot {slot}; use a lattice axis")

    def slot_values(self) -> dict[str, dict[int, float]]:
        out = {}
        for ax in self.layout.axes:
            if ax.explicit:
                prefix = f"{self.prefix}/slots/{ax.name}"
                out[ax.name] = {int(n): float(self.store.read_blob(f"{prefix}/{n}"))
                                for n in self.store.list_blobs(prefix)}
        return out

    # computing -------------------------------------------------------------------------
    def compute_shard(self, shard: tuple[int, ...],
                      slot_values: dict[str, dict[int, float]]) -> int:
        """Evaluate, write and commit one whole shard; return the number of points."""
        model = get_model(self.layout.model)
        ndim = len(self.layout.axes)
        args: dict[str, Any] = dict(self.layout.params)
        for i, (ax, idx) in enumerate(zip(self.layout.axes, shard, strict=True)):
            shape = [1] * ndim
            shape[i] = -1
            args[ax.name] = ax.shard_values(idx, slot_values.get(ax.name)).reshape(shape)
        full = self.layout.shard_shape
        with np.errstate(all="ignore"):  # points outside the domain are masked just below
            outs = model(**args)
        invalid = _invalid_points(model, args, full)
        sizes = {}
        region = tuple(slice(i * ax.shard, (i + 1) * ax.shard)
                       for ax, i in zip(self.layout.axes, shard, strict=True))
        for var in self.layout.stored:
            dtype = OUTPUT_DTYPES[var] if OUTPUT_DTYPES[var].kind == "i" else self.layout.dtype
            data = np.broadcast_to(outs[var], full).astype(dtype)
            if invalid is not None:
                data[invalid] = -1 if np.dtype(dtype).kind == "i" else np.nan
            self.array(var)[region] = data
            sizes[var] = self.store.size_of(self.shard_key(var, shard))
        self.commit(shard, {"shard": list(shard), "points": math.prod(full), "sizes": sizes,
                            "time": _utcnow(), "phasemap_version": __version__})
        return math.prod(full)

    # reading ---------------------------------------------------------------------------
    def open_window(self, window: Window, spec: GridSpec) -> xr.Dataset:
        """Lazy dataset of ``window``: stored outputs read shard by shard, the rest derived."""
        model = get_model(self.layout.model)
        dims = self.layout.dims
        chunks = []
        for ax, start, n in zip(self.layout.axes, window.starts, window.sizes, strict=True):
            if ax.explicit:
                chunks.append((1,) * n)
            else:
                first = min(n, ax.shard - start % ax.shard)
                rest = n - first
                chunks.append((first,) + (ax.shard,) * (rest // ax.shard)
                              + ((rest % ax.shard,) if rest % ax.shard else ()))
        data_vars = {}
        for var in self.layout.stored:
            reader = _WindowReader(self.store.url, self.prefix, var, window)
            arr = da.from_array(reader, chunks=tuple(chunks), asarray=False,
                                name=f"phasemap-{self.key}-{var}-{spec_id(spec)}",
                                fancy=False, meta=np.empty((0,) * len(dims), reader.dtype))
            data_vars[var] = (dims, arr)
        coords = {name: window.coords[name] for name in dims}
        ds = xr.Dataset(data_vars, coords=coords)
        for name, value in self.layout.params:
            ds.coords[name] = value
        if model.derive is not None and set(model.outputs) - set(self.layout.stored):
            ds = _derive(ds, model, self.layout)
        ds = ds[[o for o in model.outputs if o in ds]]
        return apply_attrs(ds, {"model": model.name, "model_version": model.version,
                                "phasemap_version": __version__,
                                "references": "Y. Zhang and X. Lü, Phys. Rev. E 111, 044112 "
                                              "(2025), arXiv:2408.07882"})

    def verify(self, progress=None) -> list[ShardReport]:
        bad = []
        shards = sorted(self.committed())
        for n, shard in enumerate(shards):
            record = self.commit_record(shard) or {}
            for var in self.layout.stored:
                key = self.shard_key(var, shard)
                size = self.store.size_of(key)
                expected = (record.get("sizes") or {}).get(var)
                if size is None:
                    bad.append(ShardReport(self.key, shard, var, "missing"))
                    continue
                if expected is not None and size != expected:
                    bad.append(ShardReport(self.key, shard, var,
                                           f"size {size} bytes, committed {expected}"))
                    continue
                region = tuple(slice(i * ax.shard, (i + 1) * ax.shard)
                               for ax, i in zip(self.layout.axes, shard, strict=True))
                try:
                    self.array(var)[region]
                except Exception as exc:  # checksum or decoding failure
                    bad.append(ShardReport(self.key, shard, var,
                                           f"unreadable: {type(exc).__name__}: {exc}"[:200]))
            if progress:
                progress(n + 1, len(shards))
        return bad


def _invalid_points(model, args, shape) -> np.ndarray | None:
    """Mask of shard points outside the model's domain (they are stored as NaN)."""
    bad = np.zeros(shape, dtype=bool)
    for p in model.parameters:
        if p.name in args:
            bad |= np.broadcast_to(p.violates(np.asarray(args[p.name], dtype=float)), shape)
    for con in model.constraints:
        vals = [np.asarray(args.get(n, model.defaults()[n]), dtype=float) for n in con.params]
        bad |= np.broadcast_to(con.check(*vals), shape)
    return bad if bad.any() else None


def _derive(ds: xr.Dataset, model, layout: FamilyLayout) -> xr.Dataset:
    stored = tuple(layout.stored)
    derived = [o for o in model.outputs if o not in stored]
    names = model.param_names

    def kernel(*arrays):
        st = dict(zip(stored, arrays[: len(stored)], strict=True))
        params = dict(zip(names, arrays[len(stored):], strict=True))
        st = {k: np.asarray(v, dtype=np.float64) for k, v in st.items()}
        out = model.derive(st, **{k: np.asarray(v, dtype=np.float64) for k, v in params.items()})
        dtype = np.dtype(layout.dtype)
        return tuple(out[o] if OUTPUT_DTYPES[o].kind == "i" else out[o].astype(dtype, copy=False)
                     for o in derived)

    inputs = [ds[v] for v in stored] + [ds[n] if n in ds.coords else xr.DataArray(
        model.defaults()[n]) for n in names]
    results = xr.apply_ufunc(
        kernel, *inputs, output_core_dims=[()] * len(derived), dask="parallelized",
        output_dtypes=[OUTPUT_DTYPES[o] if OUTPUT_DTYPES[o].kind == "i"
                       else np.dtype(layout.dtype) for o in derived])
    for name, res in zip(derived, results, strict=True):
        ds[name] = res.transpose(*ds[stored[0]].dims)
    return ds


class _WindowReader:
    """Array-like view of one stored output restricted to a request window (for dask)."""

    def __init__(self, url: str, prefix: str, var: str, window: Window):
        self.url = url
        self.path = f"{prefix}/{var}"
        self.starts = window.starts
        self.slots = window.slots
        self.shape = tuple(window.sizes)
        self.ndim = len(self.shape)
        dtype = OUTPUT_DTYPES[var] if OUTPUT_DTYPES[var].kind == "i" else \
            np.dtype(window.layout.dtype)
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        sel = []
        for k, start, slots, n in zip(key, self.starts, self.slots, self.shape, strict=True):
            k = slice(*k.indices(n)) if isinstance(k, slice) else slice(k, k + 1)
            if slots is None:
                sel.append(slice(start + k.start, start + k.stop))
            else:
                idx = np.asarray(slots)[k]
                sel.append(slice(int(idx[0]), int(idx[0]) + 1) if len(idx) == 1 else idx)
        arr = _open_array(self.url, self.path)
        if any(isinstance(s, np.ndarray) for s in sel):
            return arr.oindex[tuple(sel)]
        return arr[tuple(sel)]


@functools.lru_cache(maxsize=256)
def _open_array(url: str, path: str):
    return zarr.open_array(Store(url).zstore, path=path, mode="r")


# --- execution: the one planner ---------------------------------------------------------

@dataclass
class Plan:
    """What a request needs: its family, window, and which shards are missing."""

    spec: GridSpec
    layout: FamilyLayout
    window: Window
    needed: list[tuple[int, ...]]
    missing: list[tuple[int, ...]]

    @property
    def points(self) -> int:
        return self.window.size

    @property
    def points_to_compute(self) -> int:
        return len(self.missing) * self.layout.shard_points

    @property
    def points_stored(self) -> int:
        """Requested points that are already in the store."""
        if not self.missing:
            return self.points
        missing = set(self.missing)
        stored = 0
        for shard in self.needed:
            if shard not in missing:
                stored += _overlap(self.window, shard)
        return stored

    @property
    def nbytes(self) -> int:
        return self.spec.nbytes

    def summary(self) -> dict[str, Any]:
        return {"points": self.points, "bytes": self.nbytes, "shards": len(self.needed),
                "shards_missing": len(self.missing), "points_stored": self.points_stored,
                "points_to_compute": self.points_to_compute, "family": self.layout.key,
                "shard_shape": list(self.layout.shard_shape)}


def _overlap(window: Window, shard: tuple[int, ...]) -> int:
    n = 1
    for ax, start, slots, size, i in zip(window.layout.axes, window.starts, window.slots,
                                         window.sizes, shard, strict=True):
        if ax.explicit:
            n *= int(np.sum(np.asarray(slots) == i))
        else:
            lo, hi = max(start, i * ax.shard), min(start + size, (i + 1) * ax.shard)
            n *= max(0, hi - lo)
    return n


def plan(spec: GridSpec, store: Store) -> Plan:
    layout = FamilyLayout.from_spec(spec)
    window = Window.from_spec(layout, spec)
    fam = Family(store, layout)
    needed = window.shards()
    done = fam.committed()
    missing = [s for s in needed if s not in done]
    return Plan(spec, layout, window, needed, missing)


def _shard_task(url: str, definition: dict, shard: tuple[int, ...],
                slot_values: dict[str, dict[int, float]]) -> int:
    fam = Family(Store(url), FamilyLayout.from_definition(definition))
    return fam.compute_shard(tuple(shard), slot_values)


def run_shards(store: Store, fam: Family, shards: list[tuple[int, ...]],
               slot_values: dict[str, dict[int, float]], client=None,
               progress: Callable[[int, int, int], None] | None = None) -> int:
    """Compute and commit ``shards`` on a dask cluster; return points computed."""
    if not shards:
        return 0
    from ..cluster import embedded_client

    definition = fam.layout.definition()
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(embedded_client())
        from distributed import as_completed

        futures = client.map(_shard_task, [store.url] * len(shards),
                             [definition] * len(shards), shards,
                             [slot_values] * len(shards), pure=False)
        done = points = 0
        for fut in as_completed(futures):
            points += fut.result()
            done += 1
            if progress:
                progress(done, len(shards), points)
    return points


def compute(spec: GridSpec | dict | str | os.PathLike, store: Store | str | None = None,
            client=None, progress: Callable[[int, int, int], None] | None = None) -> xr.Dataset:
    """Serve a grid from the store, computing only the shards that are missing.

    Parameters
    ----------
    spec : GridSpec, mapping, or path to a YAML/JSON spec
    store : Store or URL, optional
        Default ``$PHASEMAP_STORE`` or ``data/store``.
    client : distributed.Client, optional
        Where to compute; default an in-process LocalCluster started only if anything is
        missing.
    progress : callable(done_shards, total_shards, points_computed), optional

    Returns
    -------
    xarray.Dataset
        Opened lazily from the store, with CF metadata and provenance attributes
        (``spec``, ``model_version``, ``phasemap_version``, ``created``, ``points_computed``,
        ``points_reused``, ``dataset_id``, ``store``).
    """
    spec = as_spec(spec)
    store = store if isinstance(store, Store) else Store(store)
    t0 = time.perf_counter()
    p = plan(spec, store)
    fam = store.family(p.layout, create=bool(p.missing))
    computed = 0
    if p.missing:
        slots = p.window.explicit_values()
        fam.register_slots(slots)
        computed = run_shards(store, fam, p.missing, slots, client=client, progress=progress)
    elif progress:
        progress(len(p.needed), len(p.needed), 0)
    stats = {"points": p.points, "points_computed": computed, "points_reused": p.points_stored,
             "shards_computed": len(p.missing), "created": _utcnow(),
             "seconds": round(time.perf_counter() - t0, 3),
             "model_version": p.layout.model_version, "phasemap_version": __version__}
    rid = spec_id(spec)
    if p.missing or store.read_blob(f"requests/{rid}.json") is None:
        store.record_request(spec, fam, stats)
    ds = fam.open_window(p.window, spec)
    ds.attrs.update({"spec": json.dumps(spec.to_dict(), sort_keys=True), "dataset_id": rid,
                     "store": store.url, "family": fam.key, "created": stats["created"],
                     "points_computed": computed, "points_reused": p.points_stored})
    if spec.name:
        ds.attrs["title"] = spec.name
    return ds


def as_spec(spec: GridSpec | dict | str | os.PathLike) -> GridSpec:
    if isinstance(spec, GridSpec):
        return spec
    if isinstance(spec, dict):
        return GridSpec.from_dict(spec)
    return GridSpec.load(spec)


def new_token() -> str:
    return uuid.uuid4().hex
