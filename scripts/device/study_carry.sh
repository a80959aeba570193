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
# the parts: as few calls as the 64 MiB a call allows (the tree + what the call carries + 0.5 MiB of slack): the first
# call carries the wheels beside its part, the last the run-dir tarballs (built first, so their size is known), the
# calls between only a part (the tree grows with every shipped adapter: 26 MiB on 2026-12-06 morning, 37 MiB after)
rm -rf device_carry/g device_carry/st && mkdir -p device_carry/st
if [ -d "$RUN" ]; then
  X=(--exclude='merged*' --exclude='checkpoints*' --exclude='*.sqlite*' --exclude='final' --exclude='*.safetensors')
  tar -C "$RUN" -cJf device_carry/st/labels.txz labels
  tar -C "$RUN" -cJf device_carry/st/rest.txz "${X[@]}" --exclude=labels --exclude=policies .
  [ -d "$RUN/policies" ] && tar -C "$RUN" -cJf device_carry/st/policies.txz "${X[@]}" policies
fi
size() { du -sb "$@" 2>/dev/null | awk '{s+=$1} END {print s+0}'; }
tree=$(git ls-files -z | xargs -0 stat -c %s | awk '{s+=$1} END {print s}')
room=$(( 64 * 1048576 - tree - 1572864 ))  # 1.5 MiB of slack: the 64 MiB check counts more than the bytes (0.5 MiB failed at 63.5 MiB)
[ $room -gt 4194304 ] || { echo "the tree ($(( tree / 1048576 )) MiB) leaves no room for the model parts" >&2; exit 1; }
first=$(( room - $(size .whl) )); last=$(( room - $(size device_carry/st) )); total=$(stat -c %s "$G")
# parts: first, then full rooms, and what is left in the last (it must fit beside the tarballs)
# (a middle part takes a full room, or only what leaves exactly the last part's room when less is left)
offs=(0 $first); while [ $(( total - ${offs[-1]} )) -gt $last ]; do
  step=$(( total - ${offs[-1]} - last )); [ $step -gt $room ] && step=$room; offs+=($(( ${offs[-1]} + step ))); done
offs+=($total)
n=$(( ${#offs[@]} - 1 ))
for i in $(seq 0 $((n - 1))); do
  mkdir -p device_carry/g/$i
  dd if="$G" of=device_carry/g/$i/gpart$i iflag=skip_bytes,count_bytes bs=1M status=none \
    skip=${offs[$i]} count=$(( ${offs[$((i + 1))]} - ${offs[$i]} ))
done
sha256sum "$G" | cut -d' ' -f1 > device_carry/g/$((n - 1))/gguf.sha256
cat $(ls device_carry/g/*/gpart* | sort -V) | cmp - "$G" || { echo "the parts do not re-assemble the GGUF" >&2; exit 1; }
echo "GGUF in $n parts (tree $(( tree / 1048576 )) MiB): carry device_carry/g/0 with .whl, then g/1 ... g/$((n - 1)) (the last with device_carry/st)"
du -sh device_carry/g/* device_carry/st
