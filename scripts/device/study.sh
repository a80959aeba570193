#!/usr/bin/env bash
# The contrast study (issues 15, 23) on one lent GPU, as back-to-back calls on one warm machine (state in /tmp).
# A call carries at most 64 MiB with the tree (26-37 MiB), so the GGUF travels in parts and the run dir as xz
# tarballs without the adapters the repo already ships. Here first:
#   bash scripts/device/prepare_carry.sh      (wheels)
#   bash scripts/device/study_carry.sh        (device_carry/g/<i>: the GGUF in parts; device_carry/st/: the run
#                                              dir's labels, stage records, traces, earlier policy runs)
# Then on the device, each call run from the repo root, each within ~30 s of the last:
#   1. carry [.whl, device_carry/g/0]:                 bash scripts/device/study.sh stash
#   2. carry [device_carry/g/<i>], each part but the last: bash scripts/device/study.sh stash
#   3. carry [device_carry/g/<last>, device_carry/st]: bash scripts/device/study.sh judges
#        the GGUF assembled, the run dir unpacked, the SFT judges in two lanes beside the reasoning judge
#        (SFT kept when its adapter is there, then GRPO), then every judge's alpha (judges-eval); with SKIP_EVAL=1
#        and `; DEADLINE=<rest> bash scripts/device/study.sh policies` the policy runs start in the same call
#   4. carry []:                                       bash scripts/device/study.sh policies   (again, to continue)
#   (a fresh machine whose run dir came from the committed study folder, docs/experiments/reward_hacking/contrast:
#    `labels` re-makes the answers and labels the folder does not keep, then the reasoning traces; `reasoning` trains
#    the reasoning judge on them and, with FRESH_EVAL=1, measures every judge's alpha and cost again)
#   (more judges later: `LABELS="10000 20000" study.sh sft`, resumable across calls on one warm machine; then
#    `study.sh finish`: the cross-judge matrix and the distances, packed)
#        RUNS= picks arms; each call stops its runs on a monitor step before DEADLINE s (checkpoints stay in
#        /tmp: an arm's calls must all be on ONE warm machine) and packs; FINISH=1 adds the cross-judge matrix.
# A machine that went cold loses /tmp: unpack the returned tarballs (scripts/device/unpack_study.sh) and start at 1.
set -u
CFG=${CFG:-configs/study/hacking.yaml}
RUN=/tmp/study
DEADLINE=${DEADLINE:-540}   # seconds of this call's work before packing (the call's limit is 600)
T0=$(date +%s)
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
env_setup() {
  export PYTHONPATH=/tmp/site:$PWD/src JUDGERL_CACHE=/tmp/jc JUDGERL_SHARED_DATA=/tmp/sdata PYTHONUNBUFFERED=1
  export TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
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
      >> $RUN/logs/$name.log 2>&1; echo "$name rc $?" ) &
}
prep_run() {  # the GGUF assembled from its parts, the run dir unpacked, the adapters the repo ships put back
  python3 -c "import trl, pydantic, krippendorff" 2>/dev/null || { echo "NEED_STASH: no wheels in /tmp/site"; return 3; }
  G=$JUDGERL_CACHE/gguf/SmolLM2-135M-Instruct.Q4_1.gguf; mkdir -p $(dirname $G)
  if [ ! -f $G ]; then
    cp device_carry/g/*/gpart* /tmp/ && cat $(ls /tmp/gpart* | sort -V) > $G   # the last part travels with this call
    [ "$(sha256sum $G | cut -d' ' -f1)" = "$(cat device_carry/g/*/gguf.sha256)" ] || { echo "GGUF sha256 mismatch"; return 3; }
  fi
  [ -f $RUN/labels/stage-labels.json ] || for t in device_carry/st/*.txz; do tar -C $RUN -xJf $t; done
  # the adapters the repo ships (left out of the tarballs)
  # (into the folders the tarballs made: they hold the adapters' configs, not their weights)
  mkdir -p $RUN/gold/adapter && cp -rn src/judgerl/study/gold_rm/. $RUN/gold/adapter/
  for a in sft-500/adapter sft-1500/adapter sft-5000/adapter sft-10000/adapter sft-20000/adapter reasoning/adapter \
      reasoning/sft_adapter; do
    [ -d src/judgerl/study/judges/$a ] && mkdir -p $RUN/judges/$a && cp -rn src/judgerl/study/judges/$a/. $RUN/judges/$a/; done
  python3 -m judgerl.cli models fetch smollm2-135m-instruct > /dev/null || return 1
}
case "$1" in
prep)  # only the set-up of `judges` (the judges are shipped): the policies call can follow
  env_setup; prep_run || exit $?; ls $RUN/judges/*/ ;;
