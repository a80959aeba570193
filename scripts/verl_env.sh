#!/usr/bin/env bash
# A separate Python environment with verl 0.9.1 (CPU torch 2.13.0) for tests/integrations/test_verl_real.py.
# verl 0.9.1 needs transformers < 5.11, so it cannot live in judgerl's .venv (transformers 5.17).
#   scripts/verl_env.sh [/tmp/verlenv]   then   JUDGERL_VERL_PYTHON=/tmp/verlenv/bin/python pytest -m verl ...
set -euo pipefail
ENV=${1:-/tmp/verlenv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$("$ROOT/.venv/bin/python" -c "import sys; print(sys._base_executable)")
"$PY" -m venv "$ENV"
"$ENV/bin/pip" install -q torch==2.13.0                  # CPU build; never a CUDA download
"$ENV/bin/pip" install -q verl==0.9.1 torch==2.13.0
"$ENV/bin/pip" install -q --no-deps -e "$ROOT"           # judgerl.integrations.verl (client mode needs httpx, pydantic)
"$ENV/bin/python" -c "import verl, judgerl.integrations.verl as v; print('verl', verl.__version__, 'ok')"
