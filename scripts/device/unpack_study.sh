#!/usr/bin/env bash
# Unpack what a study.sh call sent back (tarballs in $1, e.g. the device reply's files_at) into
#   device_carry/study/run/                 the device's run dir, to carry to a fresh machine (git-ignored)
#   docs/experiments/reward_hacking/contrast/   the committed study folder (analysis reads it): labels, judges'
#                                           records, policy runs with samples gzipped
#   src/judgerl/study/judges/<name>/        the judges' adapters, shipped in the package (a few MB each)
# Run here, from the repo root, after every device call; then commit.
set -euo pipefail
SRC=${1:?folder with the returned tarballs}
RUN=device_carry/study/run
DOC=docs/experiments/reward_hacking/contrast
mkdir -p $RUN $DOC
for t in "$SRC"/*.tgz; do [ -f "$t" ] && tar -C $RUN -xzf "$t"; done
# committed copy: everything but answers/annotations (large; labels.json and the label histogram are kept)
tar -C $RUN --exclude='annotations' --exclude='answers.jsonl' --exclude='*.sqlite*' --exclude='adapter' \
  --exclude='sft_adapter' --exclude='checkpoints*' --exclude='merged*' -cf - . | tar -C $DOC -xf -
find $DOC -path '*/samples/*.jsonl' -o -path '*/flagged/*.jsonl' | while read -r f; do gzip -f -9 "$f"; done
# the judge-test labels the judges were scored on (the quickstart's held-out agreement set reuses them)
if [ -f $RUN/labels/annotations/pointwise.jsonl ]; then
  python3 - "$RUN/labels/annotations/pointwise.jsonl" "$DOC/labels/judge_test.jsonl.gz" <<'EOF'
import gzip, json, sys
rows = [json.loads(x) for x in open(sys.argv[1], encoding="utf-8") if x.strip()]
keep = ("item_id", "prompt", "response_idx", "response", "score", "gold_reward", "split", "truncated")
with gzip.open(sys.argv[2], "wt", encoding="utf-8") as f:
    for r in rows:
        if r["split"] == "test":
            f.write(json.dumps({k: r.get(k) for k in keep}, ensure_ascii=False) + "\n")
EOF
fi
# shipped adapters
for d in $RUN/judges/sft-* $RUN/judges/reasoning; do
  [ -d "$d/adapter" ] || [ -d "$d/sft_adapter" ] || continue
  name=$(basename "$d"); out=src/judgerl/study/judges/$name; rm -rf "$out"; mkdir -p "$out"
  for a in adapter sft_adapter; do [ -d "$d/$a" ] && cp -r "$d/$a" "$out/$a"; done
  for f in judge.yaml train.json; do [ -f "$d/$f" ] && cp "$d/$f" "$out/"; done
done
du -sh $DOC src/judgerl/study/judges 2>/dev/null || true
