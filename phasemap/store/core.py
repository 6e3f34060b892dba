"""The Zarr store as a cache: families of sparse sharded arrays plus a commit record.

This package is the only code in phasemap that touches Zarr. This module is its facade,
:class:`Store` (requests, opening, limits, gc, verify, repair); the rest, one job each:

* :mod:`.layout` -- where every point lives: families, lattices, windows, and both
  chunking rules (shard and inner-chunk sides on write, dask chunk sides on read);
* :mod:`.blobs` -- small objects written atomically, one file mode;
* :mod:`.codec` -- the shard codec (encode, and decode with checksums);
* :mod:`.records` -- commit records and what verify reports;
* :mod:`.family` -- one family: metadata, commits, slots, computing and checking a shard;
* :mod:`.read` -- reading a window lazily, outputs derived on read;
* :mod:`.plan` -- which shards a request needs and which are missing;
* :mod:`.run` -- computing them (threads or a dask cluster) and :func:`compute`;
* :mod:`.leases` -- a running compute's claim that gc honours.

Layout of a store root (a local directory or any fsspec URL)::

    families/<family-key>/zarr.json          group; attrs hold the family definition
    families/<family-key>/<output>/...       one sparse sharded array per stored output
    families/<family-key>/commits/<shard>    commit record of a finished shard (JSON lines)
    families/<family-key>/slots/<axis>/<n>   value of explicit-axis slot n
    requests/<dataset-id>.json               every request served: spec, family, window
    leases/<id>.json                         a running compute's families and heartbeat

Commit protocol: a shard's bytes are written (atomically: temporary file + rename on local
disks, single PUT on object stores), *then* its commit record (on a local disk a hard link
to the writer's record file, see :class:`_RecordFile`). Readers and the planner treat a
shard as present only once its record exists, so a crash at any moment loses only the shards
in flight; recomputing is idempotent because the numbers are deterministic. Each inner chunk
carries a CRC32C checksum (Zarr v3 codec) and each record the byte size of every shard object,
which is what :meth:`Store.verify` checks.

Partial shards (format 3): a record names the boxes of its shard that were computed; a
request computes only its points no box holds and commits the union, under a per-shard lock
(:meth:`Family.compute_shard`); points never computed hold a bit pattern readers refuse. A
dataset record states its request complete, so a cache hit is one read (:meth:`Store._hit`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import xarray as xr

from .._paths import default_store_url
from ..errors import ParameterError, StoreCorrupted, StoreError
from ..grid import GridSpec, grid_index
from .blobs import BlobStore
from .codec import _shard_encoder, compressors
from .family import REPAIR, Family
from .layout import FORMAT_VERSION, FamilyLayout, Window, spec_id
from .leases import LEASE_HEARTBEAT, LEASE_TTL, Lease, holder_gone
from .plan import Plan, _shard_of, as_spec, plan
from .records import ShardReport, _RecordFile, shard_name
from .run import compute, run_shards

__all__ = ["LEASE_HEARTBEAT", "LEASE_TTL", "MAX_FILES_PER_REQUEST", "Family", "Lease", "Plan",
           "ShardReport", "Store", "_RecordFile", "_shard_encoder", "as_spec", "compressors",
           "compute", "default_store_url", "plan", "run_shards", "shard_name", "spec_id"]


#: Most files (shard objects, commit records, slots) one request may create; override with
#: ``Store(max_files=...)`` or ``PHASEMAP_MAX_FILES``.
MAX_FILES_PER_REQUEST = 20_000


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


def _window_digest(layout: FamilyLayout, window: Window) -> str:
    """Digest of where ``window`` lies in its family: the family key, the start and size of
    each axis, and on explicit axes each value's slot and exact value."""
    blob = json.dumps({"family": layout.key, "starts": list(window.starts),
                       "sizes": list(window.sizes),
                       "slots": [None if sl is None else [int(x) for x in sl]
                                 for sl in window.slots],
                       "values": {ax.name: [repr(float(v)) for v in window.coords[ax.name]]
                                  for ax in layout.axes if ax.explicit}},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class Store(BlobStore):
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
        super().__init__(url)
        self.quota_bytes = quota_bytes if quota_bytes is not None else \
            _env_int("PHASEMAP_STORE_QUOTA")
        self.max_files = max_files if max_files is not None else \
            (_env_int("PHASEMAP_MAX_FILES") or MAX_FILES_PER_REQUEST)

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
                       shards: Iterable[tuple[int, ...]] | None = None,
                       window: Window | None = None) -> str:
        """Write the dataset record of ``spec``. With ``window`` (every point of which the
        caller has just confirmed stored), the record states it complete, with a digest of
        where the window lies in ``family`` (:func:`_window_digest`): what lets a later cache
        hit skip the commit records (:meth:`_hit`)."""
        rid = spec_id(spec)
        if shards is not None:  # what a later cache hit must find committed (CLI fast path)
            self.write_blob(f"requests/{rid}.shards",
                            "\n".join(shard_name(s) for s in shards).encode())
        record = {"id": rid, "spec": spec.to_dict(), "family": family.key,
                  "shape": list(spec.shape), "dims": list(spec.dims), **stats}
        if window is not None:
            record["complete"] = {"format": FORMAT_VERSION,
                                  "digest": _window_digest(family.layout, window)}
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

    def _hit(self, spec: GridSpec) -> tuple[Family, Window] | None:
        """The family and window of ``spec`` if its dataset record states it complete for
        the window the family gives it now; ``None`` otherwise (no record, an older record,
        another family, an explicit value whose slot changed since).

        One read of the record, one of each explicit value's slot and one listing of the
        commit records' names, whatever the number of shards: the records are not read.
        What could make the stored values differ from the record's claim is caught on read
        instead: a shard object missing or failing its checksums, or a point the object
        holds as never computed, is :class:`StoreCorrupted` (``_WindowReader``); ``verify``
        checks the records too.
        """
        raw = self.read_blob(f"requests/{spec_id(spec)}.json")
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            complete = record["complete"]
            if complete["format"] != FORMAT_VERSION:
                return None
            layout = FamilyLayout.from_spec(spec)
            if record["family"] != layout.key or \
                    GridSpec.from_dict(record["spec"]) != spec:
                return None
        except (ValueError, KeyError, TypeError):
            return None
        fam = Family(self, layout)
        window = Window.from_spec(layout, spec, fam.slots_for(spec))
        if not window.registered or complete.get("digest") != _window_digest(layout, window):
            return None
        # every shard still has a commit record (one listing, records unread): a shard whose
        # record was removed is not served, as docs/store.md promises
        folder = f"{fam.prefix}/commits"
        try:
            names = set(os.listdir(self._path(folder)) if self.local
                        else self.list_blobs(folder))
        except FileNotFoundError:
            return None
        ranges = [[str(int(i)) for i in r] for r in window.shard_ranges()]
        if not all(".".join(parts) in names for parts in itertools.product(*ranges)) \
                if ranges else "0" not in names:
            return None
        return fam, window

    def _window(self, spec: GridSpec) -> tuple[Family, Window]:
        """The family and the window of ``spec``, explicit values looked up (never
        registered), refusing any shard that is not committed for exactly these values."""
        hit = self._hit(spec)
        if hit is not None:
            return hit
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
        fam = Family(self, layout)
        window = Window.from_spec(layout, spec, fam.slots_for(spec))
        index = []
        for name in layout.dims:
            if name not in at:
                raise ParameterError("at", at, f"a value for every dimension "
                                               f"({', '.join(layout.dims)})")
            index.append(grid_index(name, window.coords[name], float(at[name])))
        shard = tuple(int(sh) for sh in _shard_of(window, tuple(index)))
        if shard not in fam.committed_for(window, [shard]):
            raise StoreError("the shard holding this point is not in the store; "
                             "compute the grid first")
        return fam.read_point(window, tuple(index))

    def slice(self, rid_or_spec: str | GridSpec, x: str, y: str,
              at: dict[str, float] | None = None,
              variables: Iterable[str] | None = None) -> xr.Dataset:
        """A 2-D plane of a stored dataset, read directly (no dask): dimensions ``(y, x)``.

        Parameters
        ----------
        rid_or_spec : str or GridSpec
            The dataset, by id or by spec; it must be stored (nothing is computed).
        x, y : str
            Two dimensions of the dataset.
        at : dict, optional
            A grid value (to 1e-9 relative) for every other dimension.
        variables : iterable of str, optional
            Outputs to return (default every output of the model, labels included).

        Returns
        -------
        xarray.Dataset
            In memory, with the CF attributes and the ``valid`` flag of :meth:`open`. Only
            the inner chunks the plane touches are read and checked; outputs the model
            derives are derived for the plane alone.
        """
        spec = (rid_or_spec if isinstance(rid_or_spec, GridSpec)
                else GridSpec.from_dict(self.request(rid_or_spec)["spec"]))
        fam, window = self._window(spec)
        return fam.read_slice(window, spec, x, y, dict(at or {}), variables)

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
                lease = json.loads(raw or b"")
                out.append({"id": name.removesuffix(".json"),
                            "families": list(lease["families"]),
                            "heartbeat": float(lease["heartbeat"]),
                            "holder_gone": holder_gone(lease.get("host"), lease.get("pid"))})
            except (ValueError, KeyError, TypeError):
                out.append({"id": name.removesuffix(".json"), "families": [],
                            "heartbeat": 0.0, "holder_gone": False, "damaged": True})
        return out

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
        same on object stores) and held by no process of this machine known to be dead, and
        re-reads the leases just before deleting each family.
        Temporaries (local disks only) go when their family has no live lease and they are
        older than ``grace_seconds``.
        """
        now = time.time()

        def live_families() -> tuple[set[str], list[str]]:
            live: set[str] = set()
            expired = []
            for lease in self.leases():
                if time.time() - lease["heartbeat"] < LEASE_TTL and \
                        not lease.get("holder_gone"):
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
                run_shards(self, fam, known, slot_values, client=client, progress=progress,
                           box=REPAIR)
        for rid in sorted(datasets):
            record = self.request(rid)
            if record.pop("complete", None) is not None:  # else the cache hit answers
                self.write_blob(f"requests/{rid}.json", json.dumps(record, indent=1).encode())
            compute(GridSpec.from_dict(record["spec"]), self, client=client)

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
