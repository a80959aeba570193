#!/usr/bin/env bash
# Install llama-cpp-python[server] into the venv from a wheel cached outside the repo.
# The wheel is built once (~4 min on 2 cores) with llama.cpp's AMX code off and no -march=native:
# the default build segfaults on the first completion on this CPU.
set -euo pipefail
PY=${1:-.venv/bin/python}
WHEELS=${JUDGERL_CACHE:-$HOME/.cache/judgerl}/wheels
VERSION=0.3.36
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-$VERSION-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $VERSION (one-off, ~4 min) into $WHEELS"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
    "$PY" -m pip wheel --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==$VERSION"
fi
"$PY" -m pip install -q --find-links "$WHEELS" "llama-cpp-python[server]==$VERSION"
