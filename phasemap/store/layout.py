"""Where every grid point lives in the store: families, lattices, shards and windows.

A *family* is everything that fixes the numbers at a point except the point's position: model
and version, fixed parameters, dtype, and for each axis (in order) its kind and lattice step.
Each family is one Zarr group holding one sparse array per stored output whose nominal shape
covers the whole lattice, so a request is a *window* into it and overlapping requests share
chunks without copying.

Index rules (these are what a user relies on for reuse, see docs/store.md):

* A linear (or log) axis with rational step ``num/den`` puts lattice index ``k`` at array index
  ``k + 2**31`` (``value = k num / den``, or ``10**`` that on a log axis).
* An explicit-values axis puts each value in a *slot* registered in the store
  (``slots/<axis>/<n>`` holds the exact value of slot ``n``): the first free slot at or after
  31 bits of the SHA-256 of its float64 bytes (linear probing), so two values never share a
  slot, and every lookup compares the stored value with the requested one bit for bit. Its
  chunk size is 1, so any set of values reuses whatever was computed before.
* Shards (the unit of computing, writing and committing) have sides that depend only on how
  many lattice axes the family has and on the model's cost (``Model.shard_log2``): about
  2**18 points each for a closed form (fewer for costly models: 2**12 for a Pauli model of
  several states, whose points cost ~50 us), powers of two, aligned to multiples of their
  side. Inner chunks (the unit of reading) hold about 2**13 points; with three lattice axes
  or more they are one point thick along the axes between the first and the last
  (:func:`_sides_log2`), so that planes over the first and last axes read no waste.
  A spec's ``chunks:`` overrides both sides of an axis, within :data:`MAX_SHARD_POINTS` and
  :data:`MAX_INNER_POINTS`.

The two chunking rules live here, in one place: on write, shard and inner-chunk sides
(:meth:`FamilyLayout.from_spec`, :data:`SHARD_LOG2`, :data:`INNER_LOG2`); on read, the side
of a dask chunk (:func:`_read_sides`, :data:`READ_CHUNK_POINTS`), a power-of-two part of a
shard made of whole inner chunks.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..grid import GridSpec, Lattice, lattice_values
from ..models import get_model

#: Version of the family layout, part of every family key. 2: explicit-axis slots are
#: assigned by probing a registry keyed by the exact value (1 trusted a 31-bit hash alone,
#: so two values could share a slot); families written by version 1 are never read.
#: 3: *partial shards*: a commit record names the boxes of its shard that were computed
#: (``"boxes"``), points outside them hold :data:`NOT_COMPUTED`; a version-2 record meant
#: "the whole shard", so version-2 families are never read by this code (new keys).
FORMAT_VERSION = 3
LATTICE_LENGTH = 2**32
LATTICE_OFFSET = 2**31
SLOT_LENGTH = 2**31
SHARD_LOG2 = 18
INNER_LOG2 = 13
#: Largest shard a spec's ``chunks:`` may ask for [points] (32 MiB of float64, computed and
#: written whole by one task).
MAX_SHARD_POINTS = 2**22
#: Largest inner chunk [points]: every point read decodes a whole inner chunk (1 MiB of
#: float64).
MAX_INNER_POINTS = 2**17


#: Bit pattern of a stored point that was never computed (outside every box of its shard's
#: record): a *signalling* NaN with a payload no arithmetic produces (any operation on a
#: signalling NaN returns a quiet one, and the kernels' own NaNs are the default quiet NaN),
#: so a reader tells "not computed" from "computed, outside the domain" bit for bit.
NOT_COMPUTED = {8: np.uint64(0x7FF4_5048_4D50_0001), 4: np.uint32(0x7FA0_504D)}
#: The same for integer outputs (labels are small non-negative codes, -1 outside the domain).
NOT_COMPUTED_INT = -2


def not_computed(dtype: np.dtype) -> np.ndarray:
    """A 0-d array of ``dtype`` holding the "never computed" value."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.asarray(NOT_COMPUTED[dtype.itemsize]).view(dtype.newbyteorder("="))
    return np.asarray(NOT_COMPUTED_INT, dtype=dtype)


def is_not_computed(data: np.ndarray) -> np.ndarray:
    """Mask of the points of ``data`` holding the "never computed" value (bit for bit)."""
    data = np.asarray(data)
    if data.dtype.kind == "f":
        nan = np.isnan(data)
        if not nan.any():
            return nan
        bits = data.view(np.uint64 if data.dtype.itemsize == 8 else np.uint32)
        return nan & (bits == NOT_COMPUTED[data.dtype.itemsize])
    return data == NOT_COMPUTED_INT


