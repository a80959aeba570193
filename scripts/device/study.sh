#!/usr/bin/env bash
# The contrast study (issues 15, 23) on one lent GPU, as back-to-back calls on one warm machine (state in /tmp).
# Here first:  bash scripts/device/prepare_carry.sh           (wheels, the GGUF in two halves)
#              python scripts/hacking_study.py --config configs/study/hacking.yaml --stage prompts \
#                  --set run_dir=device_carry/study/run        (the prompt split needs the shared data: made here)
# Then on the device, each call run from the repo root:
#   1. carry [device_carry/p0, .whl]:        bash scripts/device/study.sh part0
#   2. carry [device_carry/p1, device_carry/study]:  bash scripts/device/study.sh judges
#        embedded gold, answers, labels; the SFT judges in parallel with the reasoning traces
#   3. carry [device_carry/study]:           bash scripts/device/study.sh reasoning
#        the reasoning judge (SFT on the kept traces, GRPO) alone on the GPU, then every judge's alpha
#   4. carry [device_carry/study]:           bash scripts/device/study.sh policies   (again, back to back, to continue)
#        the five arms at once (RUNS= picks); each call stops its runs on a monitor step before DEADLINE s
#        (checkpoints stay in /tmp: a 200-step arm needs its calls on ONE warm machine) and packs.
# A machine that went cold loses /tmp: unpack the returned tarballs into device_carry/study/run (what must
# survive is committed under docs/experiments/reward_hacking/ and src/judgerl/study/judges/) and start at 1.
set -u
CFG=${CFG:-configs/study/hacking.yaml}
RUN=/tmp/study
DEADLINE=${DEADLINE:-540}   # seconds of this call's work before packing (the call's limit is 600)
T0=$(date +%s)
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
env_setup() {
  export PYTHONPATH=/tmp/site:$PWD/src JUDGERL_CACHE=/tmp/jc JUDGERL_SHARED_DATA=/tmp/sdata PYTHONUNBUFFERED=1
  export TOKENIZERS_PARALLELISM=false
  mkdir -p /tmp/sdata $RUN/logs
}
study() { python3 -m judgerl.study.run --config $CFG --set run_dir=$RUN ${STUDY_SET:-} "$@"; }
pack() {  # $1 = tar name, rest = paths under $RUN (missing ones skipped)
  local name=$1; shift; local have=()
  for p in "$@"; do for q in $RUN/$p; do [ -e "$q" ] && have+=("${q#$RUN/}"); done; done
  [ ${#have[@]} -gt 0 ] && tar -C $RUN -czf "$OUT/$name" --exclude='merged*' --exclude='checkpoints*' \
    --exclude='*.sqlite*' --exclude='final' "${have[@]}"
}
bg() {  # bg NAME SECONDS stage args...: a stage in the background with a hard time limit, log in logs/NAME.log
  local name=$1 secs=$2; shift 2
  ( timeout -s INT "$secs" python3 -m judgerl.study.run --config $CFG --set run_dir=$RUN ${STUDY_SET:-} "$@" \
      > $RUN/logs/$name.log 2>&1; echo "$name rc $?" ) &
}
case "$1" in
_stage)  # internal: one stage, logged to logs/$2.log
  env_setup; name=$2; shift 2; study "$@" > $RUN/logs/$name.log 2>&1; echo "$name rc $?" ;;
reasoning)  # the reasoning judge (SFT on the traces, GRPO) alone on the GPU (beside four policy runs its GRPO
  # ran out of memory on an 80 GB H100, 2026-12-06), then every judge's alpha
  env_setup
  timeout $(left) $0 _stage reasoning --stage judge-reasoning
  timeout $(left) $0 _stage judges-eval --stage judges-eval
  grep "^\[" $RUN/logs/reasoning.log $RUN/logs/judges-eval.log | tail -12
  pack reasoning.tgz judges/reasoning judges/curve.json 'judges/*/eval' judges/prompted judges/stage-judges-eval.json logs ;;
part0)
  cp device_carry/p0/part00 /tmp/part00
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv; ls /tmp ;;
judges)
  env_setup
  python3 -c "import trl, pydantic, krippendorff" 2>/dev/null || { echo "NEED_PART0: no wheels in /tmp/site"; exit 3; }
  G=$JUDGERL_CACHE/gguf/SmolLM2-135M-Instruct.Q4_1.gguf; mkdir -p $(dirname $G)
  if [ ! -f $G ]; then
    [ -f /tmp/part00 ] || { echo "NEED_PART0: no /tmp/part00"; exit 3; }
    cat /tmp/part00 device_carry/p1/part01 > $G
    [ "$(sha256sum $G | cut -d' ' -f1)" = "$(cat device_carry/p1/gguf.sha256)" ] || { echo "GGUF sha256 mismatch"; exit 3; }
  fi
  cp -rn device_carry/study/run/. $RUN/
  python3 -m judgerl.cli models fetch smollm2-135m-instruct > /dev/null || exit 1
  study --stage gold --stage answers --stage labels 2>&1 | grep "^\[" | tail -6
  # 2026-12-06: five SFT judges + the traces at once ran ~19 examples/s each; sft-5000/10000/20000 did not finish in
  # 540 s. Two lanes: the small judges then the traces, and the large judges one after another (LANES=1: serial).
  COUNTS=$(python3 -c "import yaml;print(' '.join(map(str,sorted(yaml.safe_load(open('$CFG'))['judges']['label_counts']))))")
  ( for n in $COUNTS; do [ $n -le 1500 ] && timeout $(left) $0 _stage sft-$n --stage judge-sft-$n; done
    timeout $(left) $0 _stage traces --stage reasoning-traces ) &
  ( for n in $COUNTS; do [ $n -gt 1500 ] && timeout $(left) $0 _stage sft-$n --stage judge-sft-$n; done ) &
  wait
  nvidia-smi --query-gpu=memory.used --format=csv,noheader
  for f in $RUN/logs/sft-*.log $RUN/logs/traces.log; do grep "^\[\|Error" $f | tail -2; done
  pack labels.tgz gold/gold.json gold/stage-gold.json answers/stage-answers.json labels logs
  pack judges_a.tgz judges/sft-500 judges/sft-1500 judges/sft-5000 judges/reasoning-traces
  pack judges_b.tgz judges/sft-10000 judges/sft-20000 ;;
policies)
  env_setup
  RUNS=${RUNS:-prompted mid best reasoning gold_control}
  for r in $RUNS; do bg policy-$r $(left) --stage policy:$r --set policy.max_seconds=$(( $(left) - 90 )); sleep 3; done
  wait
  for r in $RUNS; do echo "== $r"; grep "^\[\|Error\|error" $RUN/logs/policy-$r.log | tail -3; done
  for r in $RUNS; do pack policy_$r.tgz policies/$r; done ;;
esac
nvidia-smi --query-gpu=memory.used --format=csv,noheader
