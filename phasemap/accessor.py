"""The ``ds.phasemap`` accessor: labels as strings, regime fractions, regime boundaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .errors import ParameterError
from .regimes import LENSES, labels_of


@xr.register_dataset_accessor("phasemap")
class PhasemapAccessor:
    """Regime helpers on any dataset with ``regime``/``machine`` label variables."""

    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def _codes(self, lens: str) -> xr.DataArray:
        if lens not in LENSES:
            raise ParameterError("lens", lens, f"one of {', '.join(LENSES)}")
        if lens not in self._ds:
            raise ParameterError("lens", lens, f"a label variable present in the dataset "
                                               f"(has {', '.join(map(str, self._ds.data_vars))})")
        return self._ds[lens]

    def labels(self, lens: str = "regime") -> xr.DataArray:
        """The labels of ``lens`` as strings, same dims and coords as the codes (computed)."""
        codes = self._codes(lens)
        out = xr.apply_ufunc(labels_of, codes.compute(), kwargs={"lens": lens})
        out.name = f"{lens}_label"
        out.attrs = {"long_name": codes.attrs.get("long_name", lens)}
        return out

    def fractions(self, lens: str = "regime") -> pd.Series:
        """Fraction of points in each label of ``lens`` (every label listed, zeros included).

        Counts are made chunk by chunk, so this is safe on a lazy grid of any size.
        """
        codes = self._codes(lens)
        names = LENSES[lens]
        data = codes.data
        if hasattr(data, "map_blocks"):
            import dask.array as da

            counts = da.bincount(data.ravel().astype(np.int64), minlength=len(names)).compute()
        else:
            counts = np.bincount(np.asarray(data).ravel().astype(np.int64), minlength=len(names))
        total = counts.sum()
        return pd.Series(counts[: len(names)] / max(total, 1), index=list(names), name=lens)

    def boundaries(self, axis: str, lens: str = "regime") -> pd.DataFrame:
        """Where the label changes between neighbouring points along ``axis``.

        Returns one row per change: the other coordinates, the two ``axis`` values bracketing
        the change (``lower``, ``upper``) and the labels on each side (``from``, ``to``).
        Locate a boundary precisely with :func:`phasemap.threshold`.
        """
        codes = self._codes(lens)
        if axis not in codes.dims:
            raise ParameterError("axis", axis,
                                 f"one of the dimensions {', '.join(map(str, codes.dims))}")
        codes = codes.compute().transpose(..., axis)
        values = np.asarray(codes.values)
        coord = np.asarray(codes[axis].values)
        change = values[..., 1:] != values[..., :-1]
        idx = np.nonzero(change)
        rows = {}
        for dim, ix in zip(codes.dims[:-1], idx[:-1], strict=True):
            rows[dim] = np.asarray(codes[dim].values)[ix] if dim in codes.coords else ix
        k = idx[-1]
        rows["lower"] = coord[k]
        rows["upper"] = coord[k + 1]
        rows["from"] = labels_of(values[idx], lens)
        rows["to"] = labels_of(values[(*idx[:-1], k + 1)], lens)
        return pd.DataFrame(rows)
