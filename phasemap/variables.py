"""The one table of metadata for every parameter and output phasemap writes.

Natural units as in Zhang & Lü, Phys. Rev. E 111, 044112 (2025): k_B = e = hbar = 1, energies
in an arbitrary unit ``E0`` and rates in units of ``gamma0`` (the paper's gamma = 1 is
``gamma_L = gamma_R = 2 gamma0``). :func:`apply_attrs` is the only place attributes are set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import xarray as xr

from .physics.merit import MERIT_FLAGS
from .regimes import MACHINE_LABELS, REGIME_LABELS

UNITS_CONVENTION = (
    "natural units k_B = e = hbar = 1: energies, temperatures and biases in E0, "
    "rates in gamma0"
)

#: name -> CF attributes of the quantities shared by many models: parameters (coordinates,
#: ``kind: parameter``) first, then outputs. A model names these outputs by name and declares
#: its own (:class:`phasemap.models.Output`); its declarations take precedence.
VARIABLES: dict[str, dict[str, Any]] = {
    "eps": {"units": "E0", "long_name": "dot level energy ε", "symbol": "ε",
            "kind": "parameter"},
    "T": {"units": "E0", "long_name": "mean temperature (T_L + T_R)/2", "symbol": "T",
          "kind": "parameter"},
    "dT": {"units": "E0", "long_name": "temperature difference T_L - T_R", "symbol": "ΔT",
           "kind": "parameter"},
    "dV": {"units": "E0", "long_name": "bias voltage (mu_L - mu_R)/e", "symbol": "ΔV",
           "kind": "parameter"},
    "mu": {"units": "E0", "long_name": "mean chemical potential", "symbol": "μ",
           "kind": "parameter"},
    "gamma_L": {"units": "gamma0", "long_name": "bare tunnelling rate, left lead",
                "symbol": "γ_L", "kind": "parameter"},
    "gamma_R": {"units": "gamma0", "long_name": "bare tunnelling rate, right lead",
                "symbol": "γ_R", "kind": "parameter"},
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
          "symbol": "σ", "signed": False},
    "p1": {"units": "1", "long_name": "occupation probability of the filled dot",
           "symbol": "p_1", "signed": False},
    "U": {"units": "E0", "long_name": "charging energy", "symbol": "U", "kind": "parameter"},
    "eps_G": {"units": "E0", "long_name": "level energy of the gate dot (coupled to G)",
              "symbol": "ε_G", "kind": "parameter"},
    "T_G": {"units": "E0", "long_name": "temperature of reservoir G", "symbol": "T_G",
            "kind": "parameter"},
    "mu_G": {"units": "E0", "long_name": "chemical potential of reservoir G", "symbol": "μ_G",
             "kind": "parameter"},
    "gamma_G": {"units": "gamma0", "long_name": "bare tunnelling rate, gate dot to reservoir G",
                "symbol": "γ_G", "kind": "parameter"},
    "gamma_L_U": {"units": "gamma0",
                  "long_name": "bare tunnelling rate, left lead, gate dot occupied",
                  "symbol": "γ_L^U", "kind": "parameter"},
    "gamma_R_U": {"units": "gamma0",
                  "long_name": "bare tunnelling rate, right lead, gate dot occupied",
                  "symbol": "γ_R^U", "kind": "parameter"},
    "n": {"units": "1", "long_name": "mean electron number on the dot", "symbol": "n",
          "signed": False},
    "Q_G": {"units": "E0 gamma0", "long_name": "heat flow out of reservoir G", "symbol": "Q_G"},
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

# Figures of merit and current noise (phasemap.physics.merit, .fcs, .noise).
VARIABLES.update({
    "power": {"units": "E0 gamma0",
              "long_name": "useful power of the machine: -P (heat engine), heat drawn from the "
                           "cold side (refrigerator), heat into the hot side (heater)",
              "symbol": "P_out"},
    "eta": {"units": "1", "long_name": "heat-engine efficiency -P/Q_h", "symbol": "η"},
    "eta_over_carnot": {"units": "1", "long_name": "efficiency over Carnot's, eta/eta_C",
                        "symbol": "η/η_C"},
    "cop": {"units": "1", "long_name": "refrigerator coefficient of performance Q_c/P",
            "symbol": "COP"},
    "cop_over_carnot": {"units": "1", "long_name": "COP over Carnot's, COP/COP_C",
                        "symbol": "COP/COP_C"},
    "cop_heating": {"units": "1",
                    "long_name": "heat-pump coefficient of performance -Q_h/P",
                    "symbol": "COP_h"},
    "cop_heating_over_carnot": {"units": "1",
                                "long_name": "heat-pump COP over Carnot's T_h/(T_h - T_c)",
                                "symbol": "COP_h/COP_h,C"},
    "merit_flag": {
        "long_name": "which machine the figures of merit describe (why the others are NaN)",
        "flag_values": list(range(len(MERIT_FLAGS))),
        "flag_meanings": " ".join(MERIT_FLAGS),
    },
    "noise_J": {"units": "gamma0",
                "long_name": "zero-frequency particle-current noise, lim Var(N_L(t))/t",
                "symbol": "S_J"},
    "noise_Q": {"units": "E0^2 gamma0",
                "long_name": "zero-frequency heat-current noise of the left lead",
                "symbol": "S_Q"},
    "fano": {"units": "1", "long_name": "Fano factor noise_J/|J_L|", "symbol": "F"},
    "tur": {"units": "1",
            "long_name": "thermodynamic uncertainty ratio s noise_J/J_L^2 (>= 2 for Markov "
                         "models)",
            "symbol": "Q"},
})
# Figures of merit and noise are magnitudes: plotted on sequential colour maps.
for _name in ("power", "eta", "eta_over_carnot", "cop", "cop_over_carnot", "cop_heating",
              "cop_heating_over_carnot", "noise_J", "noise_Q", "fano", "tur"):
    VARIABLES[_name]["signed"] = False

LABEL_VARIABLES = ("regime", "machine")


def attrs_for(name: str, model: Any = None) -> dict[str, Any]:
    """CF attributes of ``name`` (a copy; empty for unknown names).

    With ``model`` (a :class:`phasemap.models.Model`), its declaration of the parameter or
    output comes first; the shared table fills in names the model does not declare.
    """
    if model is not None:
        declared = model.attrs_of(name)
        if declared:
            return declared
    attrs = {k: v for k, v in VARIABLES.get(name, {}).items() if k not in ("kind", "signed")}
    if "flag_values" in attrs:
        import numpy as np

        attrs["flag_values"] = np.arange(len(attrs["flag_values"]), dtype=np.int8)
    return attrs


def apply_attrs(ds: xr.Dataset, extra: Mapping[str, Any] | None = None,
                model: Any = None) -> xr.Dataset:
    """Attach CF attributes to every known variable and coordinate of ``ds`` (the model's
    declarations first, then the shared table)."""
    for name in list(ds.variables):
        attrs = attrs_for(str(name), model)
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
