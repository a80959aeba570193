#!/usr/bin/env bash
# What scripts/device/study.sh's calls carry (ignored: device_carry/ is in .gitignore):
#   device_carry/g/<i>/gpart<i>     the cached SmolLM2 GGUF in parts, each call under 64 MiB with the tree
#   device_carry/st/*.txz            the study's run dir (RUN, default device_carry/study/run) without merged models,
#                                    checkpoints, caches and the adapters the repo ships: labels, the rest, policies
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=${RUN:-device_carry/study/run}
G="${JUDGERL_CACHE:-$HOME/.cache/judgerl}/gguf/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$G" ] || { echo "no $G: run 'judgerl models fetch smollm2-135m-instruct' first" >&2; exit 1; }
# the parts: as many as it takes for each call (the tree + one part + the wheels or the run-dir tarballs) to stay
# under 64 MiB (the tree grows with every shipped adapter: 26 MiB on 2026-12-06 morning, 37 MiB after)
tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s+=$1} END {print s}')
room=$(( 64 * 1048576 - tree - 7 * 1048576 ))   # 7 MiB for the wheels (first call) or the tarballs (last call)
[ $room -gt 4194304 ] || { echo "the tree ($(( tree / 1048576 )) MiB) leaves no room for the model parts" >&2; exit 1; }
n=$(( ($(stat -c %s "$G") + room - 1) / room ))
rm -rf device_carry/g device_carry/st && mkdir -p device_carry/st
tmp=$(mktemp -d) && split -n $n -d -a 1 "$G" "$tmp/gpart"
for i in $(seq 0 $((n - 1))); do mkdir -p device_carry/g/$i && mv "$tmp/gpart$i" device_carry/g/$i/; done
rmdir "$tmp" && sha256sum "$G" | cut -d' ' -f1 > device_carry/g/$((n - 1))/gguf.sha256
echo "GGUF in $n parts (tree $(( tree / 1048576 )) MiB): carry device_carry/g/0 with .whl, then g/1 ... g/$((n - 1)) (the last with device_carry/st)"
if [ -d "$RUN" ]; then
  X=(--exclude='merged*' --exclude='checkpoints*' --exclude='*.sqlite*' --exclude='final' --exclude='*.safetensors')
  tar -C "$RUN" -cJf device_carry/st/labels.txz labels
  tar -C "$RUN" -cJf device_carry/st/rest.txz "${X[@]}" --exclude=labels --exclude=policies .
  [ -d "$RUN/policies" ] && tar -C "$RUN" -cJf device_carry/st/policies.txz "${X[@]}" policies
fi
du -sh device_carry/g/* device_carry/st
