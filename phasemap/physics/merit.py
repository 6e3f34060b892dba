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

import math

import numba
import numpy as np

from .. import _jit  # noqa: F401  (first: the keyed numba cache, see _jit)

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


# One pass over the points in numba: the rules below are scalar functions, and each public
# function broadcasts its inputs and runs one loop (the numpy form took ~50 passes over the
# arrays: ~90 ms per 1e6 points, most of what a stored plane of every output costs to derive).

@numba.njit(cache=True, inline="always", error_model="numpy")
def _hot_cold(Q_L, Q_R, T_L, T_R, dT, has_dT):
    # with dT given, its sign decides: T_L and T_R may round to the same double
    left_hot = (T_L >= T_R) if not has_dT else (dT >= 0.0)
    if left_hot:
        Q_h, Q_c, T_h, T_c = Q_L, -Q_R, T_L, T_R
    else:
        Q_h, Q_c, T_h, T_c = -Q_R, Q_L, T_R, T_L
    diff = abs(T_L - T_R) if not has_dT else abs(dT)
    return Q_h + 0.0, Q_c + 0.0, T_h, T_c, diff


@numba.njit(cache=True, inline="always", error_model="numpy")
def _carnot(T_h, T_c, dTabs):
    eta_c = dTabs / T_h
    if dTabs > 0.0:
        return eta_c, T_c / dTabs, T_h / dTabs
    return eta_c, math.nan, math.nan


@numba.njit(cache=True, inline="always", error_model="numpy")
def _flag(P, Q_h, Q_c, dTabs):
    if math.isnan(P) or math.isnan(Q_h) or math.isnan(Q_c) or math.isnan(dTabs):
        return INVALID
    if dTabs == 0.0:
        return NO_DT
    if P < 0.0 and Q_h > 0.0:
        flag = ENGINE
    elif P > 0.0 and Q_c > 0.0:
        flag = FRIDGE
    elif P > 0.0 and Q_h < 0.0:
        flag = HEATER
    elif P == 0.0:
        return NO_WORK
    else:
        return ACCELERATOR
    # a machine whose |P| or a heat its figures divide by is subnormal has no digits left
    if abs(P) < TINY_NORMAL or abs(Q_h) < TINY_NORMAL or (flag == FRIDGE
                                                          and abs(Q_c) < TINY_NORMAL):
        return UNDERFLOW
    return flag


@numba.njit(cache=True, inline="always", error_model="numpy")
def _capped(num, den, cap):
    """``min(num/den, cap)``, NaN if either is NaN (``np.minimum``'s rule)."""
    q = num / den
    if math.isnan(q) or math.isnan(cap):
        return math.nan
    return min(q, cap)


@numba.njit(cache=True, error_model="numpy")
def _merit_loop(P, Q_L, Q_R, T_L, T_R, dT, has_dT, out, flags):
    nan = math.nan
    for k in range(P.shape[0]):
        p = P[k]
        Q_h, Q_c, T_h, T_c, dTabs = _hot_cold(Q_L[k], Q_R[k], T_L[k], T_R[k], dT[k], has_dT)
        flag = _flag(p, Q_h, Q_c, dTabs)
        eta_c, cop_c, cop_hc = _carnot(T_h, T_c, dTabs)
        power = eta = eta_r = cop = cop_r = cop_h = cop_h_r = nan
        if flag == ENGINE:
            power = -p
            eta = _capped(-p, Q_h, eta_c)
            eta_r = _capped(eta, eta_c, 1.0)
        elif flag == FRIDGE or flag == HEATER:
            if flag == FRIDGE:
                power = Q_c
                cop = _capped(Q_c, p, cop_c)
                cop_r = _capped(cop, cop_c, 1.0)
            else:
                power = -Q_h
            cop_h = _capped(-Q_h, p, cop_hc)
            cop_h_r = _capped(cop_h, cop_hc, 1.0)
        out[0, k], out[1, k], out[2, k] = power + 0.0, eta + 0.0, eta_r + 0.0
        out[3, k], out[4, k] = cop + 0.0, cop_r + 0.0
        out[5, k], out[6, k] = cop_h + 0.0, cop_h_r + 0.0
        flags[k] = flag


