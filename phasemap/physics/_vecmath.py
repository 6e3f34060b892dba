"""``exp`` and ``expm1`` of non-positive arguments that LLVM can vectorise.

numba lowers ``math.exp`` to a call into the C library, one point at a time, and a loop that
calls a function is never vectorised. The functions here are plain arithmetic (a Cody-Waite
range reduction, a polynomial, and the power of two built from its bits), so a numba loop
that calls them runs 4 points per instruction with AVX.

Only ``y <= 0`` is needed (the stable closed form evaluates ``exp(-|x|)`` and
``expm1(-|d|)``), so nothing overflows. Accuracy, checked against mpmath in
``tests/test_vecmath.py``: within 2 ulp over the whole range, gradual underflow included.
Each operation is IEEE arithmetic or an exactly rounded fused multiply-add (``llvm.fma``,
which is the hardware instruction where the CPU has one and a correctly rounded library
call where it has not), so the results are the same on every machine, vectorised or not.

Why ``y = k ln2 + r`` then ``e^y = 2^k (1 + p(r))``: ``|r| <= ln2/2`` and ``p`` is the
Taylor polynomial of ``expm1`` to degree 13, whose truncation error is below 2e-17 of the
result there. ``2^k`` is assembled from its bits; below the normal range the result is
scaled in two exact steps and rounded once (gradual underflow), with selects, not branches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numba
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from .. import _jit  # noqa: F401  (first: the keyed numba cache, see _jit)


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (``llvm.fma.f64``)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


@intrinsic
def _as_bits_intrinsic(typingctx, x):
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _from_bits_intrinsic(typingctx, n):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


# The intrinsics as jitted code calls them (numba supplies the typing context): typed for
# the checker as the plain functions they are, the same objects at run time.
fma = cast("Callable[[float, float, float], float]", _fma)
_as_bits = cast("Callable[[float], int]", _as_bits_intrinsic)
_from_bits = cast("Callable[[int], float]", _from_bits_intrinsic)


LOG2E = 1.4426950408889634
# ln 2 split so that k * LN2_HI is exact for |k| < 2**20 (LN2_HI has 32 significant bits)
LN2_HI = 0.6931471803691238
LN2_LO = 1.9082149292705877e-10
ROUND = 6755399441055744.0  # 1.5 * 2**52: x + ROUND - ROUND rounds x to an integer
TWO52 = 4503599627370496.0
TWO_M54 = 2.0 ** -54
FLOOR_ARG = -746.0  # e**-746 < 2**-1075: rounds to zero

# 1/n! for n = 2..13
_C = tuple(1.0 / math.factorial(n) for n in range(2, 14))
C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13 = _C


@numba.njit(cache=True, inline="always")
def _pow2(m):
    """``2**m`` for an integer-valued float ``m`` in [-1022, 1023]."""
    # m + 1023 + 2**52 holds m + 1023 in its low mantissa bits; shifted into the exponent
    # field, the 2**52 bit falls off the top.
    return _from_bits(_as_bits(m + (1023.0 + TWO52)) << 52)


@numba.njit(cache=True, inline="always")
def _reduce(y):
    """``y <= 0`` (NaN passes through) -> ``(k, p)`` with ``e**y = 2**k (1 + p)``."""
    y = y if not (y < FLOOR_ARG) else FLOOR_ARG
    k = (y * LOG2E + ROUND) - ROUND
    r = fma(-k, LN2_LO, fma(-k, LN2_HI, y))
    # Estrin's scheme, not Horner's: the dependency chain is 4 operations deep instead of
    # 11, so out-of-order cores overlap consecutive points (the loop was latency-bound).
    r2 = r * r
    r4 = r2 * r2
    q = fma(fma(fma(C13, r, C12), r2, fma(C11, r, C10)), r4 * r4,
            fma(fma(fma(C9, r, C8), r2, fma(C7, r, C6)), r4,
                fma(fma(C5, r, C4), r2, fma(C3, r, C2))))
    return k, fma(r2, q, r)


@numba.njit(cache=True, inline="always")
def exp_nonpos(y):
    """``exp(y)`` for ``y <= 0``."""
    k, p = _reduce(y)
    # Results below the normal range (k < -1022, y < -708.4): scale by 2**(k + 54), which is
    # exact, then by 2**-54, which rounds once into the subnormals.
    low = k < -1000.0
    s = _pow2(k + 54.0 if low else k)
    e = fma(p, s, s)
    return e * TWO_M54 if low else e


@numba.njit(cache=True, inline="always")
def expm1_nonpos(y):
    """``exp(y) - 1`` for ``y <= 0``, to full relative precision near 0."""
    k, p = _reduce(y)
    # below k = -100, exp(y) < 2**-99 and the result rounds to -1 whatever the scale
    s = _pow2(k if k > -100.0 else -100.0)
    return fma(p, s, s - 1.0)  # k = 0: exactly p