# --- boxes: the parts of a shard a commit record holds -----------------------------------

#: A box: per axis a half-open index range ``(lo, hi)``, shard-local.
Box = tuple[tuple[int, int], ...]


def box_size(box: Box) -> int:
    return math.prod(hi - lo for lo, hi in box)


def box_subtract(a: Box, b: Box) -> list[Box]:
    """``a`` minus ``b`` as disjoint boxes (at most two per axis)."""
    if any(max(al, bl) >= min(ah, bh) for (al, ah), (bl, bh) in zip(a, b, strict=True)):
        return [a]
    out = []
    rest = list(a)
    for d, ((al, ah), (bl, bh)) in enumerate(zip(a, b, strict=True)):
        if al < bl:
            out.append((*tuple(rest[:d]), (al, bl), *tuple(rest[d + 1:])))
        if bh < ah:
            out.append((*tuple(rest[:d]), (bh, ah), *tuple(rest[d + 1:])))
        rest[d] = (max(al, bl), min(ah, bh))
    return out


def boxes_missing(want: Box, held: list[Box]) -> list[Box]:
    """The part of ``want`` no box of ``held`` covers, as disjoint boxes."""
    pending = [want] if box_size(want) else []
    for h in held:
        pending = [p for q in pending for p in box_subtract(q, h)]
        if not pending:
            break
    return pending


def boxes_merge(boxes: list[Box]) -> list[Box]:
    """Disjoint ``boxes`` with every pair that abuts along one axis (and is equal along the
    others) joined, until no pair does: an extended request leaves one box, not two."""
    boxes = [b for b in boxes if box_size(b)]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                diff = [d for d in range(len(a)) if a[d] != b[d]]
                if len(diff) == 1:
                    d = diff[0]
                    if a[d][1] == b[d][0] or b[d][1] == a[d][0]:
                        joined = (min(a[d][0], b[d][0]), max(a[d][1], b[d][1]))
                        boxes[i] = (*a[:d], joined, *a[d + 1:])
                        del boxes[j]
                        merged = True
                        break
            if merged:
                break
    return sorted(boxes)


def _split_log2(total: int, n: int) -> list[int]:
    """Split ``total`` powers of two over ``n`` axes, the extra ones to the last axes."""
    if n == 0:
        return []
    base, extra = divmod(total, n)
    return [base + (1 if i >= n - extra else 0) for i in range(n)]


