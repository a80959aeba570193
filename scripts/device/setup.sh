#!/usr/bin/env bash
# Set up a lent GPU machine (see ../shared/docs/gpu.md): carried wheels into /tmp/site, the SmolLM2
# GGUF from two carried halves (part00 copied to /tmp by an earlier call, part01 in device_carry/p1),
# converted once to safetensors under $JUDGERL_CACHE. Source it: `source scripts/device/setup.sh`.
set -e
[ -d /tmp/site/trl ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src JUDGERL_CACHE=/tmp/jc JUDGERL_SHARED_DATA=$PWD/device_carry/data
mkdir -p $JUDGERL_CACHE/gguf
G=$JUDGERL_CACHE/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$G" ]; then
  [ -f device_carry/p0/part00 ] && cp device_carry/p0/part00 /tmp/part00
  cat /tmp/part00 device_carry/p1/part01 > $G
fi
python3 -m judgerl.cli models fetch smollm2-135m-instruct
set +e
