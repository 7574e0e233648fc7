#!/usr/bin/env bash
# Run a command inside dlcli's Python environment, building it first if needed.
#
# The environment lives outside the clone, keyed on a hash of the files that define it, so
# every clone and every CI run on this machine reuses it; it is built from nothing (and
# atomically: a half-built one is never used) when absent. It holds the dependencies only:
# dlcli itself runs from this checkout (PYTHONPATH), and `dlcli` on PATH is a shim for it.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
HASH="$(cat "$REPO/pyproject.toml" "$REPO/scripts/with-env.sh" | sha256sum | cut -c1-16)"
VENV="${DLCLI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dlcli/venv-$HASH}"

if [ ! -f "$VENV/.complete" ]; then
    mkdir -p "$(dirname "$VENV")"
    # Venvs are not relocatable, so it is built in place; the marker file, written last,
    # says it is whole, and the lock keeps two clones from building it at once.
    exec 9>"$VENV.lock"
    flock 9
    if [ ! -f "$VENV/.complete" ]; then
        echo "dlcli: building the Python environment in $VENV (a few minutes, once)" >&2
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --quiet "$REPO[dev]"
        "$VENV/bin/python" -m pip uninstall --quiet --yes dlcli
        touch "$VENV/.complete"
    fi
    flock -u 9
fi

SHIMS="$REPO/.shims"
mkdir -p "$SHIMS"
cat > "$SHIMS/dlcli" <<SHIM
#!/bin/sh
PYTHONPATH="$REPO\${PYTHONPATH:+:\$PYTHONPATH}" exec "$VENV/bin/python" -m dlcli "\$@"
SHIM
chmod +x "$SHIMS/dlcli"
export PATH="$SHIMS:$VENV/bin:$PATH"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export VIRTUAL_ENV="$VENV"
cd "$REPO"
exec "$@"
