"""Reading stored datasets: a point, a slice, a slice written to a file, spec files.

The library half of ``phasemap query`` and of the service's ``/point`` and ``/slice``
endpoints. Both adapters call these functions and never import each other; each turns the
errors raised here into its own words (the CLI says ``--at`` and ``--interp``, HTTP says
``interp=true``). Errors are :class:`~phasemap.errors.ParameterError` subclasses whose
attributes say what went wrong, so an adapter never parses a message:

- :class:`OffGrid` -- a value between grid points (an adapter may suggest interpolation);
- :class:`MissingCoordinates` -- a point query that leaves dimensions unset;
- :class:`FixedParameter` -- a value for a parameter the dataset holds fixed, at another value;
- :class:`SpecFileError` -- a spec or pipeline file that cannot be read (not UTF-8, a YAML or
  JSON syntax error with its line and column, not a mapping).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .errors import ParameterError

#: ``progress(done_shards, total_shards, points_computed)``, as :func:`phasemap.compute` calls it.
ProgressFn = Callable[[int, int, int], None]


class OffGrid(ParameterError):
    """``value`` of dimension ``param`` is not a grid value; ``nearest`` is the closest one."""

    def __init__(self, param: str, value: float, nearest: float):
        self.nearest = nearest
        super().__init__(param, value, f"a grid value (nearest is {nearest:g})")


class MissingCoordinates(ParameterError):
    """A point query gave no value for the dimensions ``missing``."""

    def __init__(self, missing: list[str], given: Mapping[str, float]):
        self.missing = list(missing)
        super().__init__(",".join(self.missing), dict(given),
                         f"a value for every dimension of the dataset (missing "
                         f"{', '.join(self.missing)})")


class FixedParameter(ParameterError):
    """``param`` is fixed at ``fixed`` in the dataset and a different ``value`` was asked."""

    def __init__(self, param: str, value: float, fixed: float):
        self.fixed = fixed
        super().__init__(param, value, f"{fixed:g}: {param} is fixed at {fixed:g} in this "
                                       "dataset, not a dimension")


class SpecFileError(ParameterError):
    """A spec or pipeline file that cannot be read as one (``value`` is ``file[:line:col]``)."""


# --- spec and pipeline files ------------------------------------------------------------

def read_text(path: Path, what: str = "spec") -> str:
    """The file's text, decoded as UTF-8 (a :class:`SpecFileError` naming the byte if not)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecFileError(what, f"{path}:{line}:{col}",
                            f"a UTF-8 text file (byte 0x{data[exc.start]:02x} is not UTF-8)"
                            ) from None


def read_mapping(path: Path, what: str = "spec") -> Any:
    """Parse a YAML or JSON file; a syntax error is one :class:`SpecFileError` naming the
    file, the line and the column (1-based)."""
    import yaml

    path = Path(path)
    text = read_text(path, what)
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecFileError(what, f"{path}:{exc.lineno}:{exc.colno}",
                                f"valid JSON ({exc.msg})") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise SpecFileError(what, where, f"valid YAML ({problem})") from None
    except yaml.YAMLError as exc:
        raise SpecFileError(what, str(path), f"valid YAML ({' '.join(str(exc).split())})"
                            ) from None


def load_spec(path: str | Path):
    """A :class:`~phasemap.grid.GridSpec` from a ``.yaml``/``.yml``/``.json`` file, every
    failure (missing file, encoding, syntax, shape, values) a :class:`ParameterError`."""
    from .grid import GridSpec

    path = Path(path)
    if not path.is_file():
        raise SpecFileError("spec", str(path), "an existing .yaml, .yml or .json file")
    data = read_mapping(path)
    if not isinstance(data, Mapping):
        raise SpecFileError("spec", str(path), "a mapping with model, params and axes "
                                               f"(the file holds a {type(data).__name__})")
    return GridSpec.from_dict(data)


