"""Transport-regime classification: two labels per point, arrays in, int8 out.

The rules are those of the regime taxonomy in ``docs/regimes.md`` (built on Zhang & Lü,
Phys. Rev. E 111, 044112 (2025), Figs. 2-9). Both lenses are evaluated in the *forward frame*:
when ``dT < 0``, or ``dT == 0`` and ``dV < 0``, the leads are swapped first
(``dT -> -dT``, ``dV -> -dV``, ``J_L -> -J_L``, ``Q_L -> -Q_R``, ``Q_R -> -Q_L``; ``P`` is
unchanged), so a device and its mirror image always get the same labels.

The scalar rules are numba-compiled functions so that a model kernel can fuse them with its
own arithmetic (see :mod:`phasemap.models`); :func:`classify` applies them to arrays of any
model that provides ``J_L``, ``Q_L`` and ``Q_R``.
"""

from __future__ import annotations

import numba
import numpy as np

from ._jit import lazy_vectorize

#: ``regime`` labels, in the order of their integer codes (the paper's lens).
REGIME_LABELS: tuple[str, ...] = (
    "equilibrium",
    "reversible",
    "anomalous_thermodiffusion",
    "absolute_negative_mobility",
    "reverse_heat_transport",
    "heat_engine",
    "refrigerator",
    "joule_heating",
    "conventional",
)

#: ``machine`` labels, in the order of their integer codes (the thermodynamic-machine lens).
MACHINE_LABELS: tuple[str, ...] = (
    "idle",
    "heat_engine",
    "conductor",
    "refrigerator",
    "heater",
    "accelerator",
)

LENSES: dict[str, tuple[str, ...]] = {"regime": REGIME_LABELS, "machine": MACHINE_LABELS}

# Codes as module constants so the numba functions below read like the table.
EQUILIBRIUM, REVERSIBLE, AT, ANM, RHT, R_ENGINE, R_FRIDGE, JOULE, CONVENTIONAL = range(9)
IDLE, M_ENGINE, CONDUCTOR, M_FRIDGE, HEATER, ACCELERATOR = range(6)


@numba.njit(cache=True, inline="always")
def _forward(dT, dV, J, QL, QR):
    """Return (dT, dV, J_L, Q_L, Q_R) in the forward frame."""
    if dT < 0.0 or (dT == 0.0 and dV < 0.0):
        return -dT, -dV, -J, -QR, -QL
    return dT, dV, J, QL, QR


@numba.njit(cache=True, inline="always")
def regime_code(dT, dV, J, QL, QR, P):
    """Code of the paper's lens for one point (first matching rule wins)."""
    dT, dV, J, QL, QR = _forward(dT, dV, J, QL, QR)
    if dT == 0.0 and dV == 0.0:
        return EQUILIBRIUM
    if J == 0.0:
        return REVERSIBLE
    if dV == 0.0 and J < 0.0:
        return AT
    if dV > 0.0 and J < 0.0:
        return ANM
    if dT > 0.0 and dV > 0.0 and QL < 0.0 and QR < 0.0:
        return RHT
    if dV < 0.0 and P < 0.0:
        return R_ENGINE
    if dV < 0.0 and QR < 0.0:
        return R_FRIDGE
    if QL < 0.0 < QR:
        return JOULE
    return CONVENTIONAL


@numba.njit(cache=True, inline="always")
def machine_code(dT, dV, J, QL, QR, P):
    """Code of the thermodynamic-machine lens for one point (first matching rule wins)."""
    dT, dV, J, QL, QR = _forward(dT, dV, J, QL, QR)
    if J == 0.0:
        return IDLE
    if P < 0.0:
        return M_ENGINE
    if P == 0.0:
        return CONDUCTOR
    if QR < 0.0:
        return M_FRIDGE
    if QL < 0.0:
        return HEATER
    return ACCELERATOR


@lazy_vectorize(["int8(f8, f8, f8, f8, f8, f8)"], cache=True)
def _regime_ufunc(dT, dV, J, QL, QR, P):
    return regime_code(dT, dV, J, QL, QR, P)


@lazy_vectorize(["int8(f8, f8, f8, f8, f8, f8)"], cache=True)
def _machine_ufunc(dT, dV, J, QL, QR, P):
    return machine_code(dT, dV, J, QL, QR, P)


def classify(dT, dV, J_L, Q_L, Q_R, P=None):
    """Label points by transport regime in both lenses.

    Parameters
    ----------
    dT, dV : array_like
        Temperature difference ``T_L - T_R`` [k_B T units] and bias ``(mu_L - mu_R)/e`` [V].
    J_L : array_like
        Particle current out of the left reservoir [gamma].
    Q_L, Q_R : array_like
        Heat leaving the left reservoir and heat entering the right one [gamma * energy].
    P : array_like, optional
        Electrical power absorbed by the device; ``dV * J_L`` when omitted (exact for any
        two-terminal device by energy conservation, and sign-safe, unlike ``Q_R - Q_L``).

    Returns
    -------
    regime, machine : numpy.ndarray of int8
        Codes into :data:`REGIME_LABELS` and :data:`MACHINE_LABELS`, broadcast over the inputs.
        NaN inputs fall through to the last label of each lens.
    """
    dT, dV, J_L, Q_L, Q_R = (np.asarray(a, dtype=np.float64) for a in (dT, dV, J_L, Q_L, Q_R))
    P = dV * J_L if P is None else np.asarray(P, dtype=np.float64)
    return _regime_ufunc(dT, dV, J_L, Q_L, Q_R, P), _machine_ufunc(dT, dV, J_L, Q_L, Q_R, P)


def labels_of(codes, lens: str = "regime") -> np.ndarray:
    """Map integer codes of ``lens`` to their label strings (object array)."""
    names = np.asarray(LENSES[lens] + ("",), dtype=object)
    codes = np.asarray(codes)
    idx = np.where((codes >= 0) & (codes < len(names) - 1), codes, len(names) - 1)
    return names[idx.astype(np.intp)]
