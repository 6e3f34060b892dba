"""Figures of merit of a two-terminal thermoelectric machine: power, efficiency, COP.

Pure arrays in, dict of arrays out; works for any two-terminal model that gives ``P``, ``Q_L``
and ``Q_R`` with exact signs (the single level, the Pauli models, the coherent level).

Conventions (Zhang & Lü, Phys. Rev. E 111, 044112 (2025); k_B = e = 1): ``Q_L`` is the heat
leaving the left reservoir, ``Q_R`` the heat entering the right one, ``P = Q_R - Q_L`` the
electrical power absorbed by the device (``P < 0``: power produced). The hot side ``h`` and
the cold side ``c`` are fixed by the lead temperatures (``T_L > T_R``: ``h = L``)::

    Q_h = Q_L   if h = L,   -Q_R  if h = R       heat drawn from the hot reservoir
    Q_c = -Q_R  if c = R,    Q_L  if c = L       heat drawn from the cold reservoir
    eta_C = 1 - T_c/T_h = (T_h - T_c)/T_h,       COP_C = T_c/(T_h - T_c)

and, first matching rule wins (``merit_flag``)::

    T_L == T_R (dT == 0)                no_temperature_difference  everything NaN
    P < 0 and Q_h > 0                   heat_engine    power = -P,    eta = -P/Q_h
    P > 0 and Q_c > 0                   refrigerator   power = Q_c,   cop = Q_c/P
    P > 0 and Q_h < 0 (heat into hot)   heater         power = -Q_h,  cop_heating = -Q_h/P
    P == 0                              no_work        (idle or a plain conductor)
    otherwise                           accelerator    (work speeds hot -> cold flow)
    NaN input                           invalid

and a heat engine, refrigerator or heater whose ``|P|`` or a heat its figures divide by is a
subnormal double (below 2.2e-308, where a quotient has no digits left although the signs are
still exact) is flagged ``underflow`` instead, its figures NaN.

A refrigerator is also a heat pump: it has ``cop_heating = -Q_h/P = 1 + cop`` as well, with
``COP_heating,C = T_h/(T_h - T_c)``. These rules coincide with the ``machine`` lens of
:mod:`phasemap.regimes` (in its forward frame), except that a zero temperature difference has
no hot and cold side. Where a figure does not apply it is NaN and the flag says why; no
figure is ever computed from a ``P`` whose sign is zero. Signs are read from the inputs, which
each model gives exactly (e.g. ``P = dV J_L`` with the sign of ``J_L`` exact), never from
rounded sums.

Second law: ``eta <= eta_C`` and ``cop <= COP_C``. Each ratio is computed directly (a
quotient: a few ulp), then capped at the Carnot value; the cap only moves a result that
rounding pushed past it, by no more than that rounding error.

The efficiency at maximum power of the single level in linear response and tight coupling is
``eta_C/2 + eta_C**2/8 + 0.07749 eta_C**3 + ...`` (M. Esposito, K. Lindenberg and C. Van den
Broeck, Phys. Rev. Lett. 102, 130602 (2009); EPL 85, 60010 (2009)); see
:func:`phasemap.optimize.max_power`.
"""

from __future__ import annotations

import numpy as np

#: ``merit_flag`` meanings, in the order of their int8 codes.
MERIT_FLAGS: tuple[str, ...] = (
    "heat_engine",
    "refrigerator",
    "heater",
    "no_work",
    "accelerator",
    "no_temperature_difference",
    "underflow",
    "invalid",
)
ENGINE, FRIDGE, HEATER, NO_WORK, ACCELERATOR, NO_DT, UNDERFLOW, INVALID = range(len(MERIT_FLAGS))
TINY_NORMAL = np.finfo(np.float64).tiny  # 2.2e-308, the smallest normal double

MERIT_OUTPUTS = ("power", "eta", "eta_over_carnot", "cop", "cop_over_carnot", "cop_heating",
                 "cop_heating_over_carnot", "merit_flag")


