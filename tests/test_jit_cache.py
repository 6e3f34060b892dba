"""numba's on-disk cache follows every source file of the package, not only the kernel's own.

The model gufuncs in ``models.py`` inline functions from ``physics/``; numba alone checks a
cached kernel against ``models.py`` only, so an edit or an upgrade of ``physics/`` used to
load stale machine code. Here a copy of the package is edited between two runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import phasemap

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
    assert list(pkg.glob("__pycache__/models*.nbi")), "the kernel was not cached"
    physics = pkg / "physics" / "single_level.py"
    text = physics.read_text()
    old = "return (signed_product(J, eL), signed_product(J, eR),"
    assert old in text
    physics.write_text(text.replace(old, "return (2.0 * signed_product(J, eL), "
                                         "signed_product(J, eR),"))
    assert _run(tmp_path) == 1.0  # models.py did not change; its cached kernel must not load
