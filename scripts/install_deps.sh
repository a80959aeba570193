#!/usr/bin/env bash
# make venv: judgerl's pinned dependencies into the venv whose python is $1.
#
# With uv (pinned, installed from PyPI into the venv) where it installs: it installs in parallel and from its own
# cache (~/.cache/uv), so a fresh clone's venv takes ~20 s instead of pip's 1-3 minutes (bench/RESULTS.md 7).
# Otherwise, or if uv fails, with pip as before. Either way torch is the CPU build: uv installs the local
# torch-2.13.0+cpu wheel from pip's find-links (this machine's /opt/wheels); without that wheel pip installs
# torch==2.13.0 as it always did. uv does not read pip's configuration, so pip's find-links, extra indexes and
# constraints are passed to it, every index considered as pip does (unsafe-best-match), torch held at 2.13.0.
set -euo pipefail
PY=$1
UV_PIN="uv==0.13.8"

pip_install() {
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q torch==2.13.0          # CPU build from local disk; never a CUDA download
  "$PY" -m pip install -q -e ".[test]"
}

uv_install() {
  "$PY" -m pip install -q "$UV_PIN" >/dev/null 2>&1 || return 1
  local args=(--python "$PY" --index-strategy unsafe-best-match) fl wheel hold
  conf() { "$PY" -m pip config get "global.$1" 2>/dev/null || true; }
  fl=$(conf find-links)
  for u in $(conf extra-index-url); do args+=(--extra-index-url "$u"); done
  [ -n "$fl" ] && args+=(--find-links "$fl")
  hold=$(mktemp)
  echo "torch==2.13.0" > "$hold"
  [ -n "$(conf constraint)" ] && cat "$(conf constraint)" >> "$hold"
  wheel=$(ls "$fl"/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1 || true)
  if [ -n "$wheel" ]; then
    "$PY" -m uv pip install -q "${args[@]}" "$wheel" || return 1
  else
    "$PY" -m pip install -q torch==2.13.0 || return 1
  fi
  "$PY" -m uv pip install -q "${args[@]}" --constraint "$hold" -e ".[test]" || return 1
  rm -f "$hold"
}

if ! uv_install; then
  echo "uv unavailable or failed: installing with pip" >&2
  pip_install
fi
