"""Compile numba ufuncs on first use, not at import.

``import phasemap`` (and so every CLI call answered from the cache) should not pay for
building gufuncs it may never call. :func:`lazy_gufunc` and :func:`lazy_vectorize` wrap a
plain module-level function; the numba ufunc is built (or loaded from numba's on-disk cache)
the first time it is called.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import os
import pickle
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


def _hash_sources() -> str:
    """Hash of every Python source file of the package as it is on disk now (~1 ms)."""
    h = hashlib.sha256()
    for f in sorted(_PACKAGE.rglob("*.py")):
        h.update(f.relative_to(_PACKAGE).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


#: The package's sources as this process imported them. Every module that defines a numba
#: function imports this module first, and the chain of imports that follows takes
#: milliseconds, so this is the code the process holds in memory (an edit inside that
#: window is caught below: the sources on disk then no longer hash to this key).
_IMPORTED_KEY = _hash_sources()


def source_key() -> str:
    """The key of the sources this process compiled its kernels from."""
    return _IMPORTED_KEY


def sources_unchanged() -> bool:
    """Whether the package's sources on disk are still the ones this process imported.

    When they are not (a file edited, a branch checked out or a package upgraded while the
    process runs), the process holds code that matches no cache entry it could name: it must
    neither load nor save compiled kernels, or machine code built from one version of the
    sources would run under the Python of another (a different work-array layout is a
    segfault).
    """
    return _hash_sources() == _IMPORTED_KEY


class _Stamp(tuple):
    """The source stamp of a function whose cache entries this module keeps (a marker type:
    the cache file class below treats every other stamp exactly as numba does)."""


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
        return _Stamp((super().get_source_stamp(), source_key()))  # type: ignore[misc]

    @classmethod
    def from_function(cls, py_func, py_file):
        try:
            path = Path(py_file).resolve()
            inside = any(path.is_relative_to(root) for root in _KEYED_ROOTS)
        except OSError:
            inside = False
        # numba's locators define from_function; the mixin comes first in their MRO
        return super().from_function(py_func, py_file) if inside else None  # type: ignore[misc]


class _KeyedCacheFile(caching.IndexDataCacheFile):
    """numba's cache file, with one data file per (sources, signature) for our functions.

    numba keeps an index per function mapping each signature to a numbered data file, and
    updates it read-modify-write without a lock. Two processes that compile two signatures
    of one function at the same time can both read the index, both take the number 1, and
    leave an index that sends one signature to the other's machine code; a process holding
    other sources (started before an edit) can do the same across versions. Calling code
    compiled for other argument types, or for another layout of the work array, crashes the
    process or returns wrong numbers.

    Here a data file's name is a hash of the source stamp and the signature's key, and the
    file repeats the key: a name can only ever hold the code for that key, written whole
    (numba writes a temporary file and renames it), so concurrent writers of one name write
    the same thing and there is no index to race on. Entries are read and written only while
    :func:`sources_unchanged`. Every other function's cache behaves exactly as numba's.
    """

    #: Data files kept per function: older entries (other sources, other machines) go
    #: first when a new one is written.
    KEEP = 64

    def __init__(self, cache_path, filename_base, source_stamp):
        super().__init__(cache_path, filename_base, source_stamp)
        self._keyed = isinstance(source_stamp, _Stamp)
        self._filename_base = filename_base

    def _keyed_name(self, key) -> str:
        digest = hashlib.sha256(repr((self._source_stamp, key)).encode()).hexdigest()[:24]
        return f"{self._filename_base}.k{digest}.nbc"

    def save(self, key, data):
        if not self._keyed:
            return super().save(key, data)
        if not sources_unchanged():
            return None
        self._save_data(self._keyed_name(key), (repr(key), data))
        self._prune()
        return None

    def load(self, key):
        if not self._keyed:
            return super().load(key)
        if not sources_unchanged():
            return None
        try:
            stored_key, data = self._load_data(self._keyed_name(key))
        except (OSError, ValueError, TypeError, EOFError, pickle.UnpicklingError):
            return None
        return data if stored_key == repr(key) else None

    def flush(self):
        if not self._keyed:
            return super().flush()
        for f in Path(self._cache_path).glob(f"{glob.escape(self._filename_base)}.k*.nbc"):
            with contextlib.suppress(OSError):
                f.unlink()
        return None

    def _prune(self) -> None:
        files = list(Path(self._cache_path).glob(f"{glob.escape(self._filename_base)}.k*.nbc"))
        if len(files) <= self.KEEP:
            return
        def mtime(f: Path) -> float:
            try:
                return f.stat().st_mtime
            except OSError:
                return 0.0
        for f in sorted(files, key=mtime)[:len(files) - self.KEEP]:
            with contextlib.suppress(OSError):
                f.unlink()


def _install_locators() -> None:
    locators = caching.CacheImpl._locator_classes
    if not any(issubclass(c, _PackageKeyed) for c in locators):
        keyed = [type(f"PhasemapKeyed{base.__name__}", (_PackageKeyed, base), {})
                 for base in (caching.UserProvidedCacheLocator, caching.InTreeCacheLocator,
                              caching.UserWideCacheLocator)]
        locators[:0] = keyed  # type: ignore[assignment]  # numba annotates it too narrowly
    # numba's Cache looks the class up in its module when a function's cache is made; the
    # subclass is numba's own class for every stamp that is not ours
    if not issubclass(caching.IndexDataCacheFile, _KeyedCacheFile):
        caching.IndexDataCacheFile = _KeyedCacheFile  # type: ignore[misc]


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
