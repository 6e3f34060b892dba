"""Where things live by default (no heavy imports: the CLI's cache-hit path uses this)."""

from __future__ import annotations

import os
from pathlib import Path


def default_store_url() -> str:
    """``$PHASEMAP_STORE``, else ``data/store`` beside the package's repository checkout,
    else ``./data/store``."""
    env = os.environ.get("PHASEMAP_STORE")
    if env:
        return env
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").exists() and (repo / "data").is_dir():
        return str(repo / "data" / "store")
    return str(Path.cwd() / "data" / "store")