def pipeline_specs(path: str | Path) -> list[Path]:
    """The spec files a pipeline file lists under ``specs`` (paths or globs relative to it),
    depth first; a spec file stands for itself."""
    path = Path(path)
    if not path.is_file():
        raise SpecFileError("pipeline", str(path), "an existing pipeline or spec YAML file")
    data = read_mapping(path, "pipeline")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecFileError("pipeline", str(path), "a YAML mapping with a list under 'specs' "
                                                   f"(the file holds a {type(data).__name__})")
    if "axes" in data:
        return [path]
    entries = data.get("specs") or data.get("pipelines") or []
    if isinstance(entries, str):
        entries = [entries]
    if not entries or not isinstance(entries, list):
        raise ParameterError("pipeline", str(path), "a YAML with a list under 'specs' "
                                                    "(paths relative to the pipeline file)")
    specs: list[Path] = []
    for entry in entries:
        if not isinstance(entry, str):
            raise ParameterError("specs", entry, "a path or glob of a spec file")
        p = (path.parent / entry).resolve()
        matches = sorted(p.parent.glob(p.name)) if any(c in p.name for c in "*?[") else [p]
        if not matches:
            raise ParameterError("specs", entry, f"a path or glob (relative to {path}) that "
                                                 "matches at least one spec file")
        for m in matches:
            specs.extend(pipeline_specs(m))
    return specs


_PYDANTIC = re.compile(r"^(Input|Value) should (?:be )?", re.I)


def plain_words(exc: ParameterError) -> ParameterError:
    """``exc`` with a validator's phrasing ("Input should be greater than or equal to 1")
    restated as what is allowed ("greater than or equal to 1"); other errors unchanged."""
    allowed = str(exc.allowed)
    if not _PYDANTIC.match(allowed):
        return exc
    allowed = _PYDANTIC.sub("", allowed).rstrip(".")
    allowed = {"a valid integer": "an integer", "a valid number": "a number",
               "a valid dictionary": "a mapping", "a valid list": "a list"}.get(allowed, allowed)
    return ParameterError(exc.param, exc.value, allowed, exc.detail)


# --- points and slices -------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _spec_from_json(text: str):
    from .grid import GridSpec

    return GridSpec.from_dict(json.loads(text))


def _axis(ds, name: str):
    return ds.indexes[name] if name in ds.indexes else ds[name].values


def check_point(ds, at: Mapping[str, float]) -> dict[str, float]:
    """The dimensions of ``ds`` in ``at``, checked: every dimension given, parameters that are
    fixed in the dataset only at their value, every value inside the grid."""
    import numpy as np

    for name, value in at.items():
        if name in ds.dims:
            continue
        if name in ds.coords and np.ndim(ds.coords[name]) == 0:
            fixed = float(ds.coords[name])
            if fixed == value or np.isclose(fixed, value, rtol=1e-9, atol=0):
                continue
            raise FixedParameter(name, value, fixed)
        raise ParameterError(name, value, f"a dimension of the dataset: "
                                          f"{', '.join(map(str, ds.dims)) or 'none'}")
    missing = [str(d) for d in ds.dims if d not in at]
    if missing:
        raise MissingCoordinates(missing, at)
    sel = {k: float(v) for k, v in at.items() if k in ds.dims}
    for name, value in sel.items():
        coord = _axis(ds, name)
        lo, hi = float(coord.min()), float(coord.max())
        if not lo <= value <= hi:
            raise ParameterError(name, value, f"a value inside the grid [{lo:g}, {hi:g}]")
    return sel


def grid_position(name: str, coord, value: float) -> int:
    """Index of ``value`` among the axis values ``coord`` (to 1e-9 relative), else
    :class:`OffGrid` naming the nearest grid value."""
    import numpy as np

    coord = np.asarray(coord, dtype=np.float64)
    i = int(np.argmin(np.abs(coord - value)))
    if abs(coord[i] - value) > 1e-9 * max(1.0, abs(value)):
        raise OffGrid(name, value, float(coord[i]))
    return i


