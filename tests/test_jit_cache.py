"""numba's on-disk cache follows every source file of the package, not only the kernel's own.

The model gufuncs in ``models.py`` inline functions from ``physics/``; numba alone checks a
cached kernel against ``models.py`` only, so an edit or an upgrade of ``physics/`` used to
load stale machine code. Here a copy of the package is edited between two runs.

The cache also never hands a process another signature's code: numba keeps, per function, an
index from each signature to a numbered data file and updates it read-modify-write without a
lock: two processes compiling two signatures of one function at once can leave the index
sending one signature to the other's machine code. Calling it crashed processes (a segfault
inside the single-level gufunc, seen three times). phasemap's cache file
(``phasemap._jit._KeyedCacheFile``) names each data file by a hash of the source stamp and the
signature, so that no interleaving of writers can pair a key with other code, and uses the
cache only while the sources on disk are the ones the process imported.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from numba.core import caching

import phasemap
from phasemap import _jit

SCRIPT = """
import numpy as np
from phasemap import models
m = models.get_model("single_level")
d = m.derive({"J_L": np.array([0.5])}, eps=np.array([1.0]), T=1.0, dT=0.0, dV=0.0, mu=0.0,
             gamma_L=1.0, gamma_R=1.0)
print(repr(float(d["Q_L"][0])))
"""


def _run(root: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(root))
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=root, env=env, check=True,
                         capture_output=True, text=True, timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def test_editing_physics_recompiles_the_model_kernels(tmp_path):
    src = Path(phasemap.__file__).parent
    pkg = tmp_path / "phasemap"
    shutil.copytree(src, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    assert _run(tmp_path) == 0.5  # Q_L = (eps - mu_L) J_L, compiled and cached
    assert list(pkg.glob("__pycache__/models*.k*.nbc")), "the kernel was not cached"
    physics = pkg / "physics" / "single_level.py"
    text = physics.read_text()
    old = "return (signed_product(J, eL), signed_product(J, eR),"
    assert old in text
    physics.write_text(text.replace(old, "return (2.0 * signed_product(J, eL), "
                                         "signed_product(J, eR),"))
    assert _run(tmp_path) == 1.0  # models.py did not change; its cached kernel must not load

NUMBA_FILE = _jit._KeyedCacheFile.__mro__[1]  # numba's own IndexDataCacheFile


def _interleaved_saves(cls, path: Path, stamp) -> dict[str, object]:
    """Two writers save two keys of one function in the order that breaks numba's index.

    Both read the index before either writes it; then A writes its index, B its index, B its
    data and A its data last. Returns what a fresh reader loads for each key.
    """
    a, b = cls(str(path), "f-1.py311", stamp), cls(str(path), "f-1.py311", stamp)
    read = threading.Barrier(2)
    index_a_written, index_b_written = threading.Event(), threading.Event()
    data_b_written = threading.Event()

    def hold_after_reading(f):
        original = f._load_index

        def load_index():
            out = original()
            read.wait(timeout=10)
            return out
        f._load_index = load_index

    def ordered(f, before_index, after_index, before_data, after_data):
        save_index, save_data = f._save_index, f._save_data

        def index(overloads):
            if before_index is not None:
                before_index.wait(timeout=10)
            save_index(overloads)
            after_index.set()

        def data(name, payload):
            if before_data is not None:
                before_data.wait(timeout=10)
            save_data(name, payload)
            if after_data is not None:
                after_data.set()
        f._save_index, f._save_data = index, data

    if cls is NUMBA_FILE:  # only numba's reads an index
        hold_after_reading(a)
        hold_after_reading(b)
    ordered(a, None, index_a_written, data_b_written, None)
    ordered(b, index_a_written, index_b_written, None, data_b_written)
    if cls is not NUMBA_FILE:  # no index: A's data write still comes last
        index_a_written.set()
    threads = [threading.Thread(target=a.save, args=("key-A", "code for A")),
               threading.Thread(target=b.save, args=("key-B", "code for B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    reader = cls(str(path), "f-1.py311", stamp)
    return {"key-A": reader.load("key-A"), "key-B": reader.load("key-B")}


def test_numba_index_race_is_real(tmp_path):
    """The interleaving below makes numba's own cache file pair a key with other code (so
    the next test can fail)."""
    got = _interleaved_saves(NUMBA_FILE, tmp_path, ("stamp",))
    assert got["key-B"] == "code for A"


def test_keyed_cache_file_never_pairs_a_key_with_other_code(tmp_path):
    stamp = _jit._Stamp((("mtime", 1), _jit.source_key()))
    got = _interleaved_saves(_jit._KeyedCacheFile, tmp_path, stamp)
    assert got == {"key-A": "code for A", "key-B": "code for B"}


def test_other_libraries_keep_numbas_cache_file(tmp_path):
    """A stamp that is not phasemap's gets numba's behaviour unchanged (index + numbers)."""
    f = _jit._KeyedCacheFile(str(tmp_path), "g-3.py311", ((1.0, 2),))
    f.save("k", "data")
    assert (tmp_path / "g-3.py311.nbi").exists()
    assert (tmp_path / "g-3.py311.1.nbc").exists()
    assert f.load("k") == "data"
    assert caching.IndexDataCacheFile is _jit._KeyedCacheFile  # what numba's Cache uses


def test_no_cache_once_the_sources_changed(tmp_path, monkeypatch):
    """A process whose sources were edited under it neither loads nor saves kernels."""
    stamp = _jit._Stamp((("mtime", 1), _jit.source_key()))
    f = _jit._KeyedCacheFile(str(tmp_path), "h-1.py311", stamp)
    f.save("k", "current code")
    assert f.load("k") == "current code"
    monkeypatch.setattr(_jit, "_IMPORTED_KEY", "0" * 16)  # as if the files changed since
    assert not _jit.sources_unchanged()
    assert f.load("k") is None
    f.save("k2", "stale code")
    monkeypatch.undo()
    assert f.load("k2") is None
    assert len(list(tmp_path.glob("h-1.py311.k*.nbc"))) == 1


def test_a_data_file_names_its_key(tmp_path):
    """An entry whose file holds another key's code (e.g. copied by hand) is not loaded."""
    stamp = _jit._Stamp((("mtime", 1), _jit.source_key()))
    f = _jit._KeyedCacheFile(str(tmp_path), "i-1.py311", stamp)
    f.save("k1", "code 1")
    f.save("k2", "code 2")
    os.replace(tmp_path / f._keyed_name("k1"), tmp_path / f._keyed_name("k2"))
    assert f.load("k2") is None
    assert f.load("k1") is None