_stage)  # internal: one stage, logged to logs/$2.log
  env_setup; name=$2; shift 2; study "$@" > $RUN/logs/$name.log 2>&1; echo "$name rc $?" ;;
labels)  # a fresh machine: the labels again (the committed study keeps no answers or train annotations: too large to
  # carry), then the reasoning judge's traces (e.g. STUDY_SET with --set reasoning.traces=rationalize)
  env_setup; prep_run || exit $?
  [ -f $RUN/answers/answers.jsonl ] || rm -f $RUN/answers/stage-answers.json
  [ -f $RUN/labels/annotations/pointwise.jsonl ] || rm -f $RUN/labels/stage-labels.json
  timeout $(left) $0 _stage labels --stage answers --stage labels
  timeout $(left) $0 _stage traces --stage reasoning-traces
  grep "^\[" $RUN/logs/labels.log $RUN/logs/traces.log | tail -8
  pack traces.tgz judges/reasoning-traces answers/stage-answers.json labels/labels.json labels/stage-labels.json logs
  pack annotations.tgz labels/annotations ;;
reasoning)  # the reasoning judge (SFT on the traces, GRPO) alone on the GPU (beside four policy runs its GRPO
  # ran out of memory on an 80 GB H100, 2026-12-06), then every judge's alpha (FRESH_EVAL=1: measured again, e.g.
  # for a new reasoning judge: the judges-eval record does not depend on it)
  env_setup
  [ -n "${FRESH_EVAL:-}" ] && rm -f $RUN/judges/stage-judges-eval.json
  timeout $(left) $0 _stage reasoning --stage judge-reasoning
  timeout $(left) $0 _stage judges-eval --stage judges-eval
  grep "^\[" $RUN/logs/reasoning.log $RUN/logs/judges-eval.log | tail -12
  pack reasoning.tgz judges/reasoning judges/curve.json 'judges/*/eval' judges/prompted judges/stage-judges-eval.json logs ;;
stash)  # a GGUF part (and the wheels, when carried) into /tmp for the next call
  [ -d .whl ] && [ ! -d /tmp/site/trl ] && python3 -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  cp device_carry/g/*/gpart* /tmp/ 2>/dev/null; ls -la /tmp/gpart* ;;
sft)  # SFT judges alone, one lane each (LABELS="10000 20000"); a judge a call before stopped resumes from its last
  # checkpoint (judges.save_steps; /tmp survives only on the warm machine); when all are trained, judges-eval scores
  # the new ones (the earlier judges' rows are kept). STUDY_SET must equal the first call's (the stage hashes)
  env_setup; prep_run || exit $?
  L=${LABELS:-10000 20000}; EVAL_S=${EVAL_S:-90}
  for n in $L; do ( timeout $(( $(left) - EVAL_S )) $0 _stage sft-$n --stage judge-sft-$n ) & sleep 2; done
  wait
  for n in $L; do echo "== sft-$n"; grep "^\[\|Error" $RUN/logs/sft-$n.log | tail -2; ls $RUN/judges/sft-$n/checkpoints 2>/dev/null; done
  if [ -z "$(for n in $L; do [ -f $RUN/judges/sft-$n/adapter/adapter_config.json ] || echo $n; done)" ]; then
    timeout $(( $(left) - 10 )) $0 _stage judges-eval --stage judges-eval
    grep "^\[" $RUN/logs/judges-eval.log | tail -8
  fi
  pack sft.tgz $(for n in $L; do echo judges/sft-$n; done) judges/curve.json judges/stage-judges-eval.json \
    'judges/*/eval' logs ;;
