"""phasemap: transport phase maps of quantum-dot thermoelectric devices.

The physics is that of Y. Zhang and X. Lü, "Anomalous thermodiffusion, absolute negative
mobility and reverse heat transport in a single quantum dot", Phys. Rev. E 111, 044112 (2025).

Public API::

    phasemap.evaluate(model="single_level", **params) -> xarray.Dataset
    phasemap.threshold(along, model="single_level", bracket=(lo, hi), quantity="J_L", **params)
    phasemap.max_power(along, model="single_level", bracket=None, **params) -> xarray.Dataset
    phasemap.linear_response(model="single_level", **params) -> xarray.Dataset
    phasemap.GridSpec.from_yaml(path)
    phasemap.compute(spec, store=None, client=None) -> xarray.Dataset   (the Zarr cache)

Names are imported on first use (PEP 562), so ``import phasemap`` and a CLI call answered
from the cache do not pay for xarray, dask, zarr and numba until they are needed. Every
dataset phasemap returns has the ``ds.phasemap`` accessor; to use it on a dataset read by
other means, ``import phasemap.accessor`` (any public name of phasemap also registers it).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "GridTooLargeError": "errors",
    "ParameterError": "errors",
    "PhasemapError": "errors",
    "StoreError": "errors",
    "evaluate": "evaluation",
    "evaluate_spec": "evaluation",
    "GridSpec": "grid",
    "RangeAxis": "grid",
    "Model": "models",
    "Parameter": "models",
    "available_models": "models",
    "get_model": "models",
    "register": "models",
    "MACHINE_LABELS": "regimes",
    "REGIME_LABELS": "regimes",
    "classify": "regimes",
    "Store": "store",
    "compute": "store",
    "threshold": "thresholds",
    "max_power": "optimize",
    "linear_response": "optimize",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'phasemap' has no attribute {name!r}")
    if module != "errors":
        importlib.import_module(".accessor", __name__)  # registers ds.phasemap
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
