#!/usr/bin/env bash
# The second command of the README: set up with the test extras, check the import contracts, then run
# the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# the import contracts in pyproject.toml (layers, independent families): a broken one fails the run
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
