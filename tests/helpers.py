"""Small helpers shared by the tests that start real phasemap subprocesses."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def subprocess_env() -> dict[str, str]:
    """The environment for a phasemap subprocess: this checkout first on the path, no
    inherited default store, and a wide terminal so result lines never wrap."""
    env = dict(os.environ)
    env.pop("PHASEMAP_STORE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    return env
