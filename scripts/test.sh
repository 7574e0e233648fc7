#!/usr/bin/env bash
# The whole suite: lint, format, types, then every test. Run through `make test`.
set -euo pipefail
echo "== ruff"
ruff check dlcli tests benchmarks scripts
ruff format --check dlcli tests benchmarks scripts
echo "== mypy"
mypy dlcli
# The run report's browser test needs Chromium (Debian's `chromium`). CI runs this as root on a
# fresh machine: install it there; elsewhere that test is skipped when Chromium is missing.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "== installing chromium (apt-get) for tests/report/test_html_report.py"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "== pytest"
# Two workers: most tests wait on a CLI subprocess importing TensorFlow, so two at a time keep
# both cores busy (485 tests: 18 min in one process, under 10 min in two, on 2 cores).
# DLCLI_TEST_WORKERS=0 runs them in this process (pdb, print debugging).
python -m pytest -n "${DLCLI_TEST_WORKERS:-2}" "$@"
