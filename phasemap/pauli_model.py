"""Two-terminal models on the generic Pauli engine, declared in a few lines.

A sequential-tunnelling model is its many-body states (charges), their energies and the bare
rate of each electron-adding transition through each lead; the golden-rule rates, the
stationary state, the exactly signed currents, heat flows and entropy production come from
:mod:`phasemap.physics.pauli`, and the regime labels from :mod:`phasemap.regimes`. So a new
model is::

    from phasemap.models import Output, Parameter, register
    from phasemap.pauli_model import TWO_LEAD_PARAMETERS, pauli_model

    def energies(eps, delta, **_):
        return [0.0, eps, eps + delta]           # empty, orbital a, orbital b

    def rates(gamma_L, gamma_R, **_):
        return {("L", 0, 1): gamma_L, ("R", 0, 1): gamma_R,   # (lead, from, to): rate
                ("L", 0, 2): gamma_L, ("R", 0, 2): gamma_R}

    register(pauli_model(
        "two_orbitals", version="1", description="two orbitals, no double occupancy",
        charges=[0, 1, 1], energies=energies, rates=rates,
        parameters=(*TWO_LEAD_PARAMETERS, Parameter("delta", "E0", 1.0)),
        extra={Output("n_b", long_name="occupation of orbital b", signed=False):
               lambda result, params: result.p[..., 2]}))

after which it evaluates, stores, answers queries and shows in the explorer like any other
model (docs/models.md walks through it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import regimes
from .models import (
    POSITIVE_LEAD_TEMPERATURES,
    SEQUENTIAL_TUNNELLING,
    SINGLE_DOT_PARAMETERS,
    Constraint,
    Model,
    Output,
    Parameter,
    Validity,
    two_lead_outputs,
)
from .physics import pauli as engine

#: The parameters every two-terminal model has: eps, T, dT, dV, mu, gamma_L, gamma_R.
TWO_LEAD_PARAMETERS: tuple[Parameter, ...] = SINGLE_DOT_PARAMETERS
LEADS = ("L", "R")
#: The outputs of every two-terminal Pauli model, before its own and the two labels.
CORE_OUTPUTS = ("J_L", "Q_L", "Q_R", "P", "s")


def pauli_model(name: str, *, version: str, description: str, charges: Sequence[int],
                energies: Callable[..., Sequence[Any]],
                rates: Callable[..., Mapping[tuple[str, int, int], Any]],
                parameters: Sequence[Parameter] = TWO_LEAD_PARAMETERS,
                extra: Mapping[Output | str, Callable[[engine.PauliResult, dict], Any]]
                | None = None,
                constraints: Sequence[Constraint] = (POSITIVE_LEAD_TEMPERATURES,),
                validity: Validity | None = SEQUENTIAL_TUNNELLING,
                references: str = "") -> Model:
    """A two-terminal sequential-tunnelling model from its states, energies and rates.

    Parameters
    ----------
    name, version, description : str
        As for :class:`phasemap.models.Model`; bump ``version`` whenever numbers may change.
    charges : sequence of int
        Electron number of each many-body state.
    energies : callable(**params) -> sequence
        Energy of each state [E0] (arrays broadcast over the grid, or scalars).
    rates : callable(**params) -> {(lead, i, j): rate}
        Bare rate [gamma0] of the transition ``i -> j`` (``charges[j] = charges[i] + 1``)
        through lead ``"L"`` or ``"R"``; missing pairs are not coupled.
    parameters : sequence of Parameter
        Must include eps-independent lead parameters ``T, dT, dV, mu`` (the leads are
        ``T ± dT/2``, ``mu ± dV/2``).
    extra : {Output or name: callable(result, params) -> array}, optional
        Further outputs computed from the engine's :class:`~phasemap.physics.pauli.PauliResult`.
    validity : Validity or None
        Where sequential tunnelling holds (default: broadening ``gamma_L + gamma_R`` at most
        a tenth of the colder lead's temperature; it needs those parameters).
    """
    names = tuple(p.name for p in parameters)
    missing = [p for p in ("T", "dT", "dV", "mu") if p not in names]
    if missing:
        raise ValueError(f"model {name!r}: a two-terminal model needs the parameters "
                         f"{', '.join(missing)}")
    charge = np.asarray(charges, dtype=np.int64)
    n = charge.size
    extra = dict(extra or {})
    extra_names = [o.name if isinstance(o, Output) else o for o in extra]

    def kernel(**params: np.ndarray) -> dict[str, np.ndarray]:
        arrays = dict(zip(names, np.broadcast_arrays(*(params[k] for k in names)),
                          strict=True))
        shape = arrays["T"].shape
        E = np.stack([np.broadcast_to(np.asarray(e, dtype=np.float64), shape)
                      for e in energies(**arrays)], axis=-1)
        if E.shape[-1] != n:
            raise ValueError(f"model {name!r}: energies() gave {E.shape[-1]} states, "
                             f"charges has {n}")
        gamma = np.zeros((*shape, len(LEADS), n, n))
        for (lead, i, j), rate in rates(**arrays).items():
            if lead not in LEADS or charge[j] != charge[i] + 1:
                raise ValueError(f"model {name!r}: rate {(lead, i, j)} must name lead 'L' or "
                                 "'R' and a transition adding one electron")
            gamma[..., LEADS.index(lead), i, j] = rate
        mu, mu_lo, T, T_lo = engine.two_leads(arrays["mu"], arrays["dV"], arrays["T"],
                                              arrays["dT"])
        result = engine.solve(E, charge, gamma, mu, T, mu_lo=mu_lo, T_lo=T_lo)
        out = two_lead_outputs(result, arrays["dV"])
        for spec, fn in extra.items():
            out[spec.name if isinstance(spec, Output) else spec] = np.broadcast_to(
                np.asarray(fn(result, arrays), dtype=np.float64), shape)
        with np.errstate(invalid="ignore"):
            out["regime"], out["machine"] = regimes.classify(
                arrays["dT"], arrays["dV"], out["J_L"], out["Q_L"], out["Q_R"], out["P"])
        return {k: out[k] for k in (*CORE_OUTPUTS, *extra_names, "regime", "machine")}

    return Model(name=name, version=version, description=description,
                 parameters=tuple(parameters), kernel=kernel,
                 outputs=(*CORE_OUTPUTS, *extra, "regime", "machine"),
                 constraints=tuple(constraints), references=references, shard_log2=12,
                 validity=validity if validity is None or set(validity.params) <= set(names)
                 else None)
