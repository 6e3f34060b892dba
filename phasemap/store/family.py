"""One family in a store: its Zarr group and arrays, commit records, explicit-axis slots,
computing a shard, and checking it."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from .. import __version__
from .. import accessor as _accessor  # noqa: F401  (datasets carry ds.phasemap)
from ..errors import ParameterError, StoreError
from ..grid import GridSpec
from ..models import get_model
from ..variables import apply_attrs, attrs_for
from .blobs import _read
from .codec import _ENCODERS, _shard_encoder, _ShardEncoder, compressors
from .layout import (
    SLOT_LENGTH,
    UNREGISTERED,
    Box,
    FamilyLayout,
    Window,
    _read_sides,
    box_size,
    boxes_merge,
    boxes_missing,
    is_not_computed,
    not_computed,
    slot_of,
    span_box,
    spec_id,
)
from .read import _derive_arrays, _open_array, _WindowReader
from .records import _NO_LINKS, ShardReport, _RecordFile, _same_value, _utcnow, shard_name

if TYPE_CHECKING:
    from .core import Store


#: ``box`` of :meth:`Family.compute_shard` for ``repair``: mend, add nothing.
REPAIR = "repair"

_LOCKS_GUARD = threading.Lock()
_THREAD_LOCKS: dict[tuple[str, int], threading.Lock] = {}
#: One descriptor per lock file and process, never closed: closing any descriptor of a file
#: drops every record lock the process holds on it.
_LOCK_FDS: dict[str, tuple[int, int]] = {}


def _lock_fd(path: str, mode: int) -> int:
    with _LOCKS_GUARD:
        hit = _LOCK_FDS.get(path)
        if hit is not None and hit[0] == os.getpid():
            return hit[1]
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
        _LOCK_FDS[path] = (os.getpid(), fd)
        return fd


def _lockf_wait(fd: int, byte: int) -> None:
    """Take the record lock on ``byte`` of ``fd``, waiting for it.

    Record locks belong to a process, so the kernel's deadlock check sees two processes
    whose threads each hold one shard and wait for another's as a cycle and answers
    ``EDEADLK`` (a false alarm: the holding threads finish and release). The waiter then
    backs off a few milliseconds and asks again; it holds nothing meanwhile."""
    import errno
    import fcntl
    import random
    import time

    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, byte)
            return
        except OSError as exc:
            if exc.errno != errno.EDEADLK:
                raise
            time.sleep(random.uniform(0.001, 0.02))


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
        model = get_model(self.layout.model)
        dtype = model.dtype_of(var, self.layout.dtype)
        fill = -1 if np.dtype(dtype).kind == "i" else np.nan
        attrs = attrs_for(var, model)
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

    def records(self, shards: Iterable[tuple[int, ...]]) -> dict[tuple[int, ...],
                                                                    dict[str, Any] | None]:
        """The commit record of each of ``shards`` (``None``: not committed).

        Many shards: one listing of the records, then each record file read once (on a
        local disk a record file is shared by up to :data:`_RecordFile.RECORDS` shards'
        names, hard links to it, so files are parsed once per inode, not once per name).
        """
        shards = list(shards)
        if len(shards) <= 4:  # a point query: read the few records, no listing
            return {s: self.commit_record(s) for s in shards}
        committed = self.committed()
        out: dict[tuple[int, ...], dict[str, Any] | None] = {}
        parsed: dict[tuple[int, int, int], dict[tuple[int, ...], dict[str, Any]]] = {}
        for shard in shards:
            if shard not in committed:
                out[shard] = None
                continue
            if not self.store.local:
                out[shard] = self.commit_record(shard)
                continue
            path = self.store._path(f"{self.prefix}/commits/{shard_name(shard)}")
            try:
                st = os.stat(path)
                key = (st.st_ino, st.st_size, st.st_mtime_ns)
                if key not in parsed:
                    parsed[key] = _parse_records(_read(path))
            except FileNotFoundError:
                out[shard] = None
                continue
            out[shard] = parsed[key].get(shard) or {"shard": list(shard)}
        return out

    def pending(self, window: Window, shards: Iterable[tuple[int, ...]] | None = None
                ) -> dict[tuple[int, ...], list[Box]]:
        """Per shard of ``window`` (or of ``shards``) not holding all of the window's part,
        the boxes (shard-local) a compute of the window computes there: the window's part
        minus the boxes the commit record holds; the whole shard where the record is
        unusable (unreadable, for other explicit values), as :meth:`compute_shard` does."""
        shards = window.shards() if shards is None else list(shards)
        explicit = any(ax.explicit for ax in self.layout.axes)
        tables = window.explicit_values() if explicit else None
        whole: Box = tuple((0, n) for n in self.layout.shard_shape)
        out: dict[tuple[int, ...], list[Box]] = {}
        for shard, record in self.records(shards).items():
            held = self.held(shard, record, tables)
            if held is None:
                out[shard] = [whole]
                continue
            todo = boxes_missing(window.local_box(shard), held)
            if todo:
                out[shard] = todo
        return out

    def committed_for(self, window: Window,
                      shards: Iterable[tuple[int, ...]] | None = None) -> set[tuple[int, ...]]:
        """The shards of ``window`` (or just ``shards``) whose commit records hold every
        point of the window in them *for its values*.

        On a family with explicit axes each shard's record names the exact value of its slot
        on each such axis; a record naming another value (a slot reassigned after its
        registry entry was lost) is not this window's, so the shard counts as missing.
        """
        want = window.shards() if shards is None else list(shards)
        missing = self.pending(window, want)
        return {s for s in want if s not in missing}

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
    def held(self, shard: tuple[int, ...], record: dict[str, Any] | None,
             slot_values: dict[str, dict[int, float]] | None = None) -> list[Box] | None:
        """The boxes of ``shard`` its ``record`` says were computed: ``[]`` for no record,
        ``None`` when the record is unreadable, has no boxes, or names other explicit values
        than ``slot_values`` (then nothing of the shard's object may be trusted or kept)."""
        if record is None:
            return []
        if slot_values is not None and any(ax.explicit for ax in self.layout.axes):
            values = record.get("values")
            if not isinstance(values, dict) or not all(
                    _same_value(values.get(ax.name), slot_values.get(ax.name, {}).get(i))
                    for ax, i in zip(self.layout.axes, shard, strict=True) if ax.explicit):
                return None
        try:
            boxes = [tuple((int(lo), int(hi)) for lo, hi in b) for b in record["boxes"]]
        except (KeyError, TypeError, ValueError):
            return None
        sides = self.layout.shard_shape
        if not all(len(b) == len(sides) and all(0 <= lo < hi <= n for (lo, hi), n
                                                in zip(b, sides, strict=True)) for b in boxes):
            return None
        return boxes

    def compute_shard(self, shard: tuple[int, ...],
                      slot_values: dict[str, dict[int, float]],
                      box: tuple[tuple[int, int] | None, ...] | str | None = None) -> int:
        """Evaluate, write and commit the part of one shard inside ``box`` that is not
        stored yet; return the number of points computed.

        ``box`` is a request window's :meth:`~.layout.Window.span` (``None``: the whole
        shard; :data:`REPAIR`: no new points, but what the record holds is computed again
        if the shard's objects are missing or do not decode). Under the shard's lock
        (:meth:`_shard_lock`) the commit record is read again: only the points of the box
        outside the boxes it holds are computed, merged into the shard's object (read,
        completed, written whole and atomically), and a new record names the union. An
        object with no record (a writer killed between its write and its commit) is
        replaced: no reader relies on it (the cache hit needs every record). One whose
        record is unusable (unreadable, for other explicit values) is rebuilt whole; one
        that does not read back is rebuilt with everything its record held. Points of the
        shard never computed hold :data:`~.layout.NOT_COMPUTED`.

        Where the store's own encoder applies (every array this module creates), a whole new
        shard is computed straight in inner-chunk order, shape ``grid + inner`` (each inner
        chunk one contiguous row), so the encoder compresses it as it stands: no reordering
        copy.
        """
        shard = tuple(int(i) for i in shard)
        full = self.layout.shard_shape
        whole: Box = tuple((0, n) for n in full)
        mend = isinstance(box, str)  # REPAIR: no new points, mend what the record holds
        want = (tuple((0, 0) for _ in full) if isinstance(box, str)
                else span_box(self.layout, box, shard))
        if not mend and not box_size(want):
            return 0
        with self._shard_lock(shard):
            held = self.held(shard, self.commit_record(shard), slot_values)
            base: dict[str, np.ndarray] | None = None
            if held:
                pending = boxes_missing(want, held)
                if not pending and not self.absent([shard]) and \
                        (not mend or self._holds(self._read_shard(shard), held)):
                    return 0
                base = self._read_shard(shard) if pending else None
                if base is None:  # lost or damaged: what the record held is computed again
                    pending, held = held + pending, []
            elif held is None:  # a record naming no boxes, or other values: rebuilt whole
                pending, held = [whole], []
            elif box_size(want):  # no record: whatever object is there, nobody relies on it
                pending = [want]
            else:
                return 0
            if pending == [whole]:
                self._write_whole(shard, slot_values)
            else:
                self._write_boxes(shard, slot_values, pending, base)
            boxes = boxes_merge(held + pending)
            self._commit_boxes(shard, slot_values, boxes)
            return sum(box_size(b) for b in pending)

    def _commit_boxes(self, shard: tuple[int, ...], slot_values: dict[str, dict[int, float]],
                      boxes: list[Box]) -> None:
        sizes = {var: self.store.size_of(self.shard_key(var, shard)) or 0
                 for var in self.layout.stored}
        record: dict[str, Any] = {"shard": list(shard), "points": sum(map(box_size, boxes)),
                                  "boxes": [[list(r) for r in b] for b in boxes],
                                  "sizes": sizes, "time": _utcnow(),
                                  "phasemap_version": __version__}
        if any(ax.explicit for ax in self.layout.axes):  # what the planner checks on reuse
            record["values"] = {ax.name: repr(float(slot_values[ax.name][idx]))
                                for ax, idx in zip(self.layout.axes, shard, strict=True)
                                if ax.explicit}
        self.commit(shard, record)

    def _write_whole(self, shard: tuple[int, ...],
                     slot_values: dict[str, dict[int, float]]) -> None:
        """Compute and write every point of ``shard`` (not committed here)."""
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
        for var in self.layout.stored:
            data = outs[var]
            if invalid is not None:
                data[invalid] = -1 if data.dtype.kind == "i" else np.nan
            if fast:
                # The shard's bytes, exactly as Zarr's sharding codec lays them out, written
                # in one atomic put (Zarr's own write path costs ~80 ms of asyncio per shard).
                encoder = encoders[var]
                assert encoder is not None  # fast only when every encoder exists
                blob = encoder.encode_chunks(data.reshape(math.prod(grid), -1))
                self.store.write_blob(self.shard_key(var, shard), blob)
            else:
                self.array(var)[self._region(shard)] = data

    def _region(self, shard: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(slice(i * ax.shard, (i + 1) * ax.shard)
                     for ax, i in zip(self.layout.axes, shard, strict=True))

    def _write_boxes(self, shard: tuple[int, ...], slot_values: dict[str, dict[int, float]],
                     boxes: list[Box], base: dict[str, np.ndarray] | None) -> None:
        """Compute the points of ``boxes`` into ``base`` (the shard's stored values; ``None``:
        a new shard, every other point :data:`~.layout.NOT_COMPUTED`) and write the shard."""
        model = get_model(self.layout.model)
        full = self.layout.shard_shape
        if base is None:
            base = {}
            for var in self.layout.stored:
                dt = model.dtype_of(var, self.layout.dtype)
                base[var] = np.full(full, not_computed(dt), dtype=dt)
        for b in boxes:
            shape = tuple(hi - lo for lo, hi in b)
            args: dict[str, Any] = dict(self.layout.params)
            checked: dict[str, np.ndarray] = {}
            for i, (ax, idx) in enumerate(zip(self.layout.axes, shard, strict=True)):
                values, bad = self._axis_values(i, idx, slot_values, False)
                cut = (slice(None),) * i + (slice(*b[i]),)
                args[ax.name], checked[ax.name] = values[cut], bad[cut]
            with np.errstate(all="ignore"):
                outs = _shard_outputs(model, args, shape, self.layout)
            invalid = _invalid_points(model, args, shape, checked)
            where = tuple(slice(lo, hi) for lo, hi in b)
            for var in self.layout.stored:
                data = outs[var]
                if invalid is not None:
                    data = np.array(data)
                    data[invalid] = -1 if data.dtype.kind == "i" else np.nan
                base[var][where] = data
        for var in self.layout.stored:
            encoder = self._encoder(var)
            if bool(shard) and encoder is not None and encoder.shard_shape == full:
                self.store.write_blob(self.shard_key(var, shard), encoder.encode(base[var]))
            else:
                self.array(var)[self._region(shard)] = base[var]

    @staticmethod
    def _holds(data: dict[str, np.ndarray] | None, boxes: list[Box]) -> bool:
        """Whether ``data`` (a shard's outputs) was computed at every point of ``boxes``."""
        return data is not None and not any(
            is_not_computed(arr[tuple(slice(*r) for r in b)]).any()
            for arr in data.values() for b in boxes)

    def _read_shard(self, shard: tuple[int, ...]) -> dict[str, np.ndarray] | None:
        """Every stored output of ``shard`` as it is stored, or ``None`` if any object is
        missing or does not decode (checksums verified)."""
        out = {}
        region = self._region(shard)
        for var in self.layout.stored:
            if self.store.size_of(self.shard_key(var, shard)) is None:
                return None
            encoder = self._encoder(var)
            try:
                if self.store.local and encoder is not None and \
                        encoder.shard_shape == self.layout.shard_shape:
                    out[var] = encoder.read(self.store.root, f"{self.prefix}/{var}", region,
                                            np.nan, missing_ok=False)
                else:
                    out[var] = np.array(self.array(var)[region])
            except Exception:  # missing just now, a checksum or decoding failure
                return None
        return out

    @contextlib.contextmanager
    def _shard_lock(self, shard: tuple[int, ...]):
        """Hold ``shard`` against every other writer of this store on this machine (threads
        and processes): a byte-range lock (``lockf``) on ``families/<key>/.lock`` at a byte
        picked by the shard's name, behind a thread lock for that byte (record locks belong
        to a process, not a thread). The kernel drops a dead process's locks, so a killed
        writer never blocks anyone. Object stores have no such lock: see docs/store.md."""
        if not self.store.local:
            yield
            return
        import fcntl
        import hashlib

        path = self.store._path(f"{self.prefix}/.lock")
        byte = int.from_bytes(hashlib.sha256(shard_name(shard).encode()).digest()[:4],
                              "little") & 0x7FFFFFFF
        with _LOCKS_GUARD:
            tlock = _THREAD_LOCKS.setdefault((path, byte), threading.Lock())
        with tlock:
            while True:
                fd = _lock_fd(path, self.store.file_mode)
                _lockf_wait(fd, byte)
                try:  # the family may have been removed and made again meanwhile
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, byte)
                with _LOCKS_GUARD:
                    _LOCK_FDS.pop(path, None)
            try:
                yield
            finally:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, byte)

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
            if ax.explicit or start is None:
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
        return self._as_dataset(ds, model, spec)

    def _as_dataset(self, ds: xr.Dataset, model, spec: GridSpec) -> xr.Dataset:
        """``ds`` read from this family with the ``valid`` flag evaluate adds and the CF and
        provenance attributes every reader returns (a window or a plane alike)."""
        from ..evaluation import add_validity

        ds = add_validity(ds, model)
        return apply_attrs(ds, {"model": model.name, "model_version": model.version,
                                "phasemap_version": __version__,
                                "references": model.references,
                                "spec": json.dumps(spec.to_dict()),
                                "dataset_id": spec_id(spec), "store": self.store.url,
                                "family": self.key}, model=model)

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

    def read_slice(self, window: Window, spec: GridSpec, x: str, y: str,
                   at: dict[str, float], variables: Iterable[str] | None = None
                   ) -> xr.Dataset:
        """Outputs on the ``(x, y)`` plane of ``window`` at the grid values ``at`` of every
        other dimension, read straight from the shard objects (only the inner chunks the
        plane touches, checksums verified), derived outputs computed for the plane alone:
        no dask. Dimensions ``(y, x)``; CF attributes as :meth:`open_window` gives them."""
        from ..grid import grid_index

        model = get_model(self.layout.model)
        dims = self.layout.dims
        for name, value in (("x", x), ("y", y)):
            if value not in dims:
                raise ParameterError(name, value, f"a dimension of the dataset: "
                                                  f"{', '.join(dims)}")
        if x == y:
            raise ParameterError("y", y, f"a dimension other than x={x}")
        others = [d for d in dims if d not in (x, y)]
        if set(at) != set(others):
            raise ParameterError("at", dict(at), f"a value for each of {', '.join(others)} "
                                                 "(and nothing else)" if others else
                                                 "nothing: x and y are every dimension")
        names = list(model.outputs) if variables is None else list(variables)
        for v in names:
            if v not in model.outputs:
                raise ParameterError("variables", v, f"outputs of {model.name}: "
                                                     f"{', '.join(model.outputs)}")
        index = {d: grid_index(d, window.coords[d], float(at[d])) for d in others}
        key = tuple(slice(None) if d in (x, y) else slice(index[d], index[d] + 1)
                    for d in dims)
        order = [dims.index(y), dims.index(x)]

        def plane(data: np.ndarray) -> np.ndarray:
            data = data.reshape([window.sizes[i] for i in sorted(order)])
            return data if order[0] < order[1] else data.T

        need = [v for v in names if v in self.layout.stored]
        derived = [v for v in names if v not in self.layout.stored]
        read = list(self.layout.stored) if derived else need
        values = {var: plane(_WindowReader(self.store.url, self.prefix, var, window)[key])
                  for var in read}
        xs = np.asarray(window.coords[x], dtype=np.float64)
        ys = np.asarray(window.coords[y], dtype=np.float64)
        fixed = {d: np.float64(window.coords[d][index[d]]) for d in others}
        if derived:
            shape = (len(ys), len(xs))
            for v, arr in self._derive_plane(model, values, fixed, x, xs, y, ys).items():
                if v in derived:
                    values[v] = np.broadcast_to(arr, shape).astype(
                        model.dtype_of(v, self.layout.dtype), copy=False)
        coords: dict[str, Any] = {x: xs, y: ys, **fixed}
        coords.update(self.layout.params)
        ds = xr.Dataset({v: ((y, x), values[v]) for v in names}, coords=coords)
        return self._as_dataset(ds, model, spec)

    def _derive_plane(self, model, stored: dict[str, np.ndarray], fixed: dict[str, Any],
                      x: str, xs: np.ndarray, y: str, ys: np.ndarray) -> dict[str, np.ndarray]:
        """``model.derive`` on a plane's stored outputs, its rows split over a thread per
        core when the plane is large (the kernels release the GIL)."""
        from concurrent.futures import ThreadPoolExecutor

        from ..cluster import usable_cores

        assert model.derive is not None  # outputs not stored are derived
        base: dict[str, Any] = model.defaults() | dict(self.layout.params) | fixed

        def rows(lo: int, hi: int) -> dict[str, np.ndarray]:
            params = dict(base)
            params[x], params[y] = xs[None, :], ys[lo:hi, None]
            with np.errstate(all="ignore"):
                out = model.derive({k: np.asarray(v[lo:hi], dtype=np.float64)
                                    for k, v in stored.items()},
                                   **{n: np.asarray(params[n], dtype=np.float64)
                                      for n in model.param_names})
            return {k: np.broadcast_to(v, (hi - lo, len(xs))) for k, v in out.items()}

        parts = max(1, min(usable_cores(), len(ys), len(ys) * len(xs) // 2**16))
        if parts == 1:
            return rows(0, len(ys))
        final: dict[str, np.ndarray] = {}
        lock = threading.Lock()

        def block(lo: int, hi: int) -> None:  # each thread copies its own rows in
            out = rows(lo, hi)
            with lock:
                if not final:
                    final.update({k: np.empty((len(ys), len(xs)), dtype=v.dtype)
                                  for k, v in out.items()})
            for k, v in out.items():
                final[k][lo:hi] = v

        edges = np.linspace(0, len(ys), parts + 1).astype(int)
        with ThreadPoolExecutor(parts, thread_name_prefix="phasemap-plane") as pool:
            list(pool.map(block, edges[:-1], edges[1:]))
        return final

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
            boxes = self.held(shard, record)
            if boxes is None:
                bad.append(ShardReport(self.key, shard, "*", "commit record names no boxes"))
            for var in self.layout.stored:
                if var in damaged:
                    continue
                key = self.shard_key(var, shard)
                size = self.store.size_of(key)
                expected = (record.get("sizes") or {}).get(var)
                if size is None:
                    bad.append(ShardReport(self.key, shard, var, "missing"))
                    continue
                try:
                    data = np.asarray(self.array(var)[self._region(shard)])
                except Exception as exc:  # checksum or decoding failure
                    problem = (f"size {size} bytes, committed {expected}"
                               if expected is not None and size != expected else
                               f"unreadable: {type(exc).__name__}: {exc}"[:200])
                    bad.append(ShardReport(self.key, shard, var, problem))
                    continue
                # Another size that decodes is a merge written by a writer killed before its
                # commit (a superset of the record's boxes): sound, checked just below.
                if boxes and any(is_not_computed(data[tuple(slice(*r) for r in b)]).any()
                                 for b in boxes):
                    bad.append(ShardReport(self.key, shard, var,
                                           "points its record holds were never computed"))
            if progress:
                progress(n + 1, len(shards))
        return bad


def _parse_records(raw: bytes) -> dict[tuple[int, ...], dict[str, Any]]:
    """Every record of a record file by shard (the last line naming a shard wins)."""
    out: dict[tuple[int, ...], dict[str, Any]] = {}
    for line in raw.splitlines():
        with contextlib.suppress(ValueError, TypeError):
            record = json.loads(line)
            if isinstance(record, dict):
                out[tuple(int(i) for i in record.get("shard", ()))] = record
    return out


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
    dtypes = {var: model.dtype_of(var, layout.dtype) for var in layout.stored}
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