def _sides_log2(shard_log2: int, n: int) -> tuple[list[int], list[int]]:
    """Shard and inner-chunk sides (log2) of ``n`` lattice axes.

    One or two axes: split evenly (extra factors to the last axes). Three or more: the
    first and the last axis are the *map* axes and the ones between are *sliders* (the
    order the paper's specs use: eps, T, dT, dV). Sliders get a short shard side and inner
    chunks one point thick, so a plane over the first and last axes at fixed sliders
    decodes only the points it returns (an inner chunk as deep as 8 x 8 along the sliders
    made a 1e6-point plane decode 64e6 points, issue 14); a plane along a slider touches one
    inner chunk per slider value, which stays cheap because sliders are short.
    """
    if n < 3:
        return _split_log2(shard_log2, n), _split_log2(min(INNER_LOG2, shard_log2), n)
    middle = shard_log2 // (2 * (n - 1))
    first = (shard_log2 - middle * (n - 2)) // 2
    last = shard_log2 - middle * (n - 2) - first
    shard = [first] + [middle] * (n - 2) + [last]
    inner_total = min(INNER_LOG2, first + last)
    inner_first = min(first, inner_total // 2)
    inner = [inner_first] + [0] * (n - 2) + [min(last, inner_total - inner_first)]
    return shard, inner


def slot_of(value: float) -> int:
    """First slot probed for an explicit axis value: 31 bits of SHA-256 of its float64
    bytes. Distinct values can share it; the store's registry (``Family.slots_for``) then
    gives the second value the next free slot."""
    digest = hashlib.sha256(struct.pack("<d", float(value) + 0.0)).digest()
    return int.from_bytes(digest[:4], "little") & (SLOT_LENGTH - 1)


@dataclass(frozen=True)
class AxisLayout:
    """One axis of a family: its lattice (or explicit slots), shard and inner chunk sides."""

    name: str
    lattice: Lattice
    shard: int
    inner: int

    @property
    def explicit(self) -> bool:
        return self.lattice.kind == "explicit"

    @property
    def nominal(self) -> int:
        return SLOT_LENGTH if self.explicit else LATTICE_LENGTH

    def definition(self) -> dict[str, Any]:
        lat = self.lattice
        d: dict[str, Any] = {"name": self.name, "kind": lat.kind, "shard": self.shard,
                             "inner": self.inner}
        if lat.kind != "explicit":
            if lat.num:
                d.update(num=lat.num, den=lat.den)
            else:
                d.update(origin=repr(lat.origin), step=repr(lat.step))
        return d

    @classmethod
    def from_definition(cls, d: dict[str, Any]) -> AxisLayout:
        if d["kind"] == "explicit":
            lat = Lattice(kind="explicit")
        elif "num" in d:
            lat = Lattice(kind=d["kind"], num=d["num"], den=d["den"])
        else:
            lat = Lattice(kind=d["kind"], origin=float(d["origin"]), step=float(d["step"]))
        return cls(name=d["name"], lattice=lat, shard=d["shard"], inner=d["inner"])

    def shard_values(self, index: int, slot_values: dict[int, float] | None = None) -> np.ndarray:
        """Coordinate values of shard ``index`` along this axis."""
        if self.explicit:
            return np.array([slot_values[index]], dtype=np.float64)  # type: ignore[index]
        start = index * self.shard - LATTICE_OFFSET
        return lattice_values(self.lattice, self.shard, k0=start)


@dataclass(frozen=True)
class FamilyLayout:
    """The family of a request: its identity (``key``) and geometry."""

    model: str
    model_version: str
    params: tuple[tuple[str, float], ...]
    dtype: str
    axes: tuple[AxisLayout, ...]
    stored: tuple[str, ...]

    @classmethod
    def from_spec(cls, spec: GridSpec) -> FamilyLayout:
        model = get_model(spec.model)
        params = model.defaults() | {k: float(v) for k, v in spec.params.items()}
        for name in spec.axes:
            params.pop(name, None)
        lattices = [spec.lattice(name) for name in spec.axes]
        n_lat = sum(lat.kind != "explicit" for lat in lattices)
        # a shard is what one task computes: about model.shard_log2 powers of two of points
        # (2**18 for a closed form, fewer for costly models, so that the whole shards a
        # small request pads to stay cheap)
        shard_log2 = min(SHARD_LOG2, model.shard_log2)
        shard_exps, inner_exps = _sides_log2(shard_log2, n_lat)
        shard_exp, inner_exp = iter(shard_exps), iter(inner_exps)
        axes = []
        for name, lat in zip(spec.axes, lattices, strict=True):
            if lat.kind == "explicit":
                shard = inner = 1
            else:
                shard, inner = 2 ** next(shard_exp), 2 ** next(inner_exp)
                if spec.chunks and name in spec.chunks:
                    shard = inner = int(spec.chunks[name])
            axes.append(AxisLayout(name, lat, shard, min(inner, shard)))
        if spec.chunks:
            shard_points = math.prod(a.shard for a in axes)
            inner_points = math.prod(a.inner for a in axes)
            if shard_points > MAX_SHARD_POINTS or inner_points > MAX_INNER_POINTS:
                raise ParameterError(
                    "chunks", dict(spec.chunks),
                    f"shards of at most {MAX_SHARD_POINTS:,} points and inner chunks of at "
                    f"most {MAX_INNER_POINTS:,} points",
                    f"these chunks make shards of {shard_points:,} and inner chunks of "
                    f"{inner_points:,} points")
        return cls(model=model.name, model_version=model.version,
                   params=tuple(sorted(params.items())), dtype=spec.dtype,
                   axes=tuple(axes), stored=tuple(model.stored or ()))

    def definition(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "model_version": self.model_version,
            "params": {k: repr(v) for k, v in self.params},
            "dtype": self.dtype,
            "axes": [a.definition() for a in self.axes],
            "stored": list(self.stored),
        }

    @classmethod
    def from_definition(cls, d: dict[str, Any]) -> FamilyLayout:
        return cls(model=d["model"], model_version=d["model_version"],
                   params=tuple(sorted((k, float(v)) for k, v in d["params"].items())),
                   dtype=d["dtype"], axes=tuple(AxisLayout.from_definition(a) for a in d["axes"]),
                   stored=tuple(d["stored"]))

    @property
    def key(self) -> str:
        blob = json.dumps(self.definition(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:20]

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.nominal for a in self.axes)

    @property
    def shard_shape(self) -> tuple[int, ...]:
        return tuple(a.shard for a in self.axes)

    @property
    def inner_shape(self) -> tuple[int, ...]:
        return tuple(a.inner for a in self.axes)

    @property
    def shard_points(self) -> int:
        return math.prod(self.shard_shape)


#: Slot of an explicit value not (yet) registered in the store.
UNREGISTERED = -1


@dataclass
class Window:
    """A request's place in its family: per axis a start index or a list of slots."""

    layout: FamilyLayout
    starts: tuple[int | None, ...]          # lattice axes: first array index
    slots: tuple[np.ndarray | None, ...]    # explicit axes: array index of each value
    sizes: tuple[int, ...]
    coords: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, layout: FamilyLayout, spec: GridSpec,
                  slots_of: dict[str, dict[float, int]] | None = None) -> Window:
        """The window of ``spec``; ``slots_of`` maps each explicit axis's values to their
        registered slots (from ``Family.slots_for``). A value with no slot gets
        :data:`UNREGISTERED`: nothing is stored for it."""
        starts: list[int | None] = []
        slots: list[np.ndarray | None] = []
        sizes: list[int] = []
        coords: dict[str, np.ndarray] = {}
        for ax in layout.axes:
            values = spec.axis_values(ax.name)
            coords[ax.name] = values
            sizes.append(len(values))
            if ax.explicit:
                table = (slots_of or {}).get(ax.name, {})
                starts.append(None)
                slots.append(np.array([table.get(float(v) + 0.0, UNREGISTERED)
                                       for v in values], dtype=np.int64))
            else:
                starts.append(spec.lattice(ax.name).k0 + LATTICE_OFFSET)
                slots.append(None)
        return cls(layout, tuple(starts), tuple(slots), tuple(sizes), coords)

    @property
    def size(self) -> int:
        return math.prod(self.sizes)

    def shard_ranges(self) -> list[np.ndarray]:
        """Per axis, the shard indices the window touches."""
        out = []
        for ax, start, slots, n in zip(self.layout.axes, self.starts, self.slots, self.sizes,
                                       strict=True):
            if ax.explicit or start is None:
                out.append(np.asarray(slots))
            else:
                out.append(np.arange(start // ax.shard, (start + n - 1) // ax.shard + 1))
        return out

    def shards(self) -> list[tuple[int, ...]]:
        """Every shard the window touches, in C order."""
        ranges = self.shard_ranges()
        if not ranges:
            return [()]
        mesh = np.meshgrid(*ranges, indexing="ij")
        return [tuple(int(x) for x in row) for row in np.stack([m.ravel() for m in mesh], -1)]

    def n_shards(self) -> int:
        return math.prod(len(r) for r in self.shard_ranges())

    def span(self) -> tuple[tuple[int, int] | None, ...]:
        """Per axis the array-index range ``(lo, hi)`` the window covers (``None`` on an
        explicit axis, whose shards are one slot wide): what a task needs to know to compute
        only the window's part of a shard."""
        return tuple(None if start is None else (int(start), int(start) + n)
                     for start, n in zip(self.starts, self.sizes, strict=True))

    def local_box(self, shard: tuple[int, ...]) -> Box:
        """The window's part of ``shard``, in the shard's own indices."""
        return span_box(self.layout, self.span(), shard)

    @property
    def registered(self) -> bool:
        """Whether every explicit value of the window has a slot."""
        return all(s is None or not (np.asarray(s) == UNREGISTERED).any() for s in self.slots)

    def explicit_values(self) -> dict[str, dict[int, float]]:
        """Slot -> value for each explicit axis (what the store must register)."""
        return {ax.name: {int(s): float(v) for s, v in zip(np.asarray(slots),
                                                           self.coords[ax.name], strict=True)}
                for ax, slots in zip(self.layout.axes, self.slots, strict=True)
                if ax.explicit}


def span_box(layout: FamilyLayout, span: tuple[tuple[int, int] | None, ...] | None,
             shard: tuple[int, ...]) -> Box:
    """The part of ``shard`` inside ``span`` (see :meth:`Window.span`; ``None``: all of
    it), in the shard's own indices; empty ranges where they do not meet."""
    out = []
    for d, (ax, i) in enumerate(zip(layout.axes, shard, strict=True)):
        rng = None if span is None else span[d]
        if rng is None:
            out.append((0, ax.shard))
        else:
            lo = min(max(rng[0] - i * ax.shard, 0), ax.shard)
            hi = max(min(rng[1] - i * ax.shard, ax.shard), lo)
            out.append((lo, hi))
    return tuple(out)


# --- the dataset id ------------------------------------------------------------------------

def spec_id(spec: GridSpec) -> str:
    """Dataset id of a request: a hash of its canonical spec."""
    d = spec.to_dict()
    # Axis order is part of the request (it is the dimension order); parameter order is not.
    d["axes"] = [[name, ax] for name, ax in d["axes"].items()]
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- chunking on read ----------------------------------------------------------------------

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
