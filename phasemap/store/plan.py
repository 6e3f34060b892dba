"""Planning: which shards a request needs and which of them are missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..grid import GridSpec
from ..models import get_model
from .family import Family
from .layout import UNREGISTERED, FamilyLayout, Window

if TYPE_CHECKING:
    from .core import Store


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
        model = get_model(self.layout.model)
        per_shard = sum(model.dtype_of(v, self.layout.dtype).itemsize
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
        if slots is not None:  # an explicit axis
            out.append(int(slots[i]))
        else:
            out.append((int(start or 0) + i) // ax.shard)
    return tuple(out)


def _overlap(window: Window, shard: tuple[int, ...]) -> int:
    n = 1
    for ax, start, slots, size, i in zip(window.layout.axes, window.starts, window.slots,
                                         window.sizes, shard, strict=True):
        if ax.explicit or start is None:
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


def as_spec(spec: GridSpec | dict | str | os.PathLike) -> GridSpec:
    if isinstance(spec, GridSpec):
        return spec
    if isinstance(spec, dict):
        return GridSpec.from_dict(spec)
    return GridSpec.load(spec)
