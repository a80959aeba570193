#!/usr/bin/env bash
# Prepare what a lent GPU machine needs (run here, once; see ../../../shared/docs/gpu.md and setup.sh):
#   .whl/                 wheels missing from the device image (Python 3.12, manylinux x86_64)
#   device_carry/p0/part00, device_carry/p1/part01   the cached SmolLM2 GGUF in two halves (< 64 MiB a call)
#   device_carry/data/    the shared-data folders the benches and tests read (self-instruct, alpaca-eval)
#   device_carry/READY    written last; the other steps are skipped when it is there (FORCE=1 redoes them)
# Then, on the device, two calls back to back (the machine stays warm ~30 s):
#   1. carry [device_carry/p0]:                      cp device_carry/p0/part00 /tmp/part00
#   2. carry [.whl, device_carry/p1, device_carry/data]: source scripts/device/setup.sh && <job>
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -f device_carry/READY ] && [ -z "${FORCE:-}" ] && { echo "device_carry/READY exists (FORCE=1 to redo)"; exit 0; }
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.whl/' >> .git/info/exclude; }

# (a) wheels: judgerl's imports on top of the image (torch, transformers, accelerate, pandas, pyarrow, scipy,
# httpx, typer, rich, pyyaml, fsspec, xxhash are there); openai is imported lazily and not carried.
WHEELS=(trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0 fsspec==2026.9.0 gguf==0.19.0
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.7.0 typing-inspection==0.4.4
        typing-extensions==4.16.0 krippendorff==0.9.0 confusable-homoglyphs==3.3.1)
PLAT=()
for n in 2_17 2_24 2_27 2_28 2_31 2_34 2_35; do PLAT+=(--platform "manylinux_${n}_x86_64"); done
PLAT+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLAT[@]}" -d .whl "${WHEELS[@]}"
echo "wheels: $(ls .whl | wc -l) files, $(du -sh .whl | cut -f1)"

# (b) the GGUF in two halves (fetched into the user cache first if missing)
G="${JUDGERL_CACHE:-$HOME/.cache/judgerl}/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$G" ]; then
  PY=.venv/bin/python; [ -x "$PY" ] || PY=python3
  PYTHONPATH=src "$PY" -m judgerl.cli models fetch smollm2-135m-instruct
fi
rm -rf device_carry/p0 device_carry/p1 && mkdir -p device_carry/p0 device_carry/p1
tmp=$(mktemp -d) && split -b 49300000 -d "$G" "$tmp/part"
mv "$tmp/part00" device_carry/p0/part00 && mv "$tmp/part01" device_carry/p1/part01 && rmdir "$tmp"
sha256sum "$G" | cut -d' ' -f1 > device_carry/p1/gguf.sha256

# (c) shared data the benches read (prompt pool, AlpacaEval answers for bench 5)
DATA="${JUDGERL_SHARED_DATA:-../shared/data}"
rm -rf device_carry/data && mkdir -p device_carry/data
cp -r "$DATA/self-instruct" "$DATA/alpaca-eval" device_carry/data/
touch device_carry/READY
du -sh device_carry/p0 device_carry/p1 device_carry/data .whl
