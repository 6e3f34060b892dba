"""Reading a request's window from its family: the array-like dask reads (through the shard
codec on local disks, Zarr elsewhere) and the outputs derived on read."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import dask.array as da
import numpy as np
import zarr

from ..errors import StoreCorrupted
from ..models import get_model
from .blobs import BlobStore
from .codec import (
    ShardMissing,
    ShardUnreadable,
    _family_and_variable,
    _no_paths,
    _shard_encoder,
)
from .layout import FamilyLayout, Window, is_not_computed


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
    dtypes = [model.dtype_of(o, layout.dtype) for o in derived]

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
        self.dtype = get_model(window.layout.model).dtype_of(var, window.layout.dtype)
        # Local stores are read by the shard decoder (a pread of the index and of each inner
        # chunk needed) instead of Zarr's asyncio pipeline: ~10x less per read.
        store = BlobStore(url)
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
        sel: list[Any] = []
        for k, start, slots, n in zip(key, self.starts, self.slots, self.shape, strict=True):
            k = slice(*k.indices(n)) if isinstance(k, slice) else slice(k, k + 1)
            if slots is None:
                sel.append(slice(start + k.start, start + k.stop))
            else:
                idx = np.asarray(slots)[k]
                sel.append(slice(int(idx[0]), int(idx[0]) + 1) if len(idx) == 1 else idx)
        return self._checked(tuple(sel), self._read(tuple(sel)))

    def _checked(self, sel: tuple, data: np.ndarray) -> np.ndarray:
        """``data`` if none of it is :data:`~.layout.NOT_COMPUTED`; else
        :class:`StoreCorrupted` naming the first shard with a point never computed (its
        record, or the request's, claims more than its object holds)."""
        bad = is_not_computed(data)
        if not bad.any():
            return data
        first = np.unravel_index(int(np.argmax(bad)), bad.shape)
        shard = tuple((s.start + int(i) if isinstance(s, slice) else int(s[int(i)])) // sh
                      for s, i, sh in zip(sel, first, self.shard_shape, strict=True))
        family, var = _family_and_variable(self.path)
        raise StoreCorrupted(family, shard, var, "points never computed")

    def _read(self, sel: tuple) -> np.ndarray:
        if self.fast is not None and all(isinstance(s, slice) for s in sel):
            # every shard of the window is committed: a missing one is damage, not fill
            try:
                return self.fast.read(self.root, self.path, tuple(sel), self.fill,
                                      missing_ok=False)
            except ShardMissing as exc:
                family, var = _family_and_variable(self.path)
                raise StoreCorrupted(family, exc.shard, var, "missing") from None
            except ShardUnreadable as exc:
                family, var = _family_and_variable(self.path)
                raise StoreCorrupted(family, exc.shard, var,
                                     f"unreadable: {exc.problem}") from None
        return self._read_zarr(tuple(sel))

    def _read_zarr(self, sel: tuple) -> np.ndarray:
        """Read through Zarr, after checking that every shard ``sel`` touches exists (Zarr
        reads a missing shard as fill values; here it is committed, so it is damage)."""
        family, var = _family_and_variable(self.path)
        ranges = [range(s.start // sh, (s.stop - 1) // sh + 1) if isinstance(s, slice)
                  else sorted({int(i) // sh for i in s})
                  for s, sh in zip(sel, self.shard_shape, strict=True)]
        store = BlobStore(self.url)
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
    return zarr.open_array(BlobStore(url).zstore, path=path, mode="r")
