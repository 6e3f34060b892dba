"""Compile numba ufuncs on first use, not at import.

``import phasemap`` (and so every CLI call answered from the cache) should not pay for
building gufuncs it may never call. :func:`lazy_gufunc` and :func:`lazy_vectorize` wrap a
plain module-level function; the numba ufunc is built (or loaded from numba's on-disk cache)
the first time it is called.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numba

_LOCK = threading.Lock()


class _Lazy:
    def __init__(self, build: Callable[[], Any], name: str):
        self._build = build
        self._ufunc: Any = None
        self.__name__ = name

    @property
    def ufunc(self) -> Any:
        if self._ufunc is None:
            with _LOCK:  # dask threads may race to the first call
                if self._ufunc is None:
                    self._ufunc = self._build()
        return self._ufunc

    def __call__(self, *args, **kwargs):
        return self.ufunc(*args, **kwargs)


def lazy_gufunc(signatures: list[str], layout: str, **options) -> Callable[[Callable], _Lazy]:
    """Like ``numba.guvectorize(signatures, layout, **options)``, built at first call."""
    def wrap(fn: Callable) -> _Lazy:
        build = functools.partial(numba.guvectorize(signatures, layout, **options), fn)
        return _Lazy(build, fn.__name__)
    return wrap


def lazy_vectorize(signatures: list[str], **options) -> Callable[[Callable], _Lazy]:
    """Like ``numba.vectorize(signatures, **options)``, built at first call."""
    def wrap(fn: Callable) -> _Lazy:
        build = functools.partial(numba.vectorize(signatures, **options), fn)
        return _Lazy(build, fn.__name__)
    return wrap
