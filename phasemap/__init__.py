"""phasemap: transport phase maps of quantum-dot thermoelectric devices.

The physics is that of Y. Zhang and X. Lü, "Anomalous thermodiffusion, absolute negative
mobility and reverse heat transport in a single quantum dot", Phys. Rev. E 111, 044112 (2025).

Public API::

    phasemap.evaluate(model="single_level", **params) -> xarray.Dataset
    phasemap.threshold(along, model="single_level", bracket=(lo, hi), quantity="J_L", **params)
    phasemap.GridSpec.from_yaml(path)
    phasemap.compute(spec, store=None, client=None) -> xarray.Dataset   (the Zarr cache)
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import accessor as _accessor  # noqa: F401  (registers ds.phasemap)
from .errors import GridTooLargeError, ParameterError, PhasemapError, StoreError
from .evaluate import evaluate, evaluate_spec
from .grid import GridSpec, RangeAxis
from .models import Model, Parameter, available_models, get_model, register
from .regimes import MACHINE_LABELS, REGIME_LABELS, classify
from .store import Store, compute
from .thresholds import threshold

__all__ = [
    "MACHINE_LABELS",
    "REGIME_LABELS",
    "GridSpec",
    "GridTooLargeError",
    "Model",
    "Parameter",
    "ParameterError",
    "PhasemapError",
    "RangeAxis",
    "Store",
    "StoreError",
    "__version__",
    "available_models",
    "classify",
    "compute",
    "evaluate",
    "evaluate_spec",
    "get_model",
    "register",
    "threshold",
]
