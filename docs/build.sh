#!/usr/bin/env bash
# Build the documentation: write the figures into docs/figures/ (not under version control),
# then build the site with warnings treated as errors. Run from anywhere; needs the
# package installed with its docs and plot extras (pip install -e ".[docs,plot]").
set -euo pipefail
cd "$(dirname "$0")/.."
phasemap figures --out docs/figures
python3 -m mkdocs build --strict "$@"
