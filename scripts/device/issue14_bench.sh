#!/usr/bin/env bash
# Issue 14 on one GPU (see prepare_carry.sh for the first call that copies part00):
#   small: CUDA-graph rollout tests, bench 3 at --prompts 4 --generations 8 --completion 64 --judge-tokens 128
#          (new / today / trl arms), bench 5 on real judge preferences at G = 8
#   long:  bench 3 at 16 prompts x G 8, 256-token completions, 256-token judge (new / today arms)
#   profile: bench 3 small shape with --profile (update split, allocator and GC counters, torch.profiler table
#          of step 4) for new, its two halves and today, to find why the new arm's update is slow
#   carry [.whl, device_carry/p1, device_carry/data]:  bash scripts/device/issue14_bench.sh small|long
set +e
source scripts/device/setup.sh || { echo "setup failed"; exit 1; }
export PYTHONUNBUFFERED=1 TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false
T0=$SECONDS
stamp() { echo "[$((SECONDS - T0)) s] $*" | tee -a $OUT/run_$1.log; }
if [ "$1" = small ]; then
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, transformers, trl; print(torch.__version__, transformers.__version__, trl.__version__)"
  } >> $OUT/run_small.log 2>&1
  if [ -z "${SKIP_TESTS:-}" ]; then
    timeout 150 python3 -m pytest -x -q -p no:cacheprovider tests/training/test_rollout.py -k "cuda_graph or greedy" \
      >> $OUT/run_small.log 2>&1
    rc=$?; stamp small "gpu tests rc=$rc"
    [ $rc -ne 0 ] && { tail -40 $OUT/run_small.log; exit 1; }
  fi
  timeout 330 python3 bench/grpo_step.py --steps 6 --trl-steps ${TRL_STEPS:-3} --prompts 4 --generations 8 \
    --completion 64 --judge-tokens 128 --standalone engine --out $OUT/grpo_step_h200.json > $OUT/grpo_step_small.log 2>&1
  stamp small "bench 3 small rc=$?"; tail -8 $OUT/grpo_step_small.log
  [ -d device_carry/data/alpaca-eval ] && timeout 60 python3 bench/pairwise_cost.py --prompts 16 --group 8 --out $OUT/pairwise_cost_h200.json > $OUT/pairwise.log 2>&1
  stamp small "bench 5 rc=$?"; tail -9 $OUT/pairwise.log
elif [ "$1" = profile ]; then
  timeout ${PROFILE_S:-420} python3 bench/grpo_step.py --steps 6 --arms ${ARMS:-new,engine_rollout,engine_judge,today} \
    --prompts 4 --generations 8 --completion 64 --judge-tokens 128 --profile --profile-step 4 \
    --out $OUT/grpo_step_h200_profile.json > $OUT/grpo_step_profile.log 2>&1
  stamp profile "bench 3 profile rc=$?"; tail -8 $OUT/grpo_step_profile.log
else
  timeout 480 python3 bench/grpo_step.py --steps ${LONG_STEPS:-4} --arms new,today --prompts 16 --generations 8 \
    --completion 256 --judge-tokens 256 --standalone engine --out $OUT/grpo_step_h200_long.json > $OUT/grpo_step_long.log 2>&1
  stamp long "bench 3 long rc=$?"; tail -6 $OUT/grpo_step_long.log
fi
