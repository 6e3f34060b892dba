"""Grid specs and the one validation path every entry point goes through.

A grid is a model, fixed parameters and named axes. Python calls, YAML/JSON specs, CLI options
and HTTP query strings all end in :func:`validate_inputs`, so a bad input gets the same
:class:`~phasemap.errors.ParameterError` (parameter, value, what is allowed) everywhere.

Linear and logarithmic axes are points of a *lattice*: ``value = (k0 + i) * p / q`` with the
step ``p/q`` recovered as an exact rational where it is one (``0.1 -> 1/10``). Two requests on
the same lattice therefore produce bit-identical coordinates, which is what lets the store
reuse chunks between overlapping requests (see ``docs/store.md``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import GridTooLargeError, ParameterError
from .models import Model, get_model

#: Default limit on grid points; override with ``PHASEMAP_MAX_POINTS`` or ``max_points=``.
DEFAULT_MAX_POINTS = 10**10
#: Points per chunk that canonical chunking aims at.
TARGET_CHUNK_POINTS = 2**20


def max_points_default() -> int:
    raw = os.environ.get("PHASEMAP_MAX_POINTS")
    if raw is None:
        return DEFAULT_MAX_POINTS
    try:
        return int(float(raw))
    except ValueError:
        raise ParameterError("PHASEMAP_MAX_POINTS", raw, "an integer number of points") from None


def bytes_per_point(model: Model, dtype: str = "float64") -> int:
    return sum(model.dtype_of(o, dtype).itemsize for o in model.outputs)


# --- axes -------------------------------------------------------------------------------

class Lattice(BaseModel):
    """The lattice an axis lies on: ``value = transform((k0 + i) * num / den)``.

    For ``kind="explicit"`` the axis is a list of values with no lattice.
    """

    model_config = ConfigDict(frozen=True)
    kind: Literal["linear", "log", "explicit"]
    num: int = 0
    den: int = 1
    k0: int = 0
    origin: float = 0.0
    step: float = 0.0


class RangeAxis(BaseModel):
    """``num`` evenly spaced values from ``start`` to ``stop`` (in log10 if ``scale='log'``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: float
    stop: float
    num: int = Field(ge=1)
    scale: Literal["linear", "log"] = "linear"

    def lattice(self, name: str = "axis") -> Lattice:
        a, b = float(self.start), float(self.stop)
        if self.scale == "log":
            if a <= 0 or b <= 0:
                raise ParameterError(f"axes.{name}", {"start": a, "stop": b},
                                     "start > 0 and stop > 0 on a log axis")
            a, b = math.log10(a), math.log10(b)
        if self.num == 1:
            return Lattice(kind=self.scale, origin=a, step=1.0)
        if not b > a:
            raise ParameterError(f"axes.{name}", {"start": self.start, "stop": self.stop},
                                 "stop > start (axes run in increasing order)")
        step = (b - a) / (self.num - 1)
        frac = Fraction(step).limit_denominator(10**6)
        if frac and abs(float(frac) - step) <= 1e-12 * abs(step):
            k0 = round(a / float(frac))
            if abs(k0 * float(frac) - a) <= 1e-9 * abs(step):
                return Lattice(kind=self.scale, num=frac.numerator, den=frac.denominator, k0=k0)
        return Lattice(kind=self.scale, origin=a, step=step)

    def values(self, name: str = "axis") -> np.ndarray:
        return lattice_values(self.lattice(name), self.num)


def lattice_values(lat: Lattice, n: int, k0: int | None = None) -> np.ndarray:
    """Coordinates of ``n`` lattice points starting at index ``k0`` (default ``lat.k0``)."""
    k = (lat.k0 if k0 is None else k0) + np.arange(n, dtype=np.int64)
    if lat.kind == "explicit":
        raise ValueError("an explicit axis has no lattice")
    raw = (k * lat.num) / lat.den if lat.num else lat.origin + k * lat.step
    return 10.0**raw if lat.kind == "log" else raw.astype(np.float64)


AxisSpec = RangeAxis | list[float]


class GridSpec(BaseModel):
    """A declarative grid: model, fixed parameters, named axes (their order is dim order).

    Examples
    --------
    >>> spec = GridSpec.from_dict({"model": "single_level", "params": {"mu": 0.0},
    ...     "axes": {"eps": {"start": -40, "stop": 40, "num": 801}, "T": [5.0, 7.5]}})
    >>> spec.shape
    (801, 2)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str = "single_level"
    params: dict[str, float] = Field(default_factory=dict)
    axes: dict[str, AxisSpec]
    chunks: dict[str, int] | None = None
    dtype: Literal["float64", "float32"] = "float64"
    name: str | None = None

    @field_validator("axes", mode="before")
    @classmethod
    def _scalars_are_one_value_axes(cls, v):
        if isinstance(v, Mapping):
            return {k: ([x] if isinstance(x, int | float) else x) for k, x in v.items()}
        return v

    def model_post_init(self, __context: Any) -> None:
        self.check()

    # construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GridSpec:
        """Build and validate a spec; errors are :class:`ParameterError`."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            err = exc.errors()[0]
            original = (err.get("ctx") or {}).get("error")
            if isinstance(original, ParameterError):
                raise original from None
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("list[", "Range")))
            raise ParameterError(loc or "spec", err.get("input"), err["msg"]) from None

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> GridSpec:
        text = Path(path).read_text()
        data = yaml.safe_load(text)
        if not isinstance(data, Mapping):
            raise ParameterError("spec", str(path), "a YAML mapping with model, params, axes")
        return cls.from_dict(data)

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> GridSpec:
        p = Path(path_or_text)
        text = p.read_text() if p.suffix == ".json" or p.exists() else str(path_or_text)
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GridSpec:
        """Read a spec from ``.yaml``/``.yml`` or ``.json``."""
        suffix = Path(path).suffix.lower()
        if not Path(path).exists():
            raise ParameterError("spec", str(path), "an existing .yaml or .json file")
        return cls.from_json(path) if suffix == ".json" else cls.from_yaml(path)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    # derived ----------------------------------------------------------------------------
    @property
    def model_obj(self) -> Model:
        return get_model(self.model)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.axes)

    def axis_values(self, name: str) -> np.ndarray:
        ax = self.axes[name]
        if isinstance(ax, RangeAxis):
            return ax.values(name)
        return np.asarray(ax, dtype=np.float64)

    def lattice(self, name: str) -> Lattice:
        ax = self.axes[name]
        return ax.lattice(name) if isinstance(ax, RangeAxis) else Lattice(kind="explicit")

    def coords(self) -> dict[str, np.ndarray]:
        return {name: self.axis_values(name) for name in self.axes}

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(ax.num if isinstance(ax, RangeAxis) else len(ax)
                     for ax in self.axes.values())

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * bytes_per_point(self.model_obj, self.dtype)

    def check(self, max_points: int | None = None) -> None:
        """Validate the whole spec (raises :class:`ParameterError`)."""
        model = get_model(self.model)
        for name in self.axes:
            if name in self.params:
                raise ParameterError(f"params.{name}", self.params[name],
                                     f"no fixed value: {name!r} is also an axis")
        _check_grid_size(model, self.shape, self.dtype, max_points)
        inputs = {k: xr.DataArray(v) for k, v in self.params.items()}
        for name in self.axes:
            inputs[name] = xr.DataArray(self.axis_values(name), dims=(name,))
        validate_inputs(model, inputs, check_size=False, joint="mask")
        if self.chunks:
            for dim, c in self.chunks.items():
                if dim not in self.axes:
                    raise ParameterError(f"chunks.{dim}", c, f"a chunk size for one of the "
                                                         f"axes {', '.join(self.axes)}")
                if not (isinstance(c, int) and c >= 1):
                    raise ParameterError(f"chunks.{dim}", c, "a positive integer")

    def inputs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`phasemap.evaluate` (axes as 1-D arrays)."""
        return {**self.params, **self.coords()}


# --- validation -------------------------------------------------------------------------

def _check_grid_size(model: Model, shape, dtype="float64", max_points=None) -> None:
    limit = max_points_default() if max_points is None else int(max_points)
    points = math.prod(shape)
    if points > limit:
        nbytes = points * bytes_per_point(model, dtype)
        raise GridTooLargeError(
            "grid", f"{points:,} points ({nbytes:,} bytes = {_human_bytes(nbytes)} of outputs)",
            f"at most {limit:,} points (raise it with max_points= or PHASEMAP_MAX_POINTS)")


def _human_bytes(n: int) -> str:
    """``1536 -> '1.5 KiB'``: a size message must stay meaningful for small limits too."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.0f} B" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def as_input(name: str, value: Any) -> xr.DataArray:
    """Normalise one parameter value: scalar -> 0-d, 1-D sequence -> dim ``name``."""
    if isinstance(value, xr.DataArray):
        return value
    if isinstance(value, str | bytes):
        raise ParameterError(name, value, "a number, a 1-D sequence of numbers or a DataArray")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(name, value,
                             "a number, a 1-D sequence of numbers or a DataArray") from None
    if arr.ndim == 0:
        return xr.DataArray(arr)
    if arr.ndim == 1:
        return xr.DataArray(arr, dims=(name,), coords={name: arr})
    raise ParameterError(name, f"array of shape {arr.shape}",
                         "a scalar or a 1-D sequence (use a DataArray for more dimensions)")


