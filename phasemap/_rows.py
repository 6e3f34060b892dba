"""Contiguous row blocks, so that numba loops over points vectorise.

The model gufuncs loop over the last axis of broadcast inputs (core dimension ``(n)``).
numba types every such row as a strided array, whatever its actual stride, and LLVM does not
vectorise a loop whose loads and stores have a stride it cannot see. The kernels therefore
take each row a block of :data:`BLOCK` points at a time as C-contiguous arrays and run the
scalar functions over those (a loop LLVM vectorises, 4 points per AVX instruction).

A row is one of three kinds, and each costs only what it needs: contiguous (the usual case
for the varying parameter and for every output: viewed as a C array, no copy), constant
(stride 0, a broadcast parameter: passed as a scalar by :class:`RowKernel`, or written into a
buffer once per row) or strided (copied through a buffer an element at a time).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._jit import lazy_gufunc  # first: installs the keyed numba cache (see _jit)

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
    # numba passes an intrinsic's typing context itself: mypy sees one argument too few
    return numba.carray(_voidptr(row.ctypes.data), row.shape[0], row.dtype)  # type: ignore[call-arg]


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
def work_rows(work, count, m):
    """``count`` C-contiguous rows of ``m`` points carved from a kernel's work array."""
    return _as_c(work)[:count * m].reshape((count, m))


@numba.njit(cache=True, inline="always")
def work_codes(work, row, count, m):
    """``count`` C-contiguous int8 rows of ``m`` points in the memory of the work array's
    float64 row ``row`` (of ``m`` points) and onwards: buffers for label outputs."""
    return numba.carray(_voidptr(work.ctypes.data + row * m * 8), (count, m),  # type: ignore[call-arg]
                        np.int8)


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


# --- row kernels specialised on which inputs vary along the row ---------------------------

def at(x, k):
    """``x[k]`` for a row, ``x`` itself for a scalar (numba picks one when compiling)."""
    return x[k] if isinstance(x, np.ndarray) else x


def block(x, start, m, buf):
    """:func:`block_in` for a row, ``x`` itself for a scalar."""
    return x[start:start + m] if isinstance(x, np.ndarray) else x


@overload(at)
def _at(x, k):
    if isinstance(x, types.Array):
        return lambda x, k: x[k]
    return lambda x, k: x


@overload(block)
def _block(x, start, m, buf):
    if isinstance(x, types.Array):
        return lambda x, start, m, buf: block_in(x, start, m, buf)
    return lambda x, start, m, buf: x


class RowKernel:
    """A gufunc over rows, compiled for each pattern of inputs that vary along the row.

    ``body(*inputs, *outputs)`` is written once with :func:`block` and :func:`at`; an input
    that is constant along every row (stride 0: a fixed parameter, or an axis other than the
    last) is passed to it as a scalar per row, so LLVM hoists everything that depends only
    on such inputs out of the loop over points, as a hand-written loop over a grid would. The
    gufunc for a pattern is built (or loaded from numba's cache) the first time it is needed.
    """

    def __init__(self, body, out_types: tuple[str, ...], work: int = 0):
        self.body = body
        self.out_types = out_types
        #: float64 rows of BLOCK points the body gets as one work array after its inputs,
        #: allocated once per call instead of once per row (rows may be short)
        self.work = work
        self._built: dict[tuple[bool, ...], Any] = {}
        self.__name__ = body.__name__

    def gufunc(self, varying: tuple[bool, ...]):
        fn = self._built.get(varying)
        if fn is None:
            ins = ["f8[:]" if v else "f8" for v in varying] + ["f8[:]"] * bool(self.work)
            outs = [f"{t}[:]" for t in self.out_types]
            layout = (",".join(["(n)" if v else "()" for v in varying]
                               + ["(w)"] * bool(self.work))
                      + "->" + ",".join(["(n)"] * len(outs)))
            # built on its first call (once, under _jit's lock); setdefault keeps one per
            # pattern when threads race here
            fn = self._built.setdefault(varying, lazy_gufunc(
                [f"void({', '.join(ins + outs)})"], layout, cache=True, target="cpu")(self.body))
        return fn

    def __call__(self, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> None:
        """Fill ``outputs`` (arrays of the broadcast shape) from broadcast ``inputs``."""
        varying = tuple(a.ndim > 0 and a.shape[-1] > 1 and a.strides[-1] != 0 for a in inputs)
        if not any(varying):  # the row length must come from an input
            varying = (True, *varying[1:])
        args = [a if v else a[..., 0] for a, v in zip(inputs, varying, strict=True)]
        if self.work:  # one per call: every row of this call reuses it, one after the other
            args.append(np.empty(self.work * BLOCK))
        self.gufunc(varying)(*args, *outputs)