def _f(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def hot_cold(Q_L, Q_R, T_L, T_R, dT=None):
    """Heats drawn from the hot and the cold reservoir and the two temperatures.

    Parameters
    ----------
    Q_L : array_like
        Heat leaving the left reservoir [E0 gamma0].
    Q_R : array_like
        Heat entering the right reservoir [E0 gamma0].
    T_L, T_R : array_like
        Lead temperatures [E0], > 0.
    dT : array_like, optional
        ``T_L - T_R`` [E0] as given to the model. Pass it when available: ``T_h - T_c`` is then
        exact instead of the rounded difference of ``T_L`` and ``T_R`` (which loses digits
        when ``|dT| << T``).

    Returns
    -------
    Q_h, Q_c, T_h, T_c, dTabs : numpy.ndarray
        ``Q_h``, ``Q_c`` [E0 gamma0] as in the module docstring (left taken as hot where the
        temperatures are equal), ``T_h``, ``T_c`` [E0] and ``T_h - T_c >= 0`` [E0].
    """
    Q_L, Q_R, T_L, T_R = np.broadcast_arrays(_f(Q_L), _f(Q_R), _f(T_L), _f(T_R))
    # with dT given, its sign decides: T_L and T_R may round to the same double
    left_hot = T_L >= T_R if dT is None else np.broadcast_to(_f(dT) >= 0, Q_L.shape)
    Q_h = np.where(left_hot, Q_L, -Q_R)
    Q_c = np.where(left_hot, -Q_R, Q_L)
    T_h = np.where(left_hot, T_L, T_R)
    T_c = np.where(left_hot, T_R, T_L)
    diff = np.abs(T_L - T_R) if dT is None else np.broadcast_to(np.abs(_f(dT)), Q_L.shape)
    return Q_h + 0.0, Q_c + 0.0, T_h, T_c, diff


def carnot(T_h, T_c, dTabs):
    """``eta_C = (T_h - T_c)/T_h``, ``COP_C = T_c/(T_h - T_c)`` and
    ``COP_heating,C = T_h/(T_h - T_c)`` [1]; the COPs are NaN where ``T_h == T_c`` and +inf
    where they exceed the largest double (``T_h - T_c`` below ~1e-308 ``T``), silently."""
    T_h, T_c, dTabs = _f(T_h), _f(T_c), _f(dTabs)
    safe = np.where(dTabs > 0, dTabs, 1.0)
    eta_c = dTabs / T_h
    with np.errstate(over="ignore"):
        cop_c = np.where(dTabs > 0, T_c / safe, np.nan)
        cop_h = np.where(dTabs > 0, T_h / safe, np.nan)
    return eta_c, cop_c, cop_h


def merit_flag(P, Q_h, Q_c, dTabs) -> np.ndarray:
    """The ``merit_flag`` code of each point (rules in the module docstring) as int8."""
    P, Q_h, Q_c, dTabs = np.broadcast_arrays(_f(P), _f(Q_h), _f(Q_c), _f(dTabs))
    conditions = [
        np.isnan(P) | np.isnan(Q_h) | np.isnan(Q_c) | np.isnan(dTabs),
        dTabs == 0.0,
        (P < 0.0) & (Q_h > 0.0),
        (P > 0.0) & (Q_c > 0.0),
        (P > 0.0) & (Q_h < 0.0),
        P == 0.0,
    ]
    codes = [INVALID, NO_DT, ENGINE, FRIDGE, HEATER, NO_WORK]
    flag = np.select(conditions, codes, default=ACCELERATOR).astype(np.int8)
    tiny = (np.abs(P) < TINY_NORMAL) | (np.abs(Q_h) < TINY_NORMAL)
    tiny |= (flag == FRIDGE) & (np.abs(Q_c) < TINY_NORMAL)
    machine = (flag == ENGINE) | (flag == FRIDGE) | (flag == HEATER)
    return np.where(machine & tiny, np.int8(UNDERFLOW), flag).astype(np.int8)


def _ratio(num, den, where) -> np.ndarray:
    """``num/den`` where ``where``, NaN elsewhere, with no warning for the unused points."""
    safe = np.where(where, den, 1.0)
    return np.where(where, num / safe, np.nan)


def figures_of_merit(P, Q_L, Q_R, T_L, T_R, dT=None) -> dict[str, np.ndarray]:
    """Power, efficiency and coefficients of performance of a two-terminal device.

    Parameters
    ----------
    P : array_like
        Electrical power absorbed by the device, ``Q_R - Q_L`` [E0 gamma0] (negative: power
        produced); its sign must be exact (the models' ``P`` is).
    Q_L, Q_R : array_like
        Heat leaving the left reservoir and heat entering the right one [E0 gamma0].
    T_L, T_R : array_like
        Lead temperatures [E0], > 0.
    dT : array_like, optional
        ``T_L - T_R`` [E0] as the model received it (see :func:`hot_cold`).

    Returns
    -------
    dict of str to numpy.ndarray
        Broadcast over the inputs:

        - ``power`` [E0 gamma0]: the machine's useful output: ``-P`` for a heat engine,
          the cooling power ``Q_c`` for a refrigerator, the heating power ``-Q_h`` for a
          heater; NaN otherwise.
        - ``eta``, ``eta_over_carnot`` [1]: ``-P/Q_h`` and ``eta/eta_C`` (heat engines).
        - ``cop``, ``cop_over_carnot`` [1]: ``Q_c/P`` and ``cop/COP_C`` (refrigerators).
        - ``cop_heating``, ``cop_heating_over_carnot`` [1]: ``-Q_h/P`` and its Carnot ratio
          (refrigerators, which pump heat into the hot side, and heaters).
        - ``merit_flag`` (int8): code into :data:`MERIT_FLAGS` saying which machine the point
          is, hence which figures apply and why the others are NaN.

        No ``-0.0``; no warnings for finite input.
    """
    Q_h, Q_c, T_h, T_c, dTabs = hot_cold(Q_L, Q_R, T_L, T_R, dT)
    P = np.broadcast_to(_f(P), Q_h.shape)
    flag = merit_flag(P, Q_h, Q_c, dTabs)
    engine, fridge, heater = flag == ENGINE, flag == FRIDGE, flag == HEATER
    eta_c, cop_c, cop_hc = carnot(T_h, T_c, dTabs)

    eta = np.minimum(_ratio(-P, Q_h, engine), eta_c)
    eta_ratio = np.minimum(_ratio(eta, eta_c, engine), 1.0)
    cop = np.minimum(_ratio(Q_c, P, fridge), cop_c)
    cop_ratio = np.minimum(_ratio(cop, cop_c, fridge), 1.0)
    pumps = fridge | heater
    cop_heat = np.minimum(_ratio(-Q_h, P, pumps), cop_hc)
    cop_heat_ratio = np.minimum(_ratio(cop_heat, cop_hc, pumps), 1.0)
    power = np.select([engine, fridge, heater], [-P, Q_c, -Q_h], default=np.nan)
    out = {"power": power, "eta": eta, "eta_over_carnot": eta_ratio, "cop": cop,
           "cop_over_carnot": cop_ratio, "cop_heating": cop_heat,
           "cop_heating_over_carnot": cop_heat_ratio}
    out = {k: v + 0.0 for k, v in out.items()}
    out["merit_flag"] = flag
    return out
