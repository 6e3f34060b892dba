"""The Zarr store as a cache: families of sparse sharded arrays plus a commit record.

This module (with :mod:`.layout`) is the only code in phasemap that touches Zarr.

Layout of a store root (a local directory or any fsspec URL)::

    families/<family-key>/zarr.json          group; attrs hold the family definition
    families/<family-key>/<output>/...       one sparse sharded array per stored output
    families/<family-key>/commits/<shard>    commit record of a finished shard (JSON lines)
    families/<family-key>/slots/<axis>/<n>   value of explicit-axis slot n
    requests/<dataset-id>.json               every request served: spec, family, window

Commit protocol: a shard's bytes are written (atomically: temporary file + rename on local
disks, single PUT on object stores), *then* its commit record (on a local disk a hard link
to the writer's record file, see :class:`_RecordFile`). Readers and the planner treat a
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
import itertools
import json
import math
import os
import socket
import struct
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import dask.array as da
import fsspec
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec

from .. import __version__
from .. import accessor as _accessor  # noqa: F401  (datasets carry ds.phasemap)
from .._paths import default_store_url
from ..errors import ParameterError, StoreCorrupted, StoreError
from ..grid import GridSpec, grid_index
from ..models import OUTPUT_DTYPES, get_model
from ..variables import apply_attrs, attrs_for
from .layout import SLOT_LENGTH, UNREGISTERED, FamilyLayout, Window, slot_of


def compressors() -> list:
    """The codecs of every new stored array, inside the sharding codec (see
    docs/performance.md): blosc lz4 with byte shuffle (encodes ~3x faster than zstd level 1
    and stores J_L in ~0.80 of its raw size instead of ~0.94), then a CRC32C per inner chunk
    for ``verify``."""
    return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec()]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _utcnow() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def spec_id(spec: GridSpec) -> str:
    """Dataset id of a request: a hash of its canonical spec."""
    d = spec.to_dict()
    # Axis order is part of the request (it is the dimension order); parameter order is not.
    d["axes"] = [[name, ax] for name, ax in d["axes"].items()]
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def shard_name(shard: Iterable[int]) -> str:
    return ".".join(str(int(i)) for i in shard) or "0"


@dataclass
class ShardReport:
    """What :meth:`Store.verify` found wrong: a committed shard (``shard``), or with
    ``shard=None`` a family's metadata, a stray file or a damaged dataset record."""

    family: str
    shard: tuple[int, ...] | None
    variable: str
    problem: str

    @property
    def where(self) -> str:
        """``"shard 3.1"``, or ``"metadata"`` when the report is not about a shard."""
        return "metadata" if self.shard is None else "shard " + shard_name(self.shard)


#: Most files (shard objects, commit records, slots) one request may create; override with
#: ``Store(max_files=...)`` or ``PHASEMAP_MAX_FILES``.
MAX_FILES_PER_REQUEST = 20_000
#: A lease is honoured by ``gc`` for this long after its holder's last heartbeat [s].
LEASE_TTL = 120.0
#: How often a compute renews its lease [s].
LEASE_HEARTBEAT = 15.0


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (/proc)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore (racy only against other threads)
    os.umask(mask)
    return mask


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ParameterError(name, text, "a whole number") from None
    if value <= 0:
        raise ParameterError(name, text, "a whole number > 0")
    return value


