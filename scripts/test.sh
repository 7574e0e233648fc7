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
python -m pytest "$@"
