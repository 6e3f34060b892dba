"""Parameters or a grid spec -> a lazy, CF-annotated :class:`xarray.Dataset`.

This is where dimensions, coordinates and attributes are built around a model's pure kernel.
Small grids are computed at once with numpy; large ones (or any chunked/dask input) become a
dask graph with one kernel call per chunk, so evaluate never computes a large grid eagerly.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import math
from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from . import __version__
from . import accessor as _accessor  # noqa: F401  (datasets carry ds.phasemap)
from .cluster import usable_cores
from .errors import ParameterError
from .grid import GridSpec, as_input, canonical_chunks, validate_inputs
from .models import Model, get_model
from .variables import apply_attrs, attrs_for

#: Above this many points evaluate returns a dask-backed (lazy) dataset.
LAZY_POINTS = 2**22


#: An eager grid at least this large is split over a thread per core (the kernels release
#: the GIL); smaller ones run in the calling thread.
PARALLEL_POINTS = 2**16

_POOL: concurrent.futures.ThreadPoolExecutor | None = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ThreadPoolExecutor(usable_cores(), thread_name_prefix="phasemap")
    return _POOL


def _block_kernel(model: Model, names: tuple[str, ...], dtype: np.dtype,
                  parallel: bool = False):
    def kernel(*arrays):
        args = model.defaults()
        args.update(zip(names, arrays, strict=True))
        params = {k: np.asarray(args[k], dtype=np.float64) for k in model.param_names}
        if parallel:
            out = _parallel_kernel(model, params)
        else:
            out = model.kernel(**params)
        with np.errstate(over="ignore"):  # float32 storage: beyond 3.4e38 is inf, as asked
            return tuple(out[o].astype(model.dtype_of(o, dtype), copy=False)
                         for o in model.outputs)
    return kernel


def _parallel_kernel(model: Model, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``model.kernel(**params)`` split along the longest axis over a thread per core.

    Each piece is the same elementwise kernel on a slab of the grid, so the numbers are
    bit-identical to one call. Kernels that take ``out=`` write straight into the result.
    """
    shape = np.broadcast_shapes(*(a.shape for a in params.values()))
    size = math.prod(shape)
    threads = usable_cores()
    if threads < 2 or size < PARALLEL_POINTS or not shape:
        return model.kernel(**params)
    axis = int(np.argmax(shape))
    # a few pieces per thread, so a busy core does not hold the others up
    bounds = np.linspace(0, shape[axis], min(shape[axis], 4 * threads) + 1).astype(int)
    pieces = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
    if len(pieces) < 2:
        return model.kernel(**params)
    nd = len(shape)

    def cut(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
        a = a.reshape((1,) * (nd - a.ndim) + a.shape)
        if a.shape[axis] == 1:
            return a
        index = [slice(None)] * nd
        index[axis] = slice(lo, hi)
        return a[tuple(index)]

    def region(lo: int, hi: int) -> tuple[slice, ...]:
        index = [slice(None)] * nd
        index[axis] = slice(lo, hi)
        return tuple(index)

    out = ({o: np.empty(shape, dtype=model.dtype_of(o)) for o in model.outputs}
           if model.kernel_out else None)

    def run(lo: int, hi: int):
        piece = {k: cut(v, lo, hi) for k, v in params.items()}
        if out is not None:
            model.kernel(out={o: a[region(lo, hi)] for o, a in out.items()}, **piece)
            return None
        return model.kernel(**piece)

    results = list(_pool().map(lambda p: run(*p), pieces))
    if out is not None:
        return out
    merged = {}
    for o in model.outputs:
        first = np.asarray(results[0][o])
        merged[o] = np.empty(shape, dtype=first.dtype)
        for (lo, hi), res in zip(pieces, results, strict=True):
            merged[o][region(lo, hi)] = res[o]
    return merged


def _float_dtype(dtype: Any) -> np.dtype:
    """The storage dtype of float outputs: float64 or float32, else a ParameterError."""
    try:
        ok = dtype is not None and np.dtype(dtype) in (np.float64, np.float32)
    except TypeError:
        ok = False
    if not ok:
        raise ParameterError("dtype", dtype, "'float64' or 'float32'")
    return np.dtype(dtype)


def evaluate(model: str | Model = "single_level", *, chunks: Mapping[str, int] | str | None = None,
             max_points: int | None = None, dtype: str = "float64",
             **params: Any) -> xr.Dataset:
    """Evaluate a model over any grid of its parameters.

    Parameters
    ----------
    model : str or Model
        Registered model name (``"single_level"``, ``"pauli"``, ...).
    chunks : mapping of dim to size, or "auto", optional
        Force a dask-backed result with these chunks. By default grids above ``LAZY_POINTS``
        points get canonical chunks (:func:`phasemap.grid.canonical_chunks`) and stay lazy.
    max_points : int, optional
        Size limit for this call (default ``PHASEMAP_MAX_POINTS`` or 1e10).
    dtype : {"float64", "float32"}
        Storage type of the float outputs (the kernel always computes in float64).
    **params
        Model parameters. A scalar is fixed; a 1-D sequence becomes a dimension named after
        the parameter (in call order) with a coordinate; a DataArray broadcasts by name, so
        DataArrays sharing a dimension such as ``point`` give point-wise evaluation. Missing
        parameters take the model's defaults.

    Returns
    -------
    xarray.Dataset
        The model's outputs (``model.outputs``: quantities as floats, labels as int8 with CF
        flags); fixed parameters become scalar coordinates, and the coordinate ``valid``
        (int8, CF flags) marks the points inside the model's validity domain
        (:func:`add_validity`). Attributes name the model, its version and its reference.
    """
    m = get_model(model)
    fdtype = _float_dtype(dtype)
    inputs = {name: as_input(name, value) for name, value in params.items()}
    validate_inputs(m, inputs, max_points=max_points)
    for name in m.param_names:
        inputs.setdefault(name, xr.DataArray(np.float64(m.defaults()[name])))

    sizes: dict[str, int] = {}
    for arr in inputs.values():
        for d, n in arr.sizes.items():
            sizes.setdefault(str(d), n)
    if isinstance(chunks, Mapping):
        for dim, c in chunks.items():  # the same rule as GridSpec.check
            if dim not in sizes:
                raise ParameterError(f"chunks.{dim}", c, "a chunk size for one of the "
                                     f"dimensions {', '.join(sizes) or '(none)'}")
            if isinstance(c, bool) or not (isinstance(c, int | np.integer) and (c >= 1 or c == -1)):
                raise ParameterError(f"chunks.{dim}", c, "a positive integer (or -1: whole dim)")
    elif chunks is not None and chunks != "auto":
        raise ParameterError("chunks", chunks, "a mapping of dimension to chunk size, or 'auto'")
    lazy = (chunks is not None or math.prod(sizes.values()) > LAZY_POINTS
            or any(a.chunks is not None for a in inputs.values()))
    if lazy:
        sizes_of: Mapping[str, int] = (canonical_chunks(sizes) if chunks is None
                                       or isinstance(chunks, str) else chunks)
        inputs = {k: (v.chunk({d: sizes_of.get(str(d), -1) for d in v.dims}) if v.ndim else v)
                  for k, v in inputs.items()}

    names = tuple(inputs)
    out_dtypes = [m.dtype_of(o, fdtype) for o in m.outputs]
    results = xr.apply_ufunc(
        _block_kernel(m, names, fdtype, parallel=not lazy),
        *[inputs[n] for n in names],
        output_core_dims=[()] * len(m.outputs),
        dask="parallelized",
        output_dtypes=out_dtypes,
        keep_attrs=False,
    )
    # One Dataset built from variables: assigning coordinates one at a time re-aligns the
    # whole Dataset each time (~1 ms apiece, most of evaluate's fixed cost).
    coords = {str(k): v.variable for k, v in results[0].coords.items()}
    pointwise = {}
    for name, arr in inputs.items():
        if arr.ndim == 0:
            coords[name] = (arr.compute() if arr.chunks else arr).variable
        elif arr.ndim == 1 and arr.dims[0] == name:
            # The index coordinate is numpy even when the data were chunked above: reading
            # it (not ``arr.values``) keeps a lazy evaluation from computing anything.
            coords[name] = xr.Variable(
                (name,), np.asarray(arr[name].values if name in arr.coords else arr.values))
        elif name not in coords:  # point-wise inputs: keep them beside their dims
            pointwise[name] = arr
    ds = xr.Dataset({o: r.variable for o, r in zip(m.outputs, results, strict=True)},
                    coords=coords)
    for name, arr in pointwise.items():
        ds.coords[name] = arr
    ds = ds.transpose(*[d for d in sizes if d in ds.dims])
    ds = add_validity(ds, m)
    return apply_attrs(ds, {
        "model": m.name,
        "model_version": m.version,
        "phasemap_version": __version__,
        "title": f"phasemap evaluation of model {m.name}",
        "references": m.references,
    }, model=m)


def add_validity(ds: xr.Dataset, model: str | Model) -> xr.Dataset:
    """Add the coordinate ``valid`` (int8, CF flags: 1 inside the model's validity domain).

    Computed from the parameters alone (coordinates of ``ds``, the model's defaults for the
    ones it lacks), so any dataset of the model gets it, whether evaluated or read from the
    store, and it spans only the dimensions of the parameters it depends on. A lazy
    parameter gives a lazy flag. Models without a declared domain are valid everywhere.
    """
    m = get_model(model)
    if m.validity is None:
        flag = xr.DataArray(np.int8(1))
    else:
        defaults = m.defaults()
        args = {n: ds[n] if n in ds.coords else xr.DataArray(np.float64(defaults[n]))
                for n in m.validity.params}
        flag = xr.DataArray(m.validity.check(**args)).astype(np.int8)
        flag = flag.drop_vars([c for c in flag.coords if c not in flag.dims])
        flag = flag.transpose(*[d for d in ds.dims if d in flag.dims])
    ds = ds.assign_coords(valid=flag)
    ds["valid"].attrs.update(attrs_for("valid"))
    ds["valid"].attrs["comment"] = (m.validity.description if m.validity is not None
                                    else "no validity domain declared: valid everywhere")
    return ds


def evaluate_spec(spec: GridSpec, *, lazy: bool | None = None) -> xr.Dataset:
    """Evaluate a :class:`GridSpec` (axes in spec order; spec chunks honoured)."""
    chunks = spec.chunks
    if lazy or (lazy is None and spec.size > LAZY_POINTS):
        chunks = canonical_chunks(dict(zip(spec.dims, spec.shape, strict=True)),
                                  fixed=spec.chunks or {})
    return evaluate(spec.model, chunks=chunks, dtype=spec.dtype, **spec.inputs())


def is_lazy(ds: xr.Dataset) -> bool:
    """True when every data variable of ``ds`` is dask-backed."""
    return all(isinstance(v.data, da.Array) for v in ds.data_vars.values())