def validate_inputs(model: Model | str, inputs: Mapping[str, xr.DataArray],
                    max_points: int | None = None, check_size: bool = True,
                    joint: str = "refuse") -> None:
    """Check parameters against the model: names, ranges, axes, joint constraints, size.

    ``inputs`` maps parameter names to DataArrays (see :func:`as_input`). Dask-backed inputs
    are checked too; only their min/max are computed. ``joint="mask"`` accepts axes on which
    a joint constraint fails at some points (the store stores those points as NaN, labels
    -1, e.g. the ``|dT| >= 2T`` corner of a (T, dT) plane) and refuses only a grid with no
    valid point; ``"refuse"`` (evaluation in memory) refuses any invalid point.
    """
    model = get_model(model)
    known = set(model.param_names)
    for name in inputs:
        if name not in known:
            value = inputs[name].values.tolist() if inputs[name].size < 5 else "[...]"
            raise ParameterError(name, value,
                                 f"a parameter of model {model.name!r}: "
                                 f"{', '.join(model.param_names)}")
    for name, da in inputs.items():
        p = model.parameter(name)
        values = np.asarray(da.values, dtype=np.float64)
        bad = p.violates(values)
        if bad.any():
            raise ParameterError(name, float(values[bad].flat[0]), p.allowed())
        if da.ndim == 1 and da.dims[0] == name:
            diffs = np.diff(values)
            if (diffs == 0).any():
                dup = values[1:][diffs == 0][0]
                raise ParameterError(name, float(dup), "axis values without duplicates")
            if (diffs < 0).any():
                raise ParameterError(name, values.tolist() if values.size < 8 else "unsorted",
                                     "axis values in increasing order")
    defaults = model.defaults()
    for con in model.constraints:
        arrays = [inputs.get(n) for n in con.params]
        if all(a is None or (a.ndim == 0 and a.chunks is None) for a in arrays):
            # all fixed values: checked on plain floats (xarray arithmetic costs ~1 ms)
            fixed = {n: float(defaults[n] if a is None else a.values)
                     for n, a in zip(con.params, arrays, strict=True)}
            if bool(np.any(con.check(*(np.float64(v) for v in fixed.values())))):
                raise ParameterError(",".join(con.params), fixed, con.allowed)
            continue
        full = [xr.DataArray(defaults[n]) if a is None else a
                for n, a in zip(con.params, arrays, strict=True)]
        where: Any = con.check(*full)  # a DataArray for DataArray inputs
        if joint == "mask" and not bool(where.all()):
            continue  # a grid crossing the constraint: its invalid points are masked
        if bool(where.any()):
            first = {n: float(np.asarray(a.broadcast_like(where).values)[where.values].flat[0])
                     for n, a in zip(con.params, full, strict=True)}
            raise ParameterError(",".join(con.params), first, con.allowed)
    if check_size:
        sizes: dict[str, int] = {}
        for da in inputs.values():
            sizes.update({str(d): n for d, n in da.sizes.items()})
        _check_grid_size(model, tuple(sizes.values()), "float64", max_points)


