#!/usr/bin/env bash
# What scripts/device/study.sh's calls carry (ignored: device_carry/ is in .gitignore):
#   device_carry/g/{a,b,c}/gpart0N   the cached SmolLM2 GGUF in thirds (the tree is ~26 MiB of a call's 64)
#   device_carry/st/*.txz            the study's run dir (RUN, default device_carry/study/run) without merged models,
#                                    checkpoints, caches and the adapters the repo ships: labels, the rest, policies
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-device_carry/study/run}
G="${JUDGERL_CACHE:-$HOME/.cache/judgerl}/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$G" ] || { echo "no $G: run 'judgerl models fetch smollm2-135m-instruct' first" >&2; exit 1; }
rm -rf device_carry/g device_carry/st && mkdir -p device_carry/g/a device_carry/g/b device_carry/g/c device_carry/st
tmp=$(mktemp -d) && split -n 3 -d "$G" "$tmp/gpart"
mv "$tmp/gpart00" device_carry/g/a/ && mv "$tmp/gpart01" device_carry/g/b/ && mv "$tmp/gpart02" device_carry/g/c/
rmdir "$tmp" && sha256sum "$G" | cut -d' ' -f1 > device_carry/g/c/gguf.sha256
if [ -d "$RUN" ]; then
  X=(--exclude='merged*' --exclude='checkpoints*' --exclude='*.sqlite*' --exclude='final' --exclude='*.safetensors')
  tar -C "$RUN" -cJf device_carry/st/labels.txz labels
  tar -C "$RUN" -cJf device_carry/st/rest.txz "${X[@]}" --exclude=labels --exclude=policies .
  [ -d "$RUN/policies" ] && tar -C "$RUN" -cJf device_carry/st/policies.txz "${X[@]}" policies
fi
du -sh device_carry/g/* device_carry/st
