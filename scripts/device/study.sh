#!/usr/bin/env bash
# The reward-hacking study (issue 15) on a lent GPU, in three back-to-back calls (state kept in /tmp while
# the machine stays warm). Run from the repo root on the device:
#   1. carry [device_carry/p0, .whl, device_carry/study]:  bash scripts/device/study.sh part0
#   2. carry [device_carry/p1, device_carry/data, device_carry/study]: bash scripts/device/study.sh prep
#      (exits 3 with NEED_PART0 when neither the wheels nor the GGUF's first half are on the machine)
#        gold RM ∥ answers, labels, SFT judges (in parallel), judge agreement
#   3. carry [device_carry/study]: bash scripts/device/study.sh policies     the policy runs, all at once on the one GPU
# device_carry/study/ holds llmbar/ (gold checks) and run/ (stage outputs made here, e.g. prompts/, or
# brought back from an earlier machine: adapters, labels). What comes back goes to $OUT as a few tarballs.
set -u
CFG=${CFG:-configs/study/hacking.yaml}
RUN=/tmp/study
SET=(--set run_dir=$RUN ${STUDY_SET:-})
env_setup() {
  export PYTHONPATH=/tmp/site:$PWD/device_carry/study/snap/src JUDGERL_CACHE=/tmp/jc JUDGERL_SHARED_DATA=/tmp/sdata PYTHONUNBUFFERED=1
  export TOKENIZERS_PARALLELISM=false
}
study() { python3 -m judgerl.study.run --config $CFG "${SET[@]}" "$@"; }
pack() {  # $1 = tar name, rest = paths under $RUN (missing ones skipped)
  local name=$1; shift; local have=()
  for p in "$@"; do [ -e "$RUN/$p" ] && have+=("$p"); done
  [ ${#have[@]} -gt 0 ] && tar -C $RUN -czf "$OUT/$name" --exclude='merged' --exclude='checkpoints' \
    --exclude='*.sqlite*' --exclude='annotations/pairwise.jsonl' "${have[@]}"
}
case "$1" in
part0)
  cp device_carry/p0/part00 /tmp/part00
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  mkdir -p /tmp/sdata && cp -r device_carry/study/llmbar /tmp/sdata/
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv; df -h /tmp | tail -1; ls /tmp ;;
prep)
  env_setup; mkdir -p $RUN /tmp/sdata $JUDGERL_CACHE/gguf
  python3 -c "import trl, pydantic, krippendorff" 2>/dev/null || { echo "NEED_PART0: no wheels in /tmp/site"; exit 3; }
  G=$JUDGERL_CACHE/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ ! -f $JUDGERL_CACHE/models/smollm2-135m-instruct/.complete ] && [ ! -f $G ]; then
    [ -f /tmp/part00 ] || { echo "NEED_PART0: no /tmp/part00"; exit 3; }
    cat /tmp/part00 device_carry/p1/part01 > $G
  fi
  cp -r device_carry/data/* /tmp/sdata/ && cp -rn device_carry/study/llmbar /tmp/sdata/ && cp -rn device_carry/study/run/. $RUN/
  python3 -m judgerl.cli models fetch smollm2-135m-instruct || exit 1
  study --stage prompts || exit 1
  mkdir -p $RUN/logs
  (study --stage gold > $RUN/logs/gold.log 2>&1; echo "gold rc $?") &
  (study --stage answers > $RUN/logs/answers.log 2>&1; echo "answers rc $?") &
  wait; grep "^\[" $RUN/logs/gold.log | tail -4; grep "^\[" $RUN/logs/answers.log | tail -2
  study --stage labels 2>&1 | grep -v -i warn | tail -4
  for n in $(python3 -c "import yaml,sys;print(' '.join(map(str,yaml.safe_load(open('$CFG'))['judges']['label_counts'])))"); do
    (study --stage judge-sft-$n > $RUN/logs/sft-$n.log 2>&1; echo "sft-$n rc $?") &
  done
  wait
  study --stage judges-eval 2>&1 | grep -v -i warn | tail -8
  pack gold.tgz gold prompts labels/labels.json labels/stage-labels.json answers/stage-answers.json logs
  pack labels.tgz labels/annotations answers/answers.jsonl
  pack judges.tgz judges ;;
policies)
  env_setup; mkdir -p $RUN/logs
  for r in ${RUNS:-prompted weak best gold_control}; do
    (study --stage policy:$r > $RUN/logs/policy-$r.log 2>&1; echo "policy $r rc $?") &
    sleep 2
  done
  wait
  for r in ${RUNS:-prompted weak best gold_control}; do grep "^\[\|Error\|error" $RUN/logs/policy-$r.log | tail -4; done
  for r in ${RUNS:-prompted weak best gold_control}; do pack policy_$r.tgz policies/$r logs/policy-$r.log; done ;;
esac
nvidia-smi --query-gpu=memory.used --format=csv,noheader