def test_old_entries_are_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(_jit._KeyedCacheFile, "KEEP", 3)
    stamp = _jit._Stamp((("mtime", 1), _jit.source_key()))
    f = _jit._KeyedCacheFile(str(tmp_path), "j-1.py311", stamp)
    for k in range(6):
        f.save(f"k{k}", k)
    assert len(list(tmp_path.glob("j-1.py311.k*.nbc"))) == 3
    f.flush()
    assert not list(tmp_path.glob("j-1.py311.k*.nbc"))


RACER = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from phasemap import _jit
    _jit.key_cache_of(sys.argv[1])
    import numpy as np
    from numba import types
    import racemod
    SIGS = [(types.float64, types.float64), (types.int64, types.int64),
            (types.float32, types.float32), (types.int32, types.int32),
            (types.float64, types.int64), (types.int64, types.float64)]
    VALUES = [(1.5, 2.25), (np.int64(7), np.int64(-3)), (np.float32(1.5), np.float32(2.0)),
              (np.int32(4), np.int32(5)), (1.5, np.int64(2)), (np.int64(2), 1.25)]
    if sys.argv[2] == "check":
        bad = [repr(a) for a, b in VALUES if racemod.f(a, b) != a * 3 + b]
        hits = sum(racemod.f.stats.cache_hits.values())
        print(len(bad), hits)
    else:
        start, which = float(sys.argv[2]), int(sys.argv[3])
        while time.time() < start:
            pass
        for sig in SIGS[which:] + SIGS[:which]:
            racemod.f.compile(sig)
''')


@pytest.mark.timeout(300)
def test_processes_compiling_at_once_share_the_cache_safely(tmp_path):
    """Processes compiling six signatures of one function at the same moment, each in its own
    order, into one cache: a fresh process then loads every signature from the cache and each
    computes its own arithmetic."""
    (tmp_path / "racemod.py").write_text(
        "import numba\n\n@numba.njit(cache=True)\ndef f(x, y):\n    return x * 3 + y\n")
    (tmp_path / "racer.py").write_text(RACER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(_jit.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    env.pop("NUMBA_CACHE_DIR", None)
    import time
    start = time.time() + 4.0
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "racer.py"), str(tmp_path),
                               str(start), str(w)], env=env) for w in range(4)]
    assert [p.wait(timeout=240) for p in procs] == [0] * 4
    assert list((tmp_path / "__pycache__").glob("racemod.f-*.k*.nbc"))
    assert not list((tmp_path / "__pycache__").glob("racemod.f-*.nbi"))
    out = subprocess.run([sys.executable, str(tmp_path / "racer.py"), str(tmp_path), "check"],
                         env=env, capture_output=True, text=True, timeout=240, check=True)
    bad, hits = map(int, out.stdout.split())
    assert (bad, hits) == (0, 6)


@pytest.mark.parametrize("model", ["single_level", "pauli", "anderson", "coulomb_coupled_dots",
                                   "resonant_level"])
def test_every_model_near_zero_temperature_is_finite_and_silent(model):
    """T = 1e-300: Fermi arguments beyond 1e300 (Dekker's split overflows there) and rates that
    round to exactly 0 (a generator with isolated states) give finite outputs, defined labels
    and no warning."""
    import warnings

    import numpy as np

    import phasemap
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = phasemap.evaluate(model, eps=np.array([-1.0, 0.0, 1.0]), T=1e-300, dT=1e-301,
                               dV=np.array([-0.5, 0.0, 0.5]))
    undefined = ds["regime"].attrs["flag_meanings"].split().index("undefined")
    codes = ds["regime"].attrs["flag_values"]
    assert (ds["regime"].values != codes[undefined]).all()
    for name in ("J_L", "Q_L", "Q_R", "P", "s", "noise_J"):
        assert np.isfinite(ds[name].values).all(), name
