"""Contiguous row blocks, so that numba loops over points vectorise.

The model gufuncs loop over the last axis of broadcast inputs (core dimension ``(n)``).
numba types every such row as a strided array, whatever its actual stride, and LLVM does not
vectorise a loop whose loads and stores have a stride it cannot see. The kernels therefore
take each row a block of :data:`BLOCK` points at a time as C-contiguous arrays and run the
scalar functions over those (a loop LLVM vectorises, 4 points per AVX instruction).

A row is one of three kinds, and each costs only what it needs: contiguous (the usual case
for the varying parameter and for every output: viewed as a C array, no copy), constant
(stride 0, a broadcast parameter: written into a buffer once per row) or strided (copied
through a buffer an element at a time).
"""

from __future__ import annotations

import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from . import _jit  # noqa: F401  (first: the keyed numba cache, see _jit)

#: Points per block: the buffers of one block stay in the L1 cache.
BLOCK = 256


@intrinsic
def _voidptr(typingctx, address):
    sig = types.voidptr(types.intp)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


@numba.njit(cache=True, inline="always")
def _as_c(row):
    """The same memory as ``row`` typed as a C-contiguous array (``row`` must be contiguous)."""
    return numba.carray(_voidptr(row.ctypes.data), row.shape[0], row.dtype)


@numba.njit(cache=True, inline="always")
def block_in(row, start, m, buf):
    """A C-contiguous array whose first ``m`` items are ``row[start:start + m]``.

    A contiguous row is returned as itself (a view, no copy); a constant row (stride 0) is
    written into ``buf`` whole, once, at ``start == 0``; a strided row is copied into ``buf``.
    """
    stride = row.strides[0]
    if stride == row.itemsize:
        return _as_c(row)[start:start + m]
    if stride == 0:
        if start == 0:
            v = row[0]
            for k in range(buf.shape[0]):
                buf[k] = v
        return buf
    for k in range(m):
        buf[k] = row[start + k]
    return buf


@numba.njit(cache=True, inline="always")
def block_out(row, start, m, buf):
    """Where to write ``row[start:start + m]``: the row itself if contiguous, else ``buf``."""
    if row.strides[0] == row.itemsize:
        return _as_c(row)[start:start + m]
    return buf


@numba.njit(cache=True, inline="always")
def block_done(buf, start, m, row):
    """Copy ``buf[:m]`` into ``row[start:start + m]`` unless :func:`block_out` gave the row."""
    if row.strides[0] != row.itemsize:
        for k in range(m):
            row[start + k] = buf[k]
