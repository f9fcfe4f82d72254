#!/usr/bin/env bash
# Build the Lava runtime environment: make_env.sh [VENV_DIR]  (default .venv-lava)
# Idempotent: an existing venv is reused and pip only installs what is missing.
# lava-nc 0.10.0 runs only on Python 3.10 (numpy < 2), so it never goes into the main .venv.
set -euo pipefail

VENV="${1:-.venv-lava}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ="$HERE/requirements.txt"

is_py310() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }

find_python310() {
    # 1. $LAVA_PYTHON, 2. python3.10 on PATH (a pyenv shim only runs when 3.10 is selected),
    # 3. pyenv's own 3.10 installs, 4. common system locations.
    local c
    for c in "${LAVA_PYTHON:-}" "$(command -v python3.10 || true)"; do
        if [ -n "$c" ] && is_py310 "$c"; then echo "$c"; return 0; fi
    done
    if command -v pyenv >/dev/null 2>&1; then
        for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$)' | sort -rV); do
            c="$(pyenv root)/versions/$v/bin/python3.10"
            if is_py310 "$c"; then echo "$c"; return 0; fi
        done
    fi
    for c in "$HOME"/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
        if [ -x "$c" ] && is_py310 "$c"; then echo "$c"; return 0; fi
    done
    return 1
}

if [ -x "$VENV/bin/python" ] && is_py310 "$VENV/bin/python"; then
    PY="$VENV/bin/python"
else
    if ! BASE="$(find_python310)"; then
        echo "make_env.sh: Python 3.10 not found (lava-nc 0.10.0 needs exactly 3.10)." >&2
        echo "  Install it (e.g. 'pyenv install 3.10' or 'apt-get install python3.10 python3.10-venv')," >&2
        echo "  or point LAVA_PYTHON at a python3.10 binary, then run 'make lava-env' again." >&2
        exit 1
    fi
    rm -rf "$VENV"
    echo "make_env.sh: creating $VENV with $BASE"
    "$BASE" -m venv "$VENV"
    PY="$VENV/bin/python"
fi

"$PY" -m pip install -q --disable-pip-version-check -r "$REQ"
"$PY" -c 'import lava, numpy, h5py; from lava.proc.lif.process import LIF; assert numpy.__version__ < "2"' \
    || { echo "make_env.sh: $VENV was built but 'import lava' fails" >&2; exit 1; }
echo "make_env.sh: $VENV ready ($("$PY" -c 'import numpy, sys; print("python", sys.version.split()[0], "numpy", numpy.__version__)'))"
