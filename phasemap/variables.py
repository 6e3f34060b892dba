"""The one table of metadata for every parameter and output phasemap writes.

Natural units as in Zhang & Lü, Phys. Rev. E 111, 044112 (2025): k_B = e = hbar = 1, energies
in an arbitrary unit ``E0`` and rates in units of ``gamma0`` (the paper's gamma = 1 is
``gamma_L = gamma_R = 2 gamma0``). :func:`apply_attrs` is the only place attributes are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import xarray as xr

from .regimes import MACHINE_LABELS, REGIME_LABELS

UNITS_CONVENTION = (
    "natural units k_B = e = hbar = 1: energies, temperatures and biases in E0, "
    "rates in gamma0"
)

#: name -> CF attributes. Parameters (coordinates) first, then outputs.
VARIABLES: dict[str, dict[str, Any]] = {
    "eps": {"units": "E0", "long_name": "dot level energy ε", "symbol": "ε"},
    "T": {"units": "E0", "long_name": "mean temperature (T_L + T_R)/2", "symbol": "T"},
    "dT": {"units": "E0", "long_name": "temperature difference T_L - T_R", "symbol": "ΔT"},
    "dV": {"units": "E0", "long_name": "bias voltage (mu_L - mu_R)/e", "symbol": "ΔV"},
    "mu": {"units": "E0", "long_name": "mean chemical potential", "symbol": "μ"},
    "gamma_L": {"units": "gamma0", "long_name": "bare tunnelling rate, left lead",
                "symbol": "γ_L"},
    "gamma_R": {"units": "gamma0", "long_name": "bare tunnelling rate, right lead",
                "symbol": "γ_R"},
    "J_L": {"units": "gamma0", "long_name": "particle current out of the left reservoir",
            "symbol": "J_L"},
    "Q_L": {"units": "E0 gamma0", "long_name": "heat flow out of the left reservoir",
            "symbol": "Q_L"},
    "Q_R": {"units": "E0 gamma0", "long_name": "heat flow into the right reservoir",
            "symbol": "Q_R"},
    "P": {"units": "E0 gamma0",
          "long_name": "electrical power absorbed by the dot (negative: power produced)",
          "symbol": "P"},
    "s": {"units": "gamma0", "long_name": "entropy production rate (k_B = 1)",
          "symbol": "σ"},
    "p1": {"units": "1", "long_name": "occupation probability of the filled dot",
           "symbol": "p_1"},
    "regime": {
        "long_name": "transport regime (paper's lens, forward frame)",
        "flag_values": list(range(len(REGIME_LABELS))),
        "flag_meanings": " ".join(REGIME_LABELS),
    },
    "machine": {
        "long_name": "thermodynamic machine (forward frame)",
        "flag_values": list(range(len(MACHINE_LABELS))),
        "flag_meanings": " ".join(MACHINE_LABELS),
    },
    "valid": {
        "long_name": "inside the domain where the model's approximation holds",
        "flag_values": [0, 1],
        "flag_meanings": "approximation_not_valid approximation_valid",
    },
}

LABEL_VARIABLES = ("regime", "machine")


def attrs_for(name: str) -> dict[str, Any]:
    """CF attributes of ``name`` (a copy; empty for unknown names)."""
    attrs = dict(VARIABLES.get(name, {}))
    if "flag_values" in attrs:
        import numpy as np

        attrs["flag_values"] = np.arange(len(attrs["flag_values"]), dtype=np.int8)
    return attrs


def apply_attrs(ds: xr.Dataset, extra: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Attach the table's attributes to every known variable and coordinate of ``ds``."""
    for name in list(ds.variables):
        attrs = attrs_for(str(name))
        if attrs:
            ds[name].attrs.update(attrs)
    ds.attrs.setdefault("Conventions", "CF-1.10")
    ds.attrs.setdefault("units_convention", UNITS_CONVENTION)
    if extra:
        ds.attrs.update(extra)
    return ds


def axis_label(name: str, attrs: Mapping[str, Any] | None = None) -> str:
    """Human label such as ``"ΔT [E0]"`` for plots, from attrs or the table."""
    attrs = dict(attrs or {}) or VARIABLES.get(name, {})
    symbol = attrs.get("symbol", name)
    units = attrs.get("units")
    return f"{symbol} [{units}]" if units and units != "1" else str(symbol)
