"""Compile numba ufuncs on first use, not at import.

``import phasemap`` (and so every CLI call answered from the cache) should not pay for
building gufuncs it may never call. :func:`lazy_gufunc` and :func:`lazy_vectorize` wrap a
plain module-level function; the numba ufunc is built (or loaded from numba's on-disk cache)
the first time it is called.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
from numba.core import caching

_LOCK = threading.Lock()

_PACKAGE = Path(__file__).resolve().parent
_KEYED_ROOTS = [_PACKAGE]


def key_cache_of(directory: str | os.PathLike) -> None:
    """Key the numba cache of functions defined under ``directory`` to the package sources
    too (for code outside the package that inlines its kernels, e.g. the benchmarks)."""
    _KEYED_ROOTS.append(Path(directory).resolve())


@functools.cache
def source_key() -> str:
    """Hash of every Python source file of the package (about 1 ms to compute)."""
    h = hashlib.sha256()
    for f in sorted(_PACKAGE.rglob("*.py")):
        h.update(f.relative_to(_PACKAGE).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


class _PackageKeyed:
    """Numba cache locator mixin: an entry is valid only for the package sources it was built
    from.

    numba checks a cached function against its own file only. The model kernels in
    ``models.py`` inline functions from ``physics/`` and ``regimes.py``, so an edit (or an
    upgrade) there would otherwise load stale machine code, and with it wrong numbers
    under a new model version. The stamp below adds :func:`source_key`, so any change to
    the package's sources recompiles its kernels; other libraries' caches are untouched.
    """

    def get_source_stamp(self):
        return (super().get_source_stamp(), source_key())  # type: ignore[misc]

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            path = Path(py_file).resolve()
            inside = any(path.is_relative_to(root) for root in _KEYED_ROOTS)
        except OSError:
            inside = False
        # numba's locators define from_function; the mixin comes first in their MRO
        return super().from_function(py_func, py_file) if inside else None  # type: ignore[misc]


def _install_locators() -> None:
    locators = caching.CacheImpl._locator_classes
    if any(issubclass(c, _PackageKeyed) for c in locators):
        return
    keyed = [type(f"PhasemapKeyed{base.__name__}", (_PackageKeyed, base), {})
             for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                          caching.UserWideCacheLocator)]
    locators[:0] = keyed  # type: ignore[assignment]  # numba annotates it too narrowly


# Before any of the package's numba functions is decorated (every module that defines one
# imports this module first).
_install_locators()


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
