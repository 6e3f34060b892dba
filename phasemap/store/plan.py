"""Planning: which shards a request needs and which of them are missing."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..grid import GridSpec
from ..models import get_model
from .family import Family
from .layout import UNREGISTERED, Box, FamilyLayout, Window, box_size

if TYPE_CHECKING:
    from .core import Store


# --- execution: the one planner ---------------------------------------------------------

@dataclass
class Plan:
    """What a request needs: its family, window, which shards are missing and which of
    their points a compute would compute (``todo``: shard-local boxes per missing shard)."""

    spec: GridSpec
    layout: FamilyLayout
    window: Window
    needed: list[tuple[int, ...]]
    missing: list[tuple[int, ...]]
    todo: dict[tuple[int, ...], list[Box]] = field(default_factory=dict)

    @property
    def points(self) -> int:
        return self.window.size

    @property
    def points_to_compute(self) -> int:
        """Points a compute of this plan computes: only the request's part of each shard
        that no commit record holds (whole shards only where a record is unusable)."""
        return sum(box_size(b) for boxes in self.todo.values() for b in boxes)

    @property
    def points_stored(self) -> int:
        """Requested points that are already in the store."""
        missing = 0
        for shard, boxes in self.todo.items():
            want = self.window.local_box(shard)
            # on an explicit axis several values not registered yet share slot -1
            repeat = math.prod(int((np.asarray(sl) == i).sum())
                               for sl, i in zip(self.window.slots, shard, strict=True)
                               if sl is not None)
            missing += repeat * sum(box_size(_intersect(b, want)) for b in boxes)
        return self.points - missing

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


def _intersect(a: Box, b: Box) -> Box:
    return tuple((max(al, bl), max(min(ah, bh), max(al, bl)))
                 for (al, ah), (bl, bh) in zip(a, b, strict=True))


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
    todo = fam.pending(window, needed)
    missing = [s for s in needed if s in todo]
    return Plan(spec, layout, window, needed, missing, todo)


def as_spec(spec: GridSpec | dict | str | os.PathLike) -> GridSpec:
    if isinstance(spec, GridSpec):
        return spec
    if isinstance(spec, dict):
        return GridSpec.from_dict(spec)
    return GridSpec.load(spec)
