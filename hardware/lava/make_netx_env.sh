#!/usr/bin/env bash
# Build the netx environment: make_netx_env.sh [VENV_DIR]  (default .venv-netx)
# = the Lava env (make_env.sh: Python 3.10, lava-nc 0.10.0, numpy<2, h5py) + lava-dl 0.6.0 installed
# --no-deps + the packages lava.lib.dl really imports (requirements-netx.txt) + a path entry for
# netx_stub/, whose `torch` stands in for the torch lava-dl declares (see netx_stub/torch/__init__.py).
# A separate env: .venv-lava stays as the Lava runtime needs it. Idempotent.
set -euo pipefail

VENV="${1:-.venv-netx}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

bash "$HERE/make_env.sh" "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check -r "$HERE/requirements-netx.txt"
"$PY" -m pip install -q --disable-pip-version-check --no-deps lava-dl==0.6.0
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$HERE/netx_stub" > "$SITE/spikeattn_netx_torch_stub.pth"
"$PY" -c 'import numpy, torch; from lava.lib.dl.netx import hdf5; assert numpy.__version__ < "2"; assert torch.__version__.endswith("+stub")' \
    || { echo "make_netx_env.sh: $VENV was built but 'from lava.lib.dl.netx import hdf5' fails" >&2; exit 1; }
echo "make_netx_env.sh: $VENV ready (lava-dl 0.6.0 netx, torch stubbed)"