@numba.njit(cache=True, error_model="numpy")
def _hot_cold_loop(Q_L, Q_R, T_L, T_R, dT, has_dT, out):
    for k in range(Q_L.shape[0]):
        r = _hot_cold(Q_L[k], Q_R[k], T_L[k], T_R[k], dT[k], has_dT)
        for i in range(5):
            out[i, k] = r[i]


@numba.njit(cache=True, error_model="numpy")
def _carnot_loop(T_h, T_c, dTabs, out):
    for k in range(T_h.shape[0]):
        r = _carnot(T_h[k], T_c[k], dTabs[k])
        for i in range(3):
            out[i, k] = r[i]


@numba.njit(cache=True, error_model="numpy")
def _flag_loop(P, Q_h, Q_c, dTabs, flags):
    for k in range(P.shape[0]):
        flags[k] = _flag(P[k], Q_h[k], Q_c[k], dTabs[k])


def _flat(*arrays):
    """The inputs broadcast together, each as a contiguous 1-D float64 array, and the shape."""
    b = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in arrays))
    shape = b[0].shape if b else ()
    return [np.ascontiguousarray(x).reshape(-1) for x in b], shape


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
        when ``|dT| << T``), and its sign names the hot side even where ``T_L`` and ``T_R``
        round to the same double.

    Returns
    -------
    Q_h, Q_c, T_h, T_c, dTabs : numpy.ndarray
        ``Q_h``, ``Q_c`` [E0 gamma0] as in the module docstring (left taken as hot where the
        temperatures are equal), ``T_h``, ``T_c`` [E0] and ``T_h - T_c >= 0`` [E0].
    """
    (q_l, q_r, t_l, t_r, d), shape = _flat(Q_L, Q_R, T_L, T_R, 0.0 if dT is None else dT)
    out = np.empty((5, q_l.size))
    _hot_cold_loop(q_l, q_r, t_l, t_r, d, dT is not None, out)
    return tuple(out[i].reshape(shape) for i in range(5))


def carnot(T_h, T_c, dTabs):
    """``eta_C = (T_h - T_c)/T_h``, ``COP_C = T_c/(T_h - T_c)`` and
    ``COP_heating,C = T_h/(T_h - T_c)`` [1]; the COPs are NaN where ``T_h == T_c`` and +inf
    where they exceed the largest double (``T_h - T_c`` below ~1e-308 ``T``), silently."""
    (t_h, t_c, d), shape = _flat(T_h, T_c, dTabs)
    out = np.empty((3, t_h.size))
    _carnot_loop(t_h, t_c, d, out)
    return tuple(out[i].reshape(shape) for i in range(3))


def merit_flag(P, Q_h, Q_c, dTabs) -> np.ndarray:
    """The ``merit_flag`` code of each point (rules in the module docstring) as int8."""
    (p, q_h, q_c, d), shape = _flat(P, Q_h, Q_c, dTabs)
    flags = np.empty(p.size, dtype=np.int8)
    _flag_loop(p, q_h, q_c, d, flags)
    return flags.reshape(shape)


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
    (p, q_l, q_r, t_l, t_r, d), shape = _flat(P, Q_L, Q_R, T_L, T_R,
                                              0.0 if dT is None else dT)
    out = np.empty((7, p.size))
    flags = np.empty(p.size, dtype=np.int8)
    _merit_loop(p, q_l, q_r, t_l, t_r, d, dT is not None, out, flags)
    names = ("power", "eta", "eta_over_carnot", "cop", "cop_over_carnot", "cop_heating",
             "cop_heating_over_carnot")
    result = {k: out[i].reshape(shape) for i, k in enumerate(names)}
    result["merit_flag"] = flags.reshape(shape)
    return result