def grid_index(name: str, coord, value: float, hint: str = "") -> int:
    """Index of ``value`` in the axis values ``coord`` (to 1e-9 relative), else a
    :class:`ParameterError` naming the nearest grid value (``hint`` is appended to it)."""
    coord = np.asarray(coord, dtype=np.float64)
    i = int(np.argmin(np.abs(coord - value)))
    if abs(coord[i] - value) > 1e-9 * max(1.0, abs(value)):
        raise ParameterError(name, value, f"a grid value (nearest is {coord[i]:g}){hint}")
    return i


def canonical_chunks(sizes: Mapping[str, int], fixed: Mapping[str, int] | None = None,
                     explicit: set[str] | frozenset[str] = frozenset(),
                     target: int = TARGET_CHUNK_POINTS) -> dict[str, int]:
    """Chunk sizes that depend only on the axes' kinds and sizes, never on their ranges.

    Explicit-value axes get chunk 1; lattice axes get powers of two, grown in turn from the
    last dimension until a chunk holds about ``target`` points. ``fixed`` overrides any dim.
    """
    fixed = dict(fixed or {})
    chunks = {d: (fixed.get(d) or 1) for d in sizes}
    growable = [d for d in reversed(list(sizes)) if d not in fixed and d not in explicit]
    while math.prod(chunks.values()) < target:
        grown = False
        for d in growable:
            if chunks[d] < sizes[d] and math.prod(chunks.values()) < target:
                chunks[d] *= 2
                grown = True
        if not grown:
            break
    return chunks
