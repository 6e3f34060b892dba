"""Transport-regime classification: two labels per point, arrays in, int8 out.

The rules are those of the regime taxonomy in ``docs/regimes.md`` (built on Zhang & Lü,
Phys. Rev. E 111, 044112 (2025), Figs. 2-9). Both lenses are evaluated in the *forward frame*:
when ``dT < 0``, or ``dT == 0`` and ``dV < 0``, the leads are swapped first
(``dT -> -dT``, ``dV -> -dV``, ``J_L -> -J_L``, ``Q_L -> -Q_R``, ``Q_R -> -Q_L``; ``P`` is
unchanged), so a device and its mirror image always get the same labels.

The rules read *signs* only (-1, 0, +1 of ``dT, dV, J_L, Q_L, Q_R, P``), never magnitudes:
a flow that underflows must still be labelled by its true sign. They are numba-compiled
functions, written once, so that a model kernel can fuse them with its own arithmetic and
take the signs from the factors of each product (``sign(Q_L) = sign(eps - mu_L) sign(J_L)``,
see :mod:`phasemap.models`), while :func:`classify` applies the same rules to the signs of the
outputs of any model that provides ``J_L``, ``Q_L`` and ``Q_R`` with exact signs. A point whose
inputs or outputs are not finite is ``undefined`` in both lenses, never a regime.
"""

from __future__ import annotations

import math

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
    "undefined",
)

#: ``machine`` labels, in the order of their integer codes (the thermodynamic-machine lens).
MACHINE_LABELS: tuple[str, ...] = (
    "idle",
    "heat_engine",
    "conductor",
    "refrigerator",
    "heater",
    "accelerator",
    "undefined",
)

LENSES: dict[str, tuple[str, ...]] = {"regime": REGIME_LABELS, "machine": MACHINE_LABELS}

# Codes as module constants so the numba functions below read like the table.
(EQUILIBRIUM, REVERSIBLE, AT, ANM, RHT, R_ENGINE, R_FRIDGE, JOULE, CONVENTIONAL,
 R_UNDEFINED) = range(10)
IDLE, M_ENGINE, CONDUCTOR, M_FRIDGE, HEATER, ACCELERATOR, M_UNDEFINED = range(7)


@numba.njit(cache=True, inline="always")
def sign(x):
    """-1, 0 or +1 (an int) for a number that is not NaN; ``-0.0`` gives 0."""
    return (x > 0.0) - (x < 0.0)


@numba.njit(cache=True, inline="always")
def _forward(dT, dV, J, QL, QR):
    """Signs (dT, dV, J_L, Q_L, Q_R) in the forward frame (signs in, signs out)."""
    if dT < 0 or (dT == 0 and dV < 0):
        return -dT, -dV, -J, -QR, -QL
    return dT, dV, J, QL, QR


@numba.njit(cache=True, inline="always")
def regime_rule(dT, dV, J, QL, QR, P):
    """Code of the paper's lens from the *signs* (-1, 0, +1) of ``dT, dV, J_L, Q_L, Q_R, P``
    (first matching rule wins; the frame is made forward here)."""
    dT, dV, J, QL, QR = _forward(dT, dV, J, QL, QR)
    if dT == 0 and dV == 0:
        return EQUILIBRIUM
    if J == 0:
        return REVERSIBLE
    if dV == 0 and J < 0:
        return AT
    if dV > 0 and J < 0:
        return ANM
    if dT > 0 and dV > 0 and QL < 0 and QR < 0:
        return RHT
    if dV < 0 and P < 0:
        return R_ENGINE
    if dV < 0 and QR < 0:
        return R_FRIDGE
    if QL < 0 < QR:
        return JOULE
    return CONVENTIONAL


@numba.njit(cache=True, inline="always")
def machine_rule(dT, dV, J, QL, QR, P):
    """Code of the thermodynamic-machine lens from the *signs* of ``dT, dV, J_L, Q_L, Q_R,
    P`` (first matching rule wins; the frame is made forward here)."""
    dT, dV, J, QL, QR = _forward(dT, dV, J, QL, QR)
    if J == 0:
        return IDLE
    if P < 0:
        return M_ENGINE
    if P == 0:
        return CONDUCTOR
    if QR < 0:
        return M_FRIDGE
    if QL < 0:
        return HEATER
    return ACCELERATOR


