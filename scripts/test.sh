#!/usr/bin/env bash
# The whole suite: lint, format, types, then every test. Run through `make test`.
set -euo pipefail
echo "== ruff"
ruff check dlcli tests benchmarks scripts
ruff format --check dlcli tests benchmarks scripts
echo "== mypy"
mypy dlcli
echo "== pytest"
python -m pytest "$@"
