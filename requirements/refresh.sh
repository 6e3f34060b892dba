#!/usr/bin/env bash
# Refresh the locks from pyproject.toml's version ranges (run after changing them):
#   bash requirements/refresh.sh            # keep current pins where still allowed
#   bash requirements/refresh.sh --upgrade  # take the newest versions the ranges allow
# One universal lock per use, valid on every Python phasemap supports (3.11+); uv is the tool
# (pip install uv). tests/test_lock.py checks that the locks satisfy pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
for extra in all dev; do
    out=requirements/$([ "$extra" = all ] && echo main || echo dev).lock
    uv pip compile pyproject.toml --universal --python-version 3.11 --extra "$extra" \
        --quiet "$@" -o "$out"
done
