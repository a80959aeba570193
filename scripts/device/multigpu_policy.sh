#!/usr/bin/env bash
# Policy GRPO on one GPU vs `accelerate launch` with two processes (DDP), pointwise and pairwise judges,
# plus a pairwise layout that would split groups (must be refused). Results: $OUT/multigpu/<run>/.
#   source scripts/device/setup.sh && bash scripts/device/multigpu_policy.sh [steps]
STEPS=${1:-12}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1  # multicast stays off (device KINDS.md)
W=/tmp/mg; rm -rf $W; mkdir -p $W $OUT/multigpu
COMMON=(--config configs/policy_embedded.yaml --set grpo.max_steps=$STEPS --set grpo.save_steps=100000
        --set grpo.save_final=false --set grpo.max_completion_length=64 --set grpo.num_generations=4
        --set monitor.every_steps=4 --set monitor.n_prompts=16 --set monitor.max_new_tokens=64)
PAIR=(--set judge.format=pairwise --set judge.name=smol-pairwise)
one() { CUDA_VISIBLE_DEVICES=0 python3 -m judgerl.cli train-policy "${COMMON[@]}" --set run_dir=$W/$1 "${@:2}"; }
two() { python3 -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
          -m judgerl.cli train-policy "${COMMON[@]}" --set run_dir=$W/$1 "${@:2}"; }
run() { local t0=$SECONDS; "$@" > $OUT/multigpu/$2.log 2>&1; local rc=$?
        echo "$2 rc=$rc wall_s=$((SECONDS - t0))" | tee -a $OUT/multigpu/runs.txt; }
run one pointwise_1gpu --set grpo.per_device_train_batch_size=16
run two pointwise_2gpu --set grpo.per_device_train_batch_size=8
run one pairwise_1gpu  --set grpo.per_device_train_batch_size=16 "${PAIR[@]}"
run two pairwise_2gpu  --set grpo.per_device_train_batch_size=8 "${PAIR[@]}"
run two pairwise_2gpu_split --set grpo.per_device_train_batch_size=6 "${PAIR[@]}"
tail -2 $OUT/multigpu/pairwise_2gpu_split.log
for d in $W/*/; do n=$(basename $d); mkdir -p $OUT/multigpu/$n
  cp $d/*.json $d/*.jsonl $d/config.yaml $OUT/multigpu/$n/ 2>/dev/null; done
nvidia-smi --query-gpu=name --format=csv,noheader > $OUT/multigpu/gpus.txt