@numba.njit(cache=True, inline="always")
def codes_from_signs(defined, dT, dV, J, QL, QR, P):
    """``(regime, machine)`` codes from signs, ``undefined`` in both lenses where the point
    is not ``defined`` (an input or output is not finite)."""
    if not defined:
        return R_UNDEFINED, M_UNDEFINED
    return regime_rule(dT, dV, J, QL, QR, P), machine_rule(dT, dV, J, QL, QR, P)


@numba.njit(cache=True, inline="always")
def _finite(x):
    return abs(x) < math.inf  # False for NaN and +-inf; no invalid-operation flag


@numba.njit(cache=True, inline="always")
def codes_of(dT, dV, J, QL, QR, P, have_P):
    """``(regime, machine)`` codes from the values of a model's outputs.

    The signs of the values are taken as they are (the model guarantees them); a missing
    ``P`` (``have_P`` false) has the sign of ``dV`` times that of ``J_L``, never the sign of
    a rounded product. Any non-finite value makes the point ``undefined``.
    """
    P = P if have_P else 0.0
    defined = (_finite(dT) & _finite(dV) & _finite(J) & _finite(QL) & _finite(QR)
               & _finite(P))
    if not defined:
        return R_UNDEFINED, M_UNDEFINED
    sJ = sign(J)
    sP = sign(P) if have_P else sign(dV) * sJ
    return codes_from_signs(True, sign(dT), sign(dV), sJ, sign(QL), sign(QR), sP)


@lazy_vectorize(["int8(f8, f8, f8, f8, f8, f8, b1)"], cache=True)
def _regime_ufunc(dT, dV, J, QL, QR, P, have_P):
    return codes_of(dT, dV, J, QL, QR, P, have_P)[0]


@lazy_vectorize(["int8(f8, f8, f8, f8, f8, f8, b1)"], cache=True)
def _machine_ufunc(dT, dV, J, QL, QR, P, have_P):
    return codes_of(dT, dV, J, QL, QR, P, have_P)[1]


def classify(dT, dV, J_L, Q_L, Q_R, P=None):
    """Label points by transport regime in both lenses.

    The rules read only the signs of their arguments (:func:`regime_rule`,
    :func:`machine_rule`, the very functions the fused single-level kernel runs), so the
    outputs passed here must carry exact signs: a model must not round a nonzero flow to
    zero (``phasemap.physics.single_level.signed_product`` shows how).

    Parameters
    ----------
    dT, dV : array_like
        Temperature difference ``T_L - T_R`` [E0] and bias ``(mu_L - mu_R)/e`` [E0].
    J_L : array_like
        Particle current out of the left reservoir [gamma0].
    Q_L, Q_R : array_like
        Heat leaving the left reservoir and heat entering the right one [E0 gamma0].
    P : array_like, optional
        Electrical power absorbed by the device [E0 gamma0]. When omitted its sign is
        ``sign(dV) sign(J_L)`` (``P = dV J_L`` for any two-terminal device), taken from the
        factors, never from their possibly underflowing product.

    Returns
    -------
    regime, machine : numpy.ndarray of int8
        Codes into :data:`REGIME_LABELS` and :data:`MACHINE_LABELS`, broadcast over the inputs.
        A point where any argument is NaN or infinite is ``undefined`` in both lenses.
    """
    dT, dV, J_L, Q_L, Q_R = (np.asarray(a, dtype=np.float64) for a in (dT, dV, J_L, Q_L, Q_R))
    have_P = P is not None
    P = np.zeros((), dtype=np.float64) if P is None else np.asarray(P, dtype=np.float64)
    return (_regime_ufunc(dT, dV, J_L, Q_L, Q_R, P, have_P),
            _machine_ufunc(dT, dV, J_L, Q_L, Q_R, P, have_P))


def labels_of(codes, lens: str = "regime") -> np.ndarray:
    """Map integer codes of ``lens`` to their label strings (object array)."""
    names = np.asarray(LENSES[lens] + ("",), dtype=object)
    codes = np.asarray(codes)
    idx = np.where((codes >= 0) & (codes < len(names) - 1), codes, len(names) - 1)
    return names[idx.astype(np.intp)]