finish)  # the cross-judge matrix (every judge, every run, the arena) then the analysis (distances cached in each
  # run's base_nll.json, packed with it: an analyze cut by the deadline keeps the points it computed)
  env_setup
  timeout $(( $(left) - ${ANALYZE_S:-180} )) $0 _stage cross-judge --stage cross-judge
  timeout $(( $(left) - 15 )) $0 _stage analyze --stage analyze
  grep "^\[\|Error" $RUN/logs/cross-judge.log $RUN/logs/analyze.log | tail -10
  pack finish.tgz analysis 'policies/*/base_nll.json' judges/curve.json judges/stage-judges-eval.json logs ;;
judges)
  env_setup; prep_run || exit $?
  study --stage gold --stage answers --stage labels 2>&1 | grep "^\[" | tail -4
  TRAIN_S=${TRAIN_S:-400}  # then every judge's alpha in what is left
  ( timeout $TRAIN_S $0 _stage reasoning --stage judge-reasoning ) &
  ( for n in ${LANE_A:-5000 10000}; do timeout $(( TRAIN_S - ($(date +%s) - T0) )) $0 _stage sft-$n --stage judge-sft-$n; done ) &
  ( for n in ${LANE_B:-20000}; do timeout $(( TRAIN_S - ($(date +%s) - T0) )) $0 _stage sft-$n --stage judge-sft-$n; done ) &
  [ -n "${GUARDS:-}" ] && ( timeout 150 python3 -m pytest -q -p no:cacheprovider tests/judges/test_static_decode.py \
      -k gpu > $OUT/gpu_guards.log 2>&1; echo "gpu guards rc $?" ) &
  wait
  nvidia-smi --query-gpu=memory.used --format=csv,noheader
  for f in $RUN/logs/sft-*.log $RUN/logs/reasoning.log; do echo "== $f"; grep "^\[\|Error" $f | tail -3; done
  if [ -z "${SKIP_EVAL:-}" ]; then  # SKIP_EVAL=1: a policies call right after runs it beside the policy runs
    timeout $(left) $0 _stage judges-eval --stage judges-eval
    grep "^\[" $RUN/logs/judges-eval.log | tail -8
  fi
  pack judges_a.tgz judges/sft-5000 judges/sft-10000   # <= 16 MiB a file comes back: the adapters split in two
  pack judges_b.tgz judges/sft-20000 judges/reasoning judges/curve.json judges/prompted judges/stage-judges-eval.json \
    'judges/sft-*/eval' logs ;;
policies)  # FINISH=1: the cross-judge matrix and the analysis after the runs (FINISH_S seconds kept for them)
  env_setup
  RUNS=${RUNS:-prompted mid best reasoning gold_control}
  keep=$(( ${FINISH:+${FINISH_S:-150}} + 0 ))
  grep -q '"status": "done"' $RUN/judges/stage-judges-eval.json 2>/dev/null || \
    ( timeout $(( $(left) - keep )) $0 _stage judges-eval --stage judges-eval ) &
  for r in $RUNS; do bg policy-$r $(( $(left) - keep )) --stage policy:$r --set policy.max_seconds=$(( $(left) - keep - ${MARGIN:-90} )); sleep 3; done
  wait
  for r in $RUNS; do echo "== $r"; grep "^\[\|Error\|error" $RUN/logs/policy-$r.log | tail -3; done
  if [ -n "${FINISH:-}" ]; then
    timeout $(( $(left) - 20 )) $0 _stage cross-judge --stage cross-judge
    timeout $(( $(left) - 15 )) $0 _stage analyze --stage analyze   # distances (base NLL) for every run, cached
    grep "^\[\|Error" $RUN/logs/cross-judge.log $RUN/logs/analyze.log | tail -8
  fi
  for r in $RUNS; do pack policy_$r.tgz policies/$r; done
  pack eval.tgz judges/curve.json judges/stage-judges-eval.json 'judges/*/eval' judges/prompted analysis \
    'policies/*/base_nll.json' logs ;;
esac
nvidia-smi --query-gpu=memory.used --format=csv,noheader