def point_record(ds, at: Mapping[str, float], interp: bool = False) -> dict[str, Any]:
    """Values and both labels of ``ds`` at a point.

    Parameters
    ----------
    ds : xarray.Dataset
        A dataset of :func:`phasemap.evaluate` or a stored one (:meth:`Store.open`).
    at : mapping of str to float
        A value for every dimension (grid values unless ``interp``); parameters fixed in the
        dataset may be given and must then equal their value.
    interp : bool
        Interpolate the float outputs linearly between grid points (labels are those of the
        nearest grid point).

    Returns
    -------
    dict
        The point's coordinates, every float output and the labels as names. A stored
        dataset's grid point is read straight from its shard (no dask graph).
    """
    from .models import get_model

    model = get_model(ds.attrs["model"])
    flags = {name: model.output(name).flags for name in model.labels if name in ds}

    def name_of(label: str, code: Any) -> str | None:
        k = int(code)
        return flags[label][k] if 0 <= k < len(flags[label]) else None

    sel = check_point(ds, at)
    if interp:
        floats = ds[[v for v in ds.data_vars if ds[v].dtype.kind == "f"]]
        point = floats.interp(sel).compute()
        labels = ds[list(flags)].sel(sel, method="nearest").compute()
    else:
        index = {name: grid_position(name, _axis(ds, name), value)
                 for name, value in sel.items()}
        if "store" in ds.attrs and "spec" in ds.attrs:
            from .store import Store

            found = Store(ds.attrs["store"]).point(_spec_from_json(ds.attrs["spec"]), sel)
            values = found["values"]
            record: dict[str, Any] = {k: float(found["coords"][k]) for k in sel}
            record.update({k: float(v) for k, v in values.items() if k not in flags})
            record.update({k: name_of(k, values[k]) for k in flags if k in values})
            return record
        point = labels = ds.isel(index).compute()
    record = {k: float(point[k]) for k in sel}
    for var in point.data_vars:
        if point[var].dtype.kind == "f":
            record[str(var)] = float(point[var])
    for label in flags:
        if label in labels:
            record[label] = name_of(label, labels[label])
    return record


def select_slice(ds, fixed: Mapping[str, float]):
    """``ds`` with the dimensions in ``fixed`` fixed at grid values (:class:`OffGrid` for a
    value between grid points; a parameter fixed in the dataset may be named at its value)."""
    import numpy as np

    index = {}
    for name, value in fixed.items():
        if name not in ds.dims:
            if name in ds.coords and np.ndim(ds.coords[name]) == 0:
                held = float(ds.coords[name])
                if np.isclose(held, value, rtol=1e-9, atol=1e-12):
                    continue
                raise FixedParameter(name, value, held)
            raise ParameterError(name, value, f"a dimension of the dataset: "
                                              f"{', '.join(map(str, ds.dims)) or 'none'}")
        index[name] = grid_position(name, _axis(ds, name), value)
    return ds.isel(index)


def slice_points(sub) -> int:
    """Number of points of a slice (1 for a single point)."""
    import math

    return math.prod(sub.sizes[d] for d in sub.dims)


#: Suffixes :func:`write_slice` understands.
SLICE_FORMATS = (".nc", ".csv")


def write_slice(sub, path: str | Path) -> None:
    """Write a slice as NetCDF (CF attributes kept) or CSV (labels also as names).

    NetCDF goes through xarray's ``h5netcdf`` engine (``h5py`` is a dependency of phasemap);
    attributes that are not strings or numbers (the provenance dicts) are left out.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SLICE_FORMATS:
        raise ParameterError("out", str(path), "a file name ending in .nc or .csv")
    sub = sub.compute()
    if suffix == ".nc":
        clean = sub.copy()
        clean.attrs = {k: v for k, v in sub.attrs.items() if isinstance(v, str | int | float)}
        clean.to_netcdf(path)
    else:
        frame = sub.to_dataframe()
        for lens in ("regime", "machine"):
            if lens in sub:
                frame[f"{lens}_label"] = sub.phasemap.labels(lens).to_series().values
        frame.to_csv(path)