class Store:
    """A phasemap store at ``url`` (local path or fsspec URL; default :func:`default_store_url`).

    Instances are cheap; they hold no open files.

    Parameters
    ----------
    url : str or path, optional
    quota_bytes : int, optional
        Most bytes the store may hold: a compute whose shards (counted uncompressed) would
        take it past this is refused before it writes anything. Default
        ``$PHASEMAP_STORE_QUOTA``, else no quota.
    max_files : int, optional
        Most files one request may create (default ``$PHASEMAP_MAX_FILES``, else
        :data:`MAX_FILES_PER_REQUEST`).

    Files the store writes (shards, commit records, slots, requests, leases, metadata) are
    created as ``open`` would create them: mode ``0o666`` minus the umask (``0o644`` under
    the usual ``022``, ``0o664`` under ``002`` for a store shared by a group); folders
    ``0o777`` minus the umask.
    """

    def __init__(self, url: str | os.PathLike | None = None, quota_bytes: int | None = None,
                 max_files: int | None = None):
        url = str(url) if url is not None else default_store_url()
        self.url = url
        self.quota_bytes = quota_bytes if quota_bytes is not None else \
            _env_int("PHASEMAP_STORE_QUOTA")
        self.max_files = max_files if max_files is not None else \
            (_env_int("PHASEMAP_MAX_FILES") or MAX_FILES_PER_REQUEST)
        self.file_mode = 0o666 & ~_umask()
        self.fs, self.root = fsspec.core.url_to_fs(url)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                else (self.fs.protocol,))
        if self.local:
            self.root = os.path.abspath(self.root)
            # workers (other processes, other working directories) get the absolute path
            self.url = self.root
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
            folder = os.path.dirname(path)
            try:  # the folder usually exists: no makedirs (a few syscalls) per shard
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            try:
                os.fchmod(fd, self.file_mode)  # mkstemp makes 0600: the store's one mode
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        else:
            self.fs.pipe_file(path, data)

    def create_blob(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` only if nothing is there; ``False`` if something is.

        Atomic on a local disk (a hard link of a whole temporary file fails if the name
        exists). On object stores it is fsspec's ``mode="create"`` (a conditional PUT where
        the backend has one, else a check then a PUT).
        """
        path = self._path(key)
        if not self.local:
            if self.fs.exists(path):
                return False
            try:
                self.fs.pipe_file(path, data, mode="create")
            except (FileExistsError, TypeError):
                return False
            return True
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            os.fchmod(fd, self.file_mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError:  # no hard links here: exclusive create of the name itself
                try:
                    fd2 = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                except FileExistsError:
                    return False
                with os.fdopen(fd2, "wb") as f:
                    f.write(data)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

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
        # families/zarr.json is the parent group's metadata, not a family
        return [n for n in self.list_blobs("families") if n != "zarr.json"]

    def family_by_key(self, key: str) -> Family:
        """The family stored under ``key``; :class:`StoreCorrupted` if its metadata is
        damaged or does not define that family."""
        raw = self.read_blob(f"families/{key}/zarr.json")
        if raw is None:
            raise StoreError(f"no family {key!r} in this store")
        try:
            definition = json.loads(raw)["attributes"]["phasemap_family"]
            layout = FamilyLayout.from_definition(definition)
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupted(key, None, "*", f"group metadata unreadable "
                                                 f"({type(exc).__name__})") from None
        if layout.key != key:
            raise StoreCorrupted(key, None, "*", "group metadata defines another family")
        return Family(self, layout)

    # --- requests -------------------------------------------------------------------------
    def record_request(self, spec: GridSpec, family: Family, stats: dict[str, Any],
                       shards: Iterable[tuple[int, ...]] | None = None) -> str:
        rid = spec_id(spec)
        if shards is not None:  # what a later cache hit must find committed (CLI fast path)
            self.write_blob(f"requests/{rid}.shards",
                            "\n".join(shard_name(s) for s in shards).encode())
        record = {"id": rid, "spec": spec.to_dict(), "family": family.key,
                  "shape": list(spec.shape), "dims": list(spec.dims), **stats}
        self.write_blob(f"requests/{rid}.json", json.dumps(record, indent=1).encode())
        return rid

    def requests(self, problems: list[str] | None = None) -> list[dict[str, Any]]:
        """Every readable dataset record. A damaged one is skipped (never an error for the
        rest) and described in ``problems`` when a list is given."""
        out = []
        for name in self.list_blobs("requests"):
            if name.endswith(".json"):
                try:
                    out.append(self._request_record(name[:-5]))
                except StoreError as exc:
                    if problems is not None:
                        problems.append(str(exc))
        return out

    def _request_record(self, rid: str) -> dict[str, Any]:
        raw = self.read_blob(f"requests/{rid}.json")
        if raw is None:
            raise ParameterError("dataset", rid, "a dataset id present in this store")
        try:
            record = json.loads(raw)
            if not isinstance(record, dict) or not {"id", "spec", "family"} <= set(record):
                raise ValueError("not a dataset record")
        except ValueError as exc:
            raise StoreError(f"dataset record {rid} is damaged ({exc.__class__.__name__}); "
                             f"'phasemap cache rm {rid}' forgets it") from None
        return record

    def request(self, rid: str) -> dict[str, Any]:
        if not isinstance(rid, str) or not rid.isalnum():
            raise ParameterError("dataset", rid, "a dataset id as listed by the store")
        return self._request_record(rid)

    def _window(self, spec: GridSpec) -> tuple[Family, Window]:
        """The family and the window of ``spec``, explicit values looked up (never
        registered), refusing any shard that is not committed for exactly these values."""
        layout = FamilyLayout.from_spec(spec)
        fam = Family(self, layout)
        window = Window.from_spec(layout, spec, fam.slots_for(spec))
        missing = set(window.shards()) - fam.committed_for(window)
        if missing:
            raise StoreError(f"{len(missing)} of {window.n_shards()} shards of this grid are "
                             "not in the store; compute it first")
        return fam, window

    def open(self, rid_or_spec: str | GridSpec) -> xr.Dataset:
        """Open a stored dataset lazily, by id or by spec; nothing is computed."""
        spec = (rid_or_spec if isinstance(rid_or_spec, GridSpec)
                else GridSpec.from_dict(self.request(rid_or_spec)["spec"]))
        fam, window = self._window(spec)
        return fam.open_window(window, spec)

    def point(self, rid_or_spec: str | GridSpec, at: dict[str, float]) -> dict[str, Any]:
        """Every output and both label codes at one grid point of a stored dataset.

        ``at`` names a value for every dimension; each must be a grid value (to 1e-9
        relative). Reads one inner chunk per stored output; no dask.
        """
        spec = (rid_or_spec if isinstance(rid_or_spec, GridSpec)
                else GridSpec.from_dict(self.request(rid_or_spec)["spec"]))
        layout = FamilyLayout.from_spec(spec)
        index = []
        for name in layout.dims:
            if name not in at:
                raise ParameterError("at", at, f"a value for every dimension "
                                               f"({', '.join(layout.dims)})")
            index.append(grid_index(name, spec.axis_values(name), float(at[name])))
        fam = Family(self, layout)
        window = Window.from_spec(layout, spec, fam.slots_for(spec))
        shard = tuple(int(sh) for sh in _shard_of(window, tuple(index)))
        if shard not in fam.committed_for(window, [shard]):
            raise StoreError("the shard holding this point is not in the store; "
                             "compute the grid first")
        return fam.read_point(window, tuple(index))

    def remove_request(self, rid: str) -> None:
        """Forget dataset ``rid`` (also when its record is damaged)."""
        if not isinstance(rid, str) or not rid.isalnum() or \
                self.read_blob(f"requests/{rid}.json") is None:
            raise ParameterError("dataset", rid, "a dataset id present in this store")
        self.delete(f"requests/{rid}.json")
        self.delete(f"requests/{rid}.shards")

    # --- leases, limits -------------------------------------------------------------------
    def leases(self) -> list[dict[str, Any]]:
        """Every lease in the store (live or not): ``id``, ``families``, ``heartbeat``."""
        out = []
        for name in self.list_blobs("leases"):
            raw = self.read_blob(f"leases/{name}")
            try:
                lease = json.loads(raw) if raw else None
                out.append({"id": name.removesuffix(".json"),
                            "families": list(lease["families"]),
                            "heartbeat": float(lease["heartbeat"])})
            except (ValueError, KeyError, TypeError):
                out.append({"id": name.removesuffix(".json"), "families": [],
                            "heartbeat": 0.0, "damaged": True})
        return out

    def usage(self) -> int:
        """Bytes the store holds (every file under its root)."""
        if self.local:
            total = 0
            for dirpath, _, files in os.walk(self.root):
                for f in files:
                    with contextlib.suppress(FileNotFoundError):
                        total += os.lstat(os.path.join(dirpath, f)).st_size
            return total
        try:
            return int(self.fs.du(self.root, total=True))
        except FileNotFoundError:
            return 0

    def check_limits(self, p: Plan) -> None:
        """Refuse a plan that would create more than ``max_files`` files or take the store
        past ``quota_bytes``, before anything is written."""
        files = p.files_to_create
        if files > self.max_files:
            raise ParameterError(
                "files", files, f"at most {self.max_files:,} files per request",
                f"{len(p.missing):,} shards of {p.layout.shard_points:,} points; use ranges "
                "instead of long lists of values, or Store(max_files=...) / "
                "PHASEMAP_MAX_FILES")
        if self.quota_bytes is not None:
            need = p.bytes_to_write
            used = self.usage()
            if used + need > self.quota_bytes:
                raise ParameterError(
                    "quota", used + need, f"at most {self.quota_bytes:,} bytes in this store",
                    f"it holds {used:,} bytes and this request would write up to {need:,}; "
                    "'phasemap cache rm' and 'phasemap cache gc' free space")

    # --- maintenance ----------------------------------------------------------------------
    def gc(self, grace_seconds: float = 3600.0) -> dict[str, int]:
        """Delete families no request refers to and no live compute holds, expired leases
        and stray temporaries; return counts.

        A compute holds a :class:`Lease` on its families, renewed every
        :data:`LEASE_HEARTBEAT` seconds; ``gc`` keeps every family named by a lease whose
        last heartbeat is less than :data:`LEASE_TTL` old (read from the lease itself, so the
        same on object stores), and re-reads the leases just before deleting each family.
        Temporaries (local disks only) go when their family has no live lease and they are
        older than ``grace_seconds``.
        """
        now = time.time()

        def live_families() -> tuple[set[str], list[str]]:
            live: set[str] = set()
            expired = []
            for lease in self.leases():
                if time.time() - lease["heartbeat"] < LEASE_TTL:
                    live.update(lease["families"])
                else:
                    expired.append(lease["id"])
            return live, expired

        used = {r["family"] for r in self.requests()}
        live, _ = live_families()
        removed = 0
        for key in self.families():
            if key in used or key in live:
                continue
            live, _ = live_families()  # a compute may have started since
            if key in live:
                continue
            self.delete(f"families/{key}", recursive=True)
            removed += 1
        live, expired = live_families()
        for lid in expired:
            self.delete(f"leases/{lid}.json")
        temps = 0
        if self.local:
            for dirpath, _, files in os.walk(self.root):
                rel = os.path.relpath(dirpath, self.root).split(os.sep)
                if len(rel) >= 2 and rel[0] == "families" and rel[1] in live:
                    continue
                for f in files:
                    path = os.path.join(dirpath, f)
                    with contextlib.suppress(FileNotFoundError):
                        if (f.startswith(".tmp-") or f.endswith(".partial")) and \
                                now - os.path.getmtime(path) >= grace_seconds:
                            os.unlink(path)
                            temps += 1
        return {"families_removed": removed, "temporaries_removed": temps,
                "leases_removed": len(expired)}

    def verify(self, families: Iterable[str] | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[ShardReport]:
        """Check the store: dataset records readable; each family's group and array metadata
        as its definition makes them; no stray file among its commit records; every
        committed shard present, of its recorded size, with matching checksums; and every
        recorded dataset with all its shards committed."""
        bad: list[ShardReport] = []
        problems: list[str] = []
        records = self.requests(problems=problems)
        bad.extend(ShardReport("", None, "*", p) for p in problems)
        keys = list(families) if families is not None else self.families()
        ok = {}
        for key in keys:
            try:
                ok[key] = fam = self.family_by_key(key)
            except StoreCorrupted as exc:
                bad.append(ShardReport(key, None, exc.variable, exc.problem))
                continue
            bad.extend(fam.verify(progress))
        for record in records:
            found = ok.get(record["family"])
            if found is None:
                if families is None and record["family"] not in keys:
                    bad.append(ShardReport(record["family"], None, "*",
                                           f"family of dataset {record['id']} is missing"))
                continue
            try:
                p = plan(GridSpec.from_dict(record["spec"]), self)
            except (ParameterError, StoreError) as exc:
                bad.append(ShardReport(record["family"], None, "*",
                                       f"dataset {record['id']}: {exc}"[:200]))
                continue
            bad.extend(ShardReport(found.key, shard, "*",
                                   f"not committed (dataset {record['id']})")
                       for shard in sorted(set(p.missing)))
        return bad

    def repair(self, client=None, progress=None) -> list[ShardReport]:
        """Mend everything :meth:`verify` reports; return what was reported.

        Never deletes before the replacement is ready: metadata is rewritten (atomically)
        from the family definition, damaged shards are recomputed into place (each shard
        object replaced atomically, then its record), a stray file among the commit records
        is removed, and a dataset with shards not committed is computed again. Interrupted,
        it leaves the store as consistent as before, with what is left still reported.
        """
        reported: list[ShardReport] = []
        previous: list[ShardReport] = []
        for _ in range(3):  # mended metadata can reveal damage behind it: look again
            fixable = [r for r in self.verify() if r.family]
            if not fixable or fixable == previous:  # nothing (more) that can be mended
                break
            reported.extend(r for r in fixable if r not in reported)
            self._repair_once(fixable, client, progress)
            previous = fixable
        return reported

    def _repair_once(self, bad: list[ShardReport], client, progress) -> None:
        by_family: dict[str, set[tuple[int, ...]]] = {}
        datasets: set[str] = set()
        for r in bad:
            if r.problem.startswith("not committed (dataset "):
                datasets.add(r.problem.split("dataset ", 1)[1].rstrip(")"))
            elif r.shard is None and r.problem.startswith("stray file commits/"):
                name = r.problem.removeprefix("stray file commits/")
                self.delete(f"families/{r.family}/commits/{name}", recursive=True)
            elif r.shard is None:
                self._repair_metadata(r.family)
            else:
                by_family.setdefault(r.family, set()).add(r.shard)
        for key, shards in by_family.items():
            fam = self.family_by_key(key)
            slot_values = fam.slot_values(sorted(shards))
            known = [s for s in sorted(shards)  # a shard whose value is lost stays reported
                     if all(not ax.explicit or s[i] in slot_values[ax.name]
                            for i, ax in enumerate(fam.layout.axes))]
            with Lease(self, [key]):
                run_shards(self, fam, known, slot_values, client=client, progress=progress)
        for rid in sorted(datasets):
            compute(GridSpec.from_dict(self.request(rid)["spec"]), self, client=client)

    def _repair_metadata(self, key: str) -> None:
        """Rewrite family ``key``'s group and array metadata from its definition (from the
        group, else from a dataset record of that family)."""
        try:
            layout = self.family_by_key(key).layout
        except StoreCorrupted:
            layouts = [FamilyLayout.from_spec(GridSpec.from_dict(r["spec"]))
                       for r in self.requests() if r["family"] == key]
            layouts = [lay for lay in layouts if lay.key == key]
            if not layouts:
                return  # nothing defines it: no dataset needs it, gc removes it
            layout = layouts[0]
        Family(self, layout).write_metadata()


class Family:
    """One family's Zarr group in a store."""

    def __init__(self, store: Store, layout: FamilyLayout):
        self.store = store
        self.layout = layout
        self.key = layout.key
        self.prefix = f"families/{self.key}"
        self._encoders: dict[str, _ShardEncoder | None] = {}
        self._records: Any = None  # a _RecordFile, None, or _NO_LINKS
        self._axes_cache: dict[tuple[int, int, bool], tuple[np.ndarray, np.ndarray]] = {}
        self._records_lock = threading.Lock()

    def create(self) -> None:
        """Create the group and its arrays if missing (safe to race with other processes).

        Metadata that exists but is damaged is an error (:class:`StoreCorrupted`): it is
        ``repair``'s to rewrite, never a compute's to write over silently.
        """
        raw = self.store.read_blob(f"{self.prefix}/zarr.json")
        if raw is not None:
            self.store.family_by_key(self.key)  # raises if the group metadata is damaged
            if all(self.store.read_blob(f"{self.prefix}/{v}/zarr.json") is not None
                   for v in self.layout.stored):
                return
        # The group (with the family definition) first: creating an array writes any missing
        # parent group with *empty* attributes, and open_group(mode="a") never updates those.
        family_attrs = self._group_attrs()
        try:
            group = zarr.open_group(self.store.zstore, path=self.prefix, mode="a",
                                    attributes=family_attrs)
        except zarr.errors.ContainsGroupError:  # another process created it just now
            group = zarr.open_group(self.store.zstore, path=self.prefix, mode="r+")
        if "phasemap_family" not in group.attrs:
            group.attrs.update(family_attrs)
        for var in self.layout.stored:
            try:
                zarr.create_array(self.store.zstore, name=f"{self.prefix}/{var}",
                                  **self._array_kwargs(var), overwrite=False)
            except zarr.errors.ContainsArrayError:
                pass

    def _group_attrs(self) -> dict[str, Any]:
        return {"phasemap_family": self.layout.definition(), "phasemap_version": __version__}

    def _array_kwargs(self, var: str) -> dict[str, Any]:
        """Everything that defines stored output ``var``'s Zarr array (one place, used to
        create it and to check and rebuild its metadata)."""
        dtype = OUTPUT_DTYPES[var] if OUTPUT_DTYPES[var].kind == "i" else self.layout.dtype
        fill = -1 if np.dtype(dtype).kind == "i" else np.nan
        attrs = attrs_for(var)
        if "flag_values" in attrs:
            attrs["flag_values"] = [int(x) for x in attrs["flag_values"]]
        return dict(shape=self.layout.shape, shards=self.layout.shard_shape,
                    chunks=self.layout.inner_shape, dtype=dtype, fill_value=fill,
                    compressors=compressors(), dimension_names=self.layout.dims,
                    attributes=attrs, config={"write_empty_chunks": True})

    def expected_metadata(self) -> dict[str, bytes]:
        """The bytes of the group's and every array's ``zarr.json`` as :meth:`create` writes
        them, keyed by store key (made in a scratch store)."""
        with tempfile.TemporaryDirectory(prefix="phasemap-meta-") as tmp:
            scratch = zarr.storage.LocalStore(tmp)
            zarr.open_group(scratch, path="g", mode="w", attributes=self._group_attrs())
            out = {f"{self.prefix}/zarr.json": _read(os.path.join(tmp, "g", "zarr.json"))}
            for var in self.layout.stored:
                zarr.create_array(scratch, name=f"g/{var}", **self._array_kwargs(var))
                out[f"{self.prefix}/{var}/zarr.json"] = _read(
                    os.path.join(tmp, "g", var, "zarr.json"))
        return out

    def write_metadata(self) -> None:
        """Replace the group's and arrays' metadata, atomically, by what the family's
        definition makes (``repair``); shards and records are untouched."""
        for key, data in self.expected_metadata().items():
            self.store.write_blob(key, data)
        _ENCODERS.clear()
        _open_array.cache_clear()

    def check_metadata(self) -> list[ShardReport]:
        """Reports for each array whose metadata is missing, unreadable or not the one the
        family's definition makes (attributes aside, which may differ between versions)."""
        bad = []
        for key, data in self.expected_metadata().items():
            if key == f"{self.prefix}/zarr.json":
                continue  # checked by Store.family_by_key
            var = key.split("/")[-2]
            raw = self.store.read_blob(key)
            if raw is None:
                bad.append(ShardReport(self.key, None, var, "metadata missing"))
                continue
            try:
                have = json.loads(raw)
            except ValueError:
                bad.append(ShardReport(self.key, None, var, "metadata unreadable (not JSON)"))
                continue
            want = json.loads(data)
            if not isinstance(have, dict) or any(have.get(k) != want.get(k) for k in want
                                                 if k != "attributes"):
                bad.append(ShardReport(self.key, None, var,
                                       "metadata differs from the family definition"))
        return bad

    def array(self, var: str):
        return zarr.open_array(self.store.zstore, path=f"{self.prefix}/{var}", mode="r+")

    # commit record ---------------------------------------------------------------------
    def _parse_shard(self, name: str) -> tuple[int, ...] | None:
        """The shard a commit record's name stands for, or ``None`` for a stray name."""
        if not self.layout.axes:
            return () if name == "0" else None
        parts = name.split(".")
        if len(parts) != len(self.layout.axes) or not all(p.isdigit() for p in parts):
            return None
        return tuple(int(p) for p in parts)

    def committed(self) -> set[tuple[int, ...]]:
        """Every shard with a commit record (names that are no shard's are ignored here and
        reported by :meth:`verify`)."""
        names = self.store.list_blobs(f"{self.prefix}/commits")
        return {s for s in map(self._parse_shard, names) if s is not None}

    def stray_commits(self) -> list[str]:
        """Names among the commit records that are no shard's."""
        return [n for n in self.store.list_blobs(f"{self.prefix}/commits")
                if self._parse_shard(n) is None]

    def committed_for(self, window: Window,
                      shards: Iterable[tuple[int, ...]] | None = None) -> set[tuple[int, ...]]:
        """The shards of ``window`` (or just ``shards``) committed *for its values*.

        On a family with explicit axes each shard's record names the exact value of its slot
        on each such axis; a record naming another value (a slot reassigned after its
        registry entry was lost) is not this window's, so the shard counts as missing.
        """
        want = set(window.shards() if shards is None else shards)
        have = want & self.committed()
        explicit = [i for i, ax in enumerate(self.layout.axes) if ax.explicit]
        if not explicit:
            return have
        tables = window.explicit_values()
        ok = set()
        for shard in have:
            record = self.commit_record(shard) or {}
            values = record.get("values")
            if isinstance(values, dict) and all(
                    _same_value(values.get(self.layout.axes[i].name),
                                tables[self.layout.axes[i].name].get(shard[i]))
                    for i in explicit):
                ok.add(shard)
        return ok
    def commit_record(self, shard: tuple[int, ...]) -> dict[str, Any] | None:
        """The record of ``shard``, or ``None`` if it is not committed.

        A record file holds one JSON object per line (one, or the records of a whole
        :class:`_RecordFile`); the last line naming ``shard`` is its record.
        """
        raw = self.store.read_blob(f"{self.prefix}/commits/{shard_name(shard)}")
        if raw is None:
            return None
        for line in reversed(raw.splitlines()):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and tuple(record.get("shard", ())) == shard:
                    return record
        return {"shard": list(shard)}  # committed (the name exists), record unreadable

    def commit(self, shard: tuple[int, ...], record: dict[str, Any]) -> None:
        """Publish ``record``: from now on readers and the planner see ``shard`` as present.

        On a local disk the record is appended to this process's record file and the shard's
        name is a hard link to that file (:class:`_RecordFile`); elsewhere it is an object
        of its own, written in one PUT.
        """
        line = json.dumps(record).encode()
        name = shard_name(shard)
        with self._records_lock:
            for _ in range(2):
                if not self.store.local or self._records is _NO_LINKS:
                    break
                if self._records is None or not self._records.usable():
                    if self._records is not None:
                        self._records.close()
                    self._records = _RecordFile(self.store._path(f"{self.prefix}/commits"))
                try:
                    if self._records.commit(line, name):
                        return
                except FileNotFoundError:  # its hidden name is gone (gc of an idle writer)
                    self._records.close()
                    self._records = None
                    continue
                self._records.close()  # no hard links here: a file per record from now on
                self._records = _NO_LINKS
        self.store.write_blob(f"{self.prefix}/commits/{name}", line)

    def close(self) -> None:
        """Close the record file of the shards committed so far (they stay committed)."""
        with self._records_lock:
            if isinstance(self._records, _RecordFile):
                self._records.close()
                self._records = None

    def absent(self, shards: Iterable[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """The ``shards`` some stored object of which is missing."""
        return [s for s in shards
                if any(self.store.size_of(self.shard_key(v, s)) is None
                       for v in self.layout.stored)]

    def uncommit(self, shard: tuple[int, ...]) -> None:
        self.store.delete(f"{self.prefix}/commits/{shard_name(shard)}")
        for var in self.layout.stored:
            self.store.delete(self.shard_key(var, shard))

    def shard_key(self, var: str, shard: tuple[int, ...]) -> str:
        return f"{self.prefix}/{var}/c/" + "/".join(str(i) for i in shard)

    # explicit-axis slots -----------------------------------------------------------------
    #: Slots probed after a value's hash slot before giving up (a family would need
    #: billions of values for a chain this long).
    MAX_PROBES = 1024

    def slots_for(self, spec: GridSpec, register: bool = False
                  ) -> dict[str, dict[float, int]]:
        """Per explicit axis of ``spec``, the slot of each of its values.

        A value's slot is found by probing from :func:`~.layout.slot_of` and comparing each
        registered value with it bit for bit, never by the hash alone. With ``register``, a
        value with no slot takes the first free one (created only if absent, so two
        processes never take the same slot); without it such a value is left out.
        """
        out: dict[str, dict[float, int]] = {}
        for ax in self.layout.axes:
            if not ax.explicit:
                continue
            table = out[ax.name] = {}
            for v in spec.axis_values(ax.name):
                value = float(v) + 0.0
                slot = self._slot(ax.name, value, register)
                if slot != UNREGISTERED:
                    table[value] = slot
        return out

    def _slot(self, axis: str, value: float, register: bool) -> int:
        n = slot_of(value)
        for _ in range(self.MAX_PROBES):
            key = f"{self.prefix}/slots/{axis}/{n}"
            raw = self.store.read_blob(key)
            if raw is None:
                if not register:
                    return UNREGISTERED
                if self.store.create_blob(key, repr(value).encode()):
                    return n
                raw = self.store.read_blob(key)  # another process took it just now
            if raw is not None and _same_value(raw.decode(errors="replace"), value):
                return n
            n = (n + 1) % SLOT_LENGTH
        raise StoreError(f"no free slot for {value!r} on axis {axis!r} of family {self.key}")

    def slot_values(self, shards: Iterable[tuple[int, ...]] | None = None
                    ) -> dict[str, dict[int, float]]:
        """Slot -> value on each explicit axis, from the registry; for ``shards`` whose
        slots the registry lacks, from their commit records."""
        out: dict[str, dict[int, float]] = {}
        for ax in self.layout.axes:
            if ax.explicit:
                prefix = f"{self.prefix}/slots/{ax.name}"
                table = out[ax.name] = {}
                for n in self.store.list_blobs(prefix):
                    raw = self.store.read_blob(f"{prefix}/{n}")
                    with contextlib.suppress(ValueError, TypeError):
                        table[int(n)] = float(raw or b"")
        for shard in shards or ():
            values = (self.commit_record(shard) or {}).get("values") or {}
            for i, ax in enumerate(self.layout.axes):
                if ax.explicit and shard[i] not in out[ax.name] and ax.name in values:
                    with contextlib.suppress(ValueError, TypeError):
                        out[ax.name][shard[i]] = float(values[ax.name])
        return out
    # computing -------------------------------------------------------------------------
    def compute_shard(self, shard: tuple[int, ...],
                      slot_values: dict[str, dict[int, float]]) -> int:
        """Evaluate, write and commit one whole shard; return the number of points.

        Where the store's own encoder applies (every array this module creates), the shard
        is computed straight in inner-chunk order, shape ``grid + inner`` (each inner chunk
        one contiguous row), so the encoder compresses it as it stands: no reordering copy.
        """
        model = get_model(self.layout.model)
        full = self.layout.shard_shape
        encoders = {var: self._encoder(var) for var in self.layout.stored}
        fast = bool(shard) and all(e is not None and e.shard_shape == full
                                   and e.inner == self.layout.inner_shape
                                   for e in encoders.values())
        inner = self.layout.inner_shape
        grid = tuple(s // i for s, i in zip(full, inner, strict=True))
        shape = grid + inner if fast else full
        args: dict[str, Any] = dict(self.layout.params)
        checked: dict[str, np.ndarray] = {}
        for i, (ax, idx) in enumerate(zip(self.layout.axes, shard, strict=True)):
            args[ax.name], checked[ax.name] = self._axis_values(i, idx, slot_values, fast)
        with np.errstate(all="ignore"):  # points outside the domain are masked just below
            outs = _shard_outputs(model, args, shape, self.layout)
        invalid = _invalid_points(model, args, shape, checked)
        sizes = {}
        region = tuple(slice(i * ax.shard, (i + 1) * ax.shard)
                       for ax, i in zip(self.layout.axes, shard, strict=True))
        for var in self.layout.stored:
            data = outs[var]
            if invalid is not None:
                data[invalid] = -1 if data.dtype.kind == "i" else np.nan
            if fast:
                # The shard's bytes, exactly as Zarr's sharding codec lays them out, written
                # in one atomic put (Zarr's own write path costs ~80 ms of asyncio per shard).
                blob = encoders[var].encode_chunks(data.reshape(math.prod(grid), -1))
                self.store.write_blob(self.shard_key(var, shard), blob)
                sizes[var] = len(blob)
            else:
                self.array(var)[region] = data
                sizes[var] = self.store.size_of(self.shard_key(var, shard))
        record = {"shard": list(shard), "points": math.prod(full), "sizes": sizes,
                  "time": _utcnow(), "phasemap_version": __version__}
        if any(ax.explicit for ax in self.layout.axes):  # what the planner checks on reuse
            record["values"] = {ax.name: repr(float(slot_values[ax.name][idx]))
                                for ax, idx in zip(self.layout.axes, shard, strict=True)
                                if ax.explicit}
        self.commit(shard, record)
        return math.prod(full)

    def _axis_values(self, i: int, idx: int, slot_values: dict[str, dict[int, float]],
                     fast: bool) -> tuple[np.ndarray, np.ndarray]:
        """Axis ``i``'s coordinates in shard index ``idx``, shaped to broadcast over the shard
        (``grid + inner`` when ``fast``), and their parameter-range violations; cached, as
        every shard along the other axes shares them (a slot's value never changes)."""
        key = (i, idx, fast)
        hit = self._axes_cache.get(key)
        if hit is None:
            ax = self.layout.axes[i]
            ndim = len(self.layout.axes)
            shape = [1] * (2 * ndim if fast else ndim)
            if fast:  # axis i is split into (grid[i], inner[i]) at positions i and ndim + i
                shape[i], shape[ndim + i] = ax.shard // ax.inner, ax.inner
            else:
                shape[i] = -1
            values = ax.shard_values(idx, slot_values.get(ax.name)).reshape(shape)
            values.flags.writeable = False
            param = get_model(self.layout.model).parameter(ax.name)
            hit = self._axes_cache[key] = (values, param.violates(values))
        return hit

    def _encoder(self, var: str) -> _ShardEncoder | None:
        if var not in self._encoders:  # the array's metadata, read once per Family
            self._encoders[var] = _shard_encoder(self.store, f"{self.prefix}/{var}")
        return self._encoders[var]

    # reading ---------------------------------------------------------------------------
    def open_window(self, window: Window, spec: GridSpec) -> xr.Dataset:
        """Lazy dataset of ``window``: stored outputs read shard by shard, the rest derived."""
        model = get_model(self.layout.model)
        dims = self.layout.dims
        chunks = []
        for ax, side, start, n in zip(self.layout.axes, _read_sides(self.layout), window.starts,
                                      window.sizes, strict=True):
            if ax.explicit:
                chunks.append((1,) * n)
            else:
                first = min(n, side - start % side)
                rest = n - first
                chunks.append((first,) + (side,) * (rest // side)
                              + ((rest % side,) if rest % side else ()))
        arrays = {}
        for var in self.layout.stored:
            reader = _WindowReader(self.store.url, self.prefix, var, window)
            arrays[var] = da.from_array(reader, chunks=tuple(chunks), asarray=False,
                                        name=f"phasemap-{self.key}-{var}-{spec_id(spec)}",
                                        fancy=False,
                                        meta=np.empty((0,) * len(dims), reader.dtype))
        if model.derive is not None and set(model.outputs) - set(self.layout.stored):
            arrays.update(_derive_arrays(arrays, model, self.layout, window))
        coords: dict[str, Any] = {name: window.coords[name] for name in dims}
        coords.update(self.layout.params)  # fixed parameters as scalar coordinates
        ds = xr.Dataset({o: (dims, arrays[o]) for o in model.outputs if o in arrays},
                        coords=coords)
        return apply_attrs(ds, {"model": model.name, "model_version": model.version,
                                "phasemap_version": __version__,
                                "references": "Y. Zhang and X. Lü, Phys. Rev. E 111, 044112 "
                                              "(2025), arXiv:2408.07882",
                                "spec": json.dumps(spec.to_dict()),
                                "dataset_id": spec_id(spec), "store": self.store.url,
                                "family": self.key})

    def read_point(self, window: Window, index: tuple[int, ...]) -> dict[str, Any]:
        """Every output at one window index, read and derived without dask (~1 ms)."""
        model = get_model(self.layout.model)
        key = tuple(slice(i, i + 1) for i in index)
        values: dict[str, Any] = {
            var: np.asarray(_WindowReader(self.store.url, self.prefix, var, window)[key])
            .reshape(()) for var in self.layout.stored}
        params = dict(self.layout.params)
        params.update({name: np.float64(window.coords[name][i])
                       for name, i in zip(self.layout.dims, index, strict=True)})
        if model.derive is not None:
            missing = [o for o in model.outputs if o not in values]
            if missing:
                derived = model.derive({k: np.asarray(v, dtype=np.float64)
                                        for k, v in values.items()},
                                       **{n: np.asarray(params[n], dtype=np.float64)
                                          for n in model.param_names})
                values.update({o: np.asarray(derived[o]) for o in missing})
        return {"coords": params, "values": {o: values[o].item() for o in model.outputs}}

    def verify(self, progress=None) -> list[ShardReport]:
        """Metadata (:meth:`check_metadata`), stray names among the commit records, and
        each committed shard: every object present, of its recorded size, decoding with
        matching checksums (only for arrays whose metadata is sound)."""
        bad = self.check_metadata()
        damaged = {r.variable for r in bad}
        bad.extend(ShardReport(self.key, None, "*", f"stray file commits/{name}")
                   for name in self.stray_commits())
        shards = sorted(self.committed())
        for n, shard in enumerate(shards):
            record = self.commit_record(shard) or {}
            for var in self.layout.stored:
                if var in damaged:
                    continue
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


def _same_value(text: Any, value: float | None) -> bool:
    """Whether ``text`` (a stored ``repr``) is ``value``, bit for bit."""
    if text is None or value is None:
        return False
    try:
        stored = float(text)
    except (TypeError, ValueError):
        return False
    return struct.pack("<d", stored + 0.0) == struct.pack("<d", float(value) + 0.0)


def _invalid_points(model, args, shape, checked: dict[str, np.ndarray] | None = None
                    ) -> np.ndarray | None:
    """Mask of shard points outside the model's domain (they are stored as NaN).

    ``checked`` holds parameters' range violations already known (per axis, cached).
    """
    # Checked on the per-axis arrays first: only a shard that has a bad point pays for a
    # full-shape mask.
    checked = checked or {}
    masks = [checked[p.name] if p.name in checked
             else p.violates(np.asarray(args[p.name], dtype=float))
             for p in model.parameters if p.name in args]
    for con in model.constraints:
        vals = [np.asarray(args.get(n, model.defaults()[n]), dtype=float) for n in con.params]
        masks.append(np.asarray(con.check(*vals)))
    masks = [m for m in masks if m.any()]
    if not masks:
        return None
    bad = np.zeros(shape, dtype=bool)
    for m in masks:
        bad |= np.broadcast_to(m, shape)
    return bad


def _shard_outputs(model, args: dict[str, Any], full: tuple[int, ...],
                   layout: FamilyLayout) -> dict[str, np.ndarray]:
    """The stored outputs of one shard as writable C-contiguous arrays of shape ``full``."""
    dtypes = {var: OUTPUT_DTYPES[var] if OUTPUT_DTYPES[var].kind == "i" else
              np.dtype(layout.dtype) for var in layout.stored}
    if model.store_kernel is not None:
        params = model.defaults() | args
        params = {k: np.asarray(params[k], dtype=np.float64) for k in model.param_names}
        # float64 outputs are computed straight into the arrays that get written
        out = {var: np.empty(full, dtype=np.float64) for var, dt in dtypes.items()
               if dt == np.float64}
        outs = model.store_kernel(out=out, **params)
    else:
        outs = model(**args)
    result = {}
    for var, dt in dtypes.items():
        data = outs[var]
        if data.shape != full or data.dtype != dt or not data.flags.c_contiguous \
                or not data.flags.writeable:
            data = np.broadcast_to(data, full).astype(dt)
        result[var] = data
    return result


class _RecordFile:
    """Commit records appended to one hidden file, each shard's name a hard link to it.

    Creating a small file per commit record costs ~0.7 ms on ext4 (inode allocation, the
    directory lock), as much as writing a fifth of the shard itself; appending a line and
    linking a name costs ~0.02 ms (docs/performance.md). The line is written before the
    link, so a reader who finds ``commits/<shard>`` finds its record in it; a link is atomic,
    so a kill leaves a shard committed or not, never half. After :data:`RECORDS` records, or
    when the writer closes it, the hidden name is removed; the records live on under the
    shards' names (``cache gc`` removes the hidden file of a killed writer with the other
    temporaries).
    """

    #: Records per file: few file creations, and a record read is one small file.
    RECORDS = 64

    def __init__(self, folder: str):
        self.folder = folder
        self.pid = os.getpid()
        self.count = 0
        self.path = os.path.join(folder, f".tmp-records-{uuid.uuid4().hex}")
        os.makedirs(folder, exist_ok=True)  # once per RECORDS commits
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        # a writer dropped without close() (an exception, a dropped Family) still tidies up
        self._finalizer = weakref.finalize(self, _RecordFile._release, self.fd, self.path)

    def usable(self) -> bool:
        return self.fd >= 0 and self.count < self.RECORDS and os.getpid() == self.pid

    def commit(self, line: bytes, name: str) -> bool:
        """Append ``line``, then link ``name`` to this file; ``False`` if links are refused."""
        os.write(self.fd, line + b"\n")
        self.count += 1
        target = os.path.join(self.folder, name)
        try:
            os.link(self.path, target)
        except FileExistsError:  # committed before (a duplicate computation): replace it
            tmp = os.path.join(self.folder, f".tmp-link-{uuid.uuid4().hex}")
            os.link(self.path, tmp)
            os.replace(tmp, target)
        except FileNotFoundError:
            raise
        except OSError:  # a filesystem without hard links
            return False
        return True

    def close(self) -> None:
        self._finalizer()
        self.fd = -1

    @staticmethod
    def _release(fd: int, path: str) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)


#: Family._records where the filesystem refuses hard links: one file per record.
_NO_LINKS: Any = object()


class _ShardEncoder:
    """Encodes a whole shard exactly as Zarr's ``sharding_indexed`` codec stores it.

    Inner chunks in C order, each through the array's own codec chain (``bytes`` little
    endian, then ``blosc``/``zstd``/``gzip`` and ``crc32c``), then the index of
    ``(offset, nbytes)`` pairs through ``bytes`` + ``crc32c`` at the end. Built from the
    array's metadata; :func:`_shard_encoder` returns ``None`` for anything else, and the caller
    falls back to Zarr's own (slower, equivalent) write.
    """

    def __init__(self, meta: dict[str, Any]):
        (sharding,) = meta["codecs"]
        if sharding["name"] != "sharding_indexed":
            raise ValueError(sharding["name"])
        conf = sharding["configuration"]
        if conf.get("index_location", "end") != "end":
            raise ValueError("index at start")
        enc = meta.get("chunk_key_encoding", {})
        if enc.get("name", "default") != "default" or \
                enc.get("configuration", {}).get("separator", "/") != "/":
            raise ValueError("chunk key encoding")
        self.dtype = np.dtype(meta["data_type"]).newbyteorder("<")
        self.shard_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
        self.inner = tuple(conf["chunk_shape"])
        if any(s % i for s, i in zip(self.shard_shape, self.inner, strict=True)):
            raise ValueError("inner chunks do not tile the shard")
        self.codecs, decoders = self._chain(conf["codecs"])
        self.decoders = decoders[::-1]
        grid = tuple(s // i for s, i in zip(self.shard_shape, self.inner, strict=True))
        try:
            from zarr.core.indexing import morton_order_iter

            self.order = [int(np.ravel_multi_index(c, grid)) for c in morton_order_iter(grid)]
        except ImportError:  # any order is valid: readers follow the index
            self.order = list(range(math.prod(grid)))
        if self._chain(conf["index_codecs"])[0] != [self._crc32c]:
            raise ValueError("index codecs")

    def _chain(self, codecs: list[dict[str, Any]]
               ) -> tuple[list[Callable[[bytes], bytes]], list[Callable[[bytes], bytes]]]:
        import numcodecs

        first, *rest = codecs
        if first["name"] != "bytes" or \
                first.get("configuration", {}).get("endian", "little") != "little":
            raise ValueError("not little-endian bytes")
        chain: list[Callable[[bytes], bytes]] = []
        decoders: list[Callable[[bytes], bytes]] = []
        for c in rest:
            name, conf = c["name"], c.get("configuration", {})
            codec: Any
            if name == "crc32c":
                chain.append(self._crc32c)
                decoders.append(self._check_crc32c)
                continue
            elif name == "zstd":
                codec = numcodecs.Zstd(level=conf.get("level", 0),
                                       checksum=conf.get("checksum", False))
            elif name == "gzip":
                codec = numcodecs.GZip(level=conf.get("level", 5))
            elif name == "blosc":
                shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[conf["shuffle"]]
                codec = numcodecs.Blosc(cname=conf["cname"], clevel=conf["clevel"],
                                        shuffle=shuffle, blocksize=conf.get("blocksize", 0),
                                        typesize=conf["typesize"])
            else:
                raise ValueError(name)
            chain.append(codec.encode)
            decoders.append(codec.decode)
        return chain, decoders

    @staticmethod
    def _check_crc32c(data) -> bytes:
        import google_crc32c

        data = bytes(data)
        if int(google_crc32c.value(data[:-4])) != int.from_bytes(data[-4:], "little"):
            raise ValueError("CRC32C checksum mismatch: the shard is corrupt "
                             "(phasemap cache verify / repair)")
        return data[:-4]

    def read(self, root: str, path: str, sel: tuple[slice, ...], fill) -> np.ndarray:
        """``array[sel]`` (array indices, plain slices) read straight from local shard files:
        the index, then only the inner chunks ``sel`` touches, each checksum-verified.

        Every shard ``sel`` touches must be committed (the caller's window is): a missing
        or undecodable shard raises :class:`StoreCorrupted`, never reads as fill values.
        """
        family, var = path.split("/")[-2:]
        out = np.full([s.stop - s.start for s in sel], fill, dtype=self.dtype.newbyteorder("="))
        grid = tuple(s // i for s, i in zip(self.shard_shape, self.inner, strict=True))
        n = math.prod(grid)
        shard_ranges = [range(s.start // sh, (s.stop - 1) // sh + 1)
                        for s, sh in zip(sel, self.shard_shape, strict=True)]
        for shard in itertools.product(*shard_ranges):
            fname = os.path.join(root, path, "c", *map(str, shard))
            try:
                fd = os.open(fname, os.O_RDONLY)
            except FileNotFoundError:
                raise StoreCorrupted(family, shard, var, "missing") from None
            try:
                size = os.fstat(fd).st_size
                if size < 16 * n + 4:
                    raise ValueError(f"truncated to {size} bytes")
                index = np.frombuffer(self._check_crc32c(
                    os.pread(fd, 16 * n + 4, size - 16 * n - 4)), dtype="<u8").reshape(*grid, 2)
                lo = [max(s.start, k * sh) for s, k, sh in zip(sel, shard, self.shard_shape,
                                                                strict=True)]
                hi = [min(s.stop, (k + 1) * sh) for s, k, sh in zip(sel, shard, self.shard_shape,
                                                                    strict=True)]
                chunk_ranges = [range((a - k * sh) // i, (b - 1 - k * sh) // i + 1)
                                for a, b, k, sh, i in zip(lo, hi, shard, self.shard_shape,
                                                          self.inner, strict=True)]
                for chunk in itertools.product(*chunk_ranges):
                    offset, nbytes = (int(x) for x in index[chunk])
                    if offset == 2**64 - 1:
                        continue
                    data: Any = os.pread(fd, nbytes, offset)
                    for dec in self.decoders:
                        data = dec(data)
                    block = np.frombuffer(data, dtype=self.dtype).reshape(self.inner)
                    origin = [k * sh + c * i for k, sh, c, i in zip(shard, self.shard_shape,
                                                                     chunk, self.inner,
                                                                     strict=True)]
                    src, dst = [], []
                    for s, o, i in zip(sel, origin, self.inner, strict=True):
                        a, b = max(s.start, o), min(s.stop, o + i)
                        src.append(slice(a - o, b - o))
                        dst.append(slice(a - s.start, b - s.start))
                    out[tuple(dst)] = block[tuple(src)]
            except (ValueError, OSError, RuntimeError, TypeError) as exc:
                raise StoreCorrupted(family, shard, var,
                                     f"unreadable: {_no_paths(str(exc))}") from None
            finally:
                os.close(fd)
        return out

    @staticmethod
    def _crc32c(data) -> bytes:
        import google_crc32c

        data = bytes(data)
        return data + int(google_crc32c.value(data)).to_bytes(4, "little")

    def encode(self, data: np.ndarray) -> bytes:
        """The shard file of ``data``, a whole shard in C order."""
        grid = tuple(s // i for s, i in zip(self.shard_shape, self.inner, strict=True))
        # (g0, i0, g1, i1, ...) -> (g0, g1, ..., i0, i1, ...): each inner chunk contiguous
        blocks = np.asarray(data).reshape(
            [n for pair in zip(grid, self.inner, strict=True) for n in pair])
        nd = len(grid)
        blocks = np.ascontiguousarray(blocks.transpose(list(range(0, 2 * nd, 2))
                                                       + list(range(1, 2 * nd, 2))))
        return self.encode_chunks(blocks.reshape(math.prod(grid), -1))

    def encode_chunks(self, blocks: np.ndarray) -> bytes:
        """The shard file of ``blocks``: row ``k`` is inner chunk ``k`` (C order over the
        chunk grid), its points in C order."""
        blocks = np.asarray(blocks, dtype=self.dtype)
        parts, index, offset = [], np.empty((len(blocks), 2), dtype="<u8"), 0
        for k in self.order:  # Zarr's (Morton) order, so the bytes are the ones Zarr writes
            block = blocks[k]
            chunk: Any = block
            for codec in self.codecs:
                chunk = codec(chunk)
            chunk = bytes(chunk)
            parts.append(chunk)
            index[k] = (offset, len(chunk))
            offset += len(chunk)
        parts.append(self._crc32c(index.tobytes()))
        return b"".join(parts)


def _no_paths(text: str) -> str:
    """``text`` with anything that looks like a filesystem path or URL cut out."""
    import re

    return re.sub(r"(\w+://)?/\S+", "<path>", text)[:200]


_ENCODERS: dict[bytes, _ShardEncoder | None] = {}


def _shard_encoder(store: Store, path: str) -> _ShardEncoder | None:
    """The fast encoder for the array at ``path`` (cached by its metadata), or ``None``."""
    raw = store.read_blob(f"{path}/zarr.json")
    family, var = path.split("/")[-2:]
    if raw is None:
        raise StoreCorrupted(family, None, var, "metadata missing")
    if raw not in _ENCODERS:
        try:
            meta = json.loads(raw)
        except ValueError:
            raise StoreCorrupted(family, None, var, "metadata unreadable (not JSON)") from None
        try:
            _ENCODERS[raw] = _ShardEncoder(meta)
        except (ValueError, KeyError, TypeError, ImportError):
            _ENCODERS[raw] = None  # a layout this encoder does not handle: Zarr's own path
    return _ENCODERS[raw]


#: Points per dask chunk when reading (a power-of-two part of a shard, whole inner chunks):
#: small enough that a point query decodes and derives little, large enough that a 1e6-point
#: slice is a few dozen tasks (see docs/performance.md).
READ_CHUNK_POINTS = 2**17


def _read_sides(layout: FamilyLayout) -> list[int]:
    """Per axis, the side of a dask chunk on read: the shard's, halved along the longest
    lattice axis (never below its inner chunk) until a chunk holds READ_CHUNK_POINTS."""
    sides = [ax.shard for ax in layout.axes]
    while math.prod(sides) > READ_CHUNK_POINTS:
        cands = [i for i, ax in enumerate(layout.axes)
                 if not ax.explicit and sides[i] > ax.inner and sides[i] % 2 == 0]
        if not cands:
            break
        i = max(cands, key=lambda k: sides[k])
        sides[i] //= 2
    return sides


def _derive_arrays(arrays: dict[str, da.Array], model, layout: FamilyLayout,
                   window: Window) -> dict[str, da.Array]:
    """Dask arrays of the outputs ``model.derive`` computes from the stored ones.

    One task per chunk runs ``derive`` (every derived output at once) on the chunk's stored
    values and coordinates; one cheap task per output picks its array out. Names are fixed
    by the stored arrays' names, so nothing is tokenized (opening stays a few ms).
    """
    import operator

    stored = tuple(layout.stored)
    derived = [o for o in model.outputs if o not in stored]
    dims = layout.dims
    nd = len(dims)
    fixed = model.defaults() | dict(layout.params)
    axes = {d: np.asarray(window.coords[d], dtype=np.float64) for d in dims}
    dtypes = [OUTPUT_DTYPES[o] if OUTPUT_DTYPES[o].kind == "i" else np.dtype(layout.dtype)
              for o in derived]

    def block(*values):
        params = {k: np.float64(v) for k, v in fixed.items() if k in model.param_names}
        for i, (d, c) in enumerate(zip(dims, values[len(stored):], strict=True)):
            shape = [1] * nd
            shape[i] = -1
            params[d] = c.reshape(shape)
        st = {k: np.asarray(v, dtype=np.float64)
              for k, v in zip(stored, values[:len(stored)], strict=True)}
        with np.errstate(all="ignore"):
            out = model.derive(st, **params)
        return tuple(np.broadcast_to(out[o], st[stored[0]].shape).astype(dt, copy=False)
                     for o, dt in zip(derived, dtypes, strict=True))

    first = arrays[stored[0]]
    base, index = first.name, tuple(range(nd))
    # blockwise with fixed names: map_blocks would tokenize and inspect signatures (~10 ms)
    args: list[Any] = []
    for v in stored:
        args += [arrays[v], index]
    for i, d in enumerate(dims):
        args += [da.from_array(axes[d], chunks=(first.chunks[i],), name=f"{base}-coord-{d}"),
                 (i,)]
    leaf = da.blockwise(block, index, *args, name=f"{base}-derive", dtype=np.float64,
                        meta=np.empty((0,) * nd), concatenate=True)
    return {o: da.blockwise(operator.getitem, index, leaf, index, k, None,
                            name=f"{base}-derive-{o}", dtype=dt, meta=np.empty((0,) * nd, dt))
            for k, (o, dt) in enumerate(zip(derived, dtypes, strict=True))}


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
        # Local stores are read by the shard decoder (a pread of the index and of each inner
        # chunk needed) instead of Zarr's asyncio pipeline: ~10x less per read.
        store = Store(url)
        self.root = store.root
        self.shard_shape = window.layout.shard_shape
        self.fast = _shard_encoder(store, self.path)  # raises if the metadata is damaged
        if not store.local:
            self.fast = None
        if self.fast is not None and (self.fast.dtype.newbyteorder("=") != self.dtype
                                      or len(self.fast.shard_shape) != self.ndim
                                      or not self.ndim):
            self.fast = None
        self.fill = -1 if self.dtype.kind == "i" else np.nan

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
        if self.fast is not None and all(isinstance(s, slice) for s in sel):
            return self.fast.read(self.root, self.path, tuple(sel), self.fill)
        return self._read_zarr(tuple(sel))

    def _read_zarr(self, sel: tuple) -> np.ndarray:
        """Read through Zarr, after checking that every shard ``sel`` touches exists (Zarr
        reads a missing shard as fill values; here it is committed, so it is damage)."""
        family, var = self.path.split("/")[-2:]
        ranges = [range(s.start // sh, (s.stop - 1) // sh + 1) if isinstance(s, slice)
                  else sorted({int(i) // sh for i in s})
                  for s, sh in zip(sel, self.shard_shape, strict=True)]
        store = Store(self.url)
        shards = list(itertools.product(*ranges))
        for shard in shards:
            if store.size_of(f"{self.path}/c/" + "/".join(map(str, shard))) is None:
                raise StoreCorrupted(family, tuple(shard), var, "missing")
        arr = _open_array(self.url, self.path)
        try:
            if any(isinstance(s, np.ndarray) for s in sel):
                return arr.oindex[sel]
            return arr[sel]
        except Exception as exc:  # a checksum or decoding failure inside Zarr
            raise StoreCorrupted(family, tuple(shards[0]) if len(shards) == 1 else None, var,
                                 f"unreadable: {type(exc).__name__}: "
                                 f"{_no_paths(str(exc))}") from None


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

    @property
    def files_to_create(self) -> int:
        """Files computing the missing shards creates: an object per stored output and a
        commit record per shard, and a slot per explicit value not registered yet."""
        new_slots = sum(int((np.asarray(sl) == UNREGISTERED).sum())
                        for sl in self.window.slots if sl is not None)
        return len(self.missing) * (len(self.layout.stored) + 1) + new_slots

    @property
    def bytes_to_write(self) -> int:
        """Upper bound of the bytes computing the missing shards writes (uncompressed)."""
        per_shard = sum(np.dtype(OUTPUT_DTYPES[v] if OUTPUT_DTYPES[v].kind == "i"
                                 else self.layout.dtype).itemsize
                        for v in self.layout.stored) * self.layout.shard_points
        return len(self.missing) * (per_shard + 4096)

    def summary(self) -> dict[str, Any]:
        return {"points": self.points, "bytes": self.nbytes, "shards": len(self.needed),
                "shards_missing": len(self.missing), "points_stored": self.points_stored,
                "points_to_compute": self.points_to_compute, "family": self.layout.key,
                "shard_shape": list(self.layout.shard_shape)}


def _shard_of(window: Window, index: tuple[int, ...]) -> tuple[int, ...]:
    """The shard holding window index ``index``."""
    out = []
    for ax, start, slots, i in zip(window.layout.axes, window.starts, window.slots, index,
                                   strict=True):
        out.append(int(slots[i]) if ax.explicit else (start + i) // ax.shard)
    return tuple(out)


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
    """What ``spec`` needs from ``store`` and what is missing; writes nothing.

    Explicit values are looked up by exact value (a value not registered yet is missing on
    every shard it is in) and a committed shard counts only if its record names the same
    values (:meth:`Family.committed_for`).
    """
    layout = FamilyLayout.from_spec(spec)
    fam = Family(store, layout)
    window = Window.from_spec(layout, spec, fam.slots_for(spec))
    needed = window.shards()
    done = fam.committed_for(window, needed)
    missing = [s for s in needed if s not in done]
    return Plan(spec, layout, window, needed, missing)


def _shard_task(url: str, definition: dict, shard: tuple[int, ...],
                slot_values: dict[str, dict[int, float]]) -> int:
    fam = Family(Store(url), FamilyLayout.from_definition(definition))
    try:
        return fam.compute_shard(tuple(shard), slot_values)
    finally:
        fam.close()


def _shards_task(url: str, definition: dict, shards: list[tuple[int, ...]],
                 slot_values: dict[str, dict[int, float]]) -> int:
    """Compute and commit several shards one after the other (each committed on its own)."""
    fam = Family(Store(url), FamilyLayout.from_definition(definition))
    try:
        return sum(fam.compute_shard(tuple(shard), slot_values) for shard in shards)
    finally:
        fam.close()


#: Most shards one dask task computes. A task costs the scheduler a few ms here, against
#: ~20-40 ms of work per shard; batches keep that overhead small (see docs/performance.md).
MAX_SHARDS_PER_TASK = 8
#: Fewest tasks per worker thread, so that the last tasks still balance across threads.
MIN_TASKS_PER_THREAD = 8


def _batches(shards: list[tuple[int, ...]], threads: int) -> list[list[tuple[int, ...]]]:
    per = max(1, min(MAX_SHARDS_PER_TASK, len(shards) // (threads * MIN_TASKS_PER_THREAD)))
    return [shards[i:i + per] for i in range(0, len(shards), per)]


def run_shards(store: Store, fam: Family, shards: list[tuple[int, ...]],
               slot_values: dict[str, dict[int, float]], client=None,
               progress: Callable[[int, int, int], None] | None = None) -> int:
    """Compute and commit ``shards``; return points computed.

    With no ``client``, on dask's threaded scheduler in this process (:func:`_run_local`);
    otherwise as dask tasks on the client's cluster, a few shards per task.
    """
    if not shards:
        return 0
    if client is None:
        return _run_local(fam, list(shards), slot_values, progress)
    definition = fam.layout.definition()
    from distributed import as_completed

    try:
        threads = max(1, sum(client.nthreads().values()))
    except Exception:  # a client that cannot say: assume a small cluster
        threads = 2
    batches = _batches(list(shards), threads)
    futures = client.map(_shards_task, [store.url] * len(batches),
                         [definition] * len(batches), batches,
                         [slot_values] * len(batches), pure=False)
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
               progress: Callable[[int, int, int], None] | None = None) -> int:
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
    graph = {key: (functools.partial(fam.compute_shard, tuple(shard), slot_values),)
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
    store = store if isinstance(store, Store) else Store(store)
    t0 = time.perf_counter()
    p = plan(spec, store)
    reused = p.points_stored
    fam = Family(store, p.layout)
    computed = shards_computed = 0
    rid = spec_id(spec)
    if not p.missing and store.read_blob(f"requests/{rid}.json") is not None:
        if progress:
            progress(len(p.needed), len(p.needed), 0)
    else:
        store.check_limits(p)
        with Lease(store, [fam.key]):  # gc keeps the family while this runs
            lost: list[tuple[int, ...]] = []
            for _ in range(MAX_COMPUTE_ROUNDS):
                fam.create()
                if p.missing or lost:
                    window = Window.from_spec(p.layout, spec, fam.slots_for(spec, register=True))
                    todo = sorted((set(window.shards()) - fam.committed_for(window)) | set(lost))
                    computed += run_shards(store, fam, todo, window.explicit_values(),
                                           client=client, progress=progress)
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
            store.record_request(spec, fam, stats, shards=p.needed)
    ds = fam.open_window(p.window, spec)
    ds.attrs.update({"spec": json.dumps(spec.to_dict()), "dataset_id": rid,
                     "store": store.url, "family": fam.key, "created": _utcnow(),
                     "points_computed": computed, "points_reused": reused})
    if spec.name:
        ds.attrs["title"] = spec.name
    return ds


#: Rounds of computing and confirming a request before :func:`compute` gives up.
MAX_COMPUTE_ROUNDS = 3


class Lease:
    """A compute's claim on families, which :meth:`Store.gc` honours.

    A small object ``leases/<id>.json`` naming the families and the holder's latest
    heartbeat (its clock, epoch seconds), rewritten every :data:`LEASE_HEARTBEAT` seconds by
    a thread of its own while held. ``gc`` keeps every family of a lease whose heartbeat is
    less than :data:`LEASE_TTL` old, so a live compute is safe on a local disk and an object
    store alike, and a killed one's lease simply expires (and ``gc`` removes it). Clocks of
    the machines sharing a store must agree to well within ``LEASE_TTL``.
    """

    def __init__(self, store: Store, families: Iterable[str]):
        self.store = store
        self.families = sorted(set(families))
        self.id = uuid.uuid4().hex
        self.key = f"leases/{self.id}.json"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self, heartbeat: float | None = None) -> None:
        """Publish the lease with ``heartbeat`` (default now)."""
        body = {"families": self.families,
                "heartbeat": time.time() if heartbeat is None else heartbeat,
                "host": socket.gethostname(), "pid": os.getpid()}
        self.store.write_blob(self.key, json.dumps(body).encode())

    def acquire(self) -> Lease:
        self.write()
        self._thread = threading.Thread(target=self._beat, name="phasemap-lease", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(LEASE_HEARTBEAT):
            with contextlib.suppress(OSError):
                self.write()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.store.delete(self.key)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def as_spec(spec: GridSpec | dict | str | os.PathLike) -> GridSpec:
    if isinstance(spec, GridSpec):
        return spec
    if isinstance(spec, dict):
        return GridSpec.from_dict(spec)
    return GridSpec.load(spec)

