"""The locks pin what pyproject.toml allows, and the installed packages are the locked ones.

``requirements/main.lock`` (extra ``all``) and ``requirements/dev.lock`` (extra ``dev``) are
made by ``bash requirements/refresh.sh`` (uv pip compile --universal). A range changed in
pyproject.toml without a refresh, or a lock edited by hand into disagreement, fails here.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata

import pytest
from helpers import REPO
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCKS = {"all": REPO / "requirements" / "main.lock", "dev": REPO / "requirements" / "dev.lock"}


def requirements_of(extra: str) -> list[Requirement]:
    """The project's requirements with ``extra``, self-references (phasemap[x]) expanded."""
    project = PYPROJECT["project"]
    out = [Requirement(r) for r in project["dependencies"]]
    todo, seen = [extra], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for r in map(Requirement, project["optional-dependencies"][name]):
            if canonicalize_name(r.name) == "phasemap":
                todo.extend(r.extras)
            else:
                out.append(r)
    return out


def pins(lock) -> dict[str, list[tuple[str, Marker | None]]]:
    """``name -> [(version, marker)]`` from a uv lock (one name may be pinned per marker)."""
    found: dict[str, list[tuple[str, Marker | None]]] = {}
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)\s*(?:;\s*(.+))?$", line.strip())
        if m:
            name = canonicalize_name(m.group(1).split("[")[0])
            found.setdefault(name, []).append((m.group(2),
                                                Marker(m.group(3)) if m.group(3) else None))
    return found


def pinned_here(lock, name: str) -> str | None:
    """The version ``lock`` pins for ``name`` on this interpreter, or None."""
    for version, marker in pins(lock).get(canonicalize_name(name), []):
        if marker is None or marker.evaluate():
            return version
    return None


@pytest.mark.parametrize("extra", sorted(LOCKS))
def test_lock_satisfies_pyproject(extra):
    lock = LOCKS[extra]
    assert "uv pip compile pyproject.toml" in lock.read_text().splitlines()[1], \
        f"{lock.name} was not made by requirements/refresh.sh"
    bad = []
    for req in requirements_of(extra):
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = pinned_here(lock, req.name)
        if version is None:
            bad.append(f"{req.name}: not pinned in {lock.name}")
        elif not req.specifier.contains(version, prereleases=True):
            bad.append(f"{req.name}=={version} outside {req.specifier} (pyproject.toml)")
    assert not bad, "lock disagrees with pyproject.toml; run bash requirements/refresh.sh:\n" \
        + "\n".join(bad)


def test_main_lock_is_within_dev_lock():
    """The service runs with the versions the tests ran with."""
    main, dev = pins(LOCKS["all"]), pins(LOCKS["dev"])
    def versions(entries):
        return sorted({v for v, _ in entries or []})

    differ = {n: (versions(v), versions(dev.get(n))) for n, v in main.items()
              if versions(dev.get(n)) != versions(v)}
    assert not differ, differ


def test_installed_packages_are_the_locked_ones():
    """Under the README's test command the environment holds exactly the dev lock's pins."""
    wrong = []
    for name in pins(LOCKS["dev"]):
        version = pinned_here(LOCKS["dev"], name)
        if version is None:
            continue
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: locked {version}, not installed")
            continue
        if canonicalize_name(have) != canonicalize_name(version) and have != version:
            wrong.append(f"{name}: locked {version}, installed {have}")
    assert not wrong, f"python {sys.version.split()[0]}: " + "; ".join(wrong)
