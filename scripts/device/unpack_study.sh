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
# committed copy (its config.yaml is the study config as the device calls ran it, kept): everything but answers/annotations (large; labels.json and the label histogram are kept)
tar -C $RUN --exclude='./config.yaml' --exclude='annotations' --exclude='answers.jsonl' --exclude='*.sqlite*' --exclude='adapter' \
  --exclude='sft_adapter' --exclude='checkpoints*' --exclude='merged*' -cf - . | tar -C $DOC -xf -
find $DOC -path '*/samples/*.jsonl' -o -path '*/flagged/*.jsonl' | while read -r f; do gzip -f -9 "$f"; done
# the judge-test labels the judges were scored on (the quickstart's held-out agreement set reuses them)
if [ -f $RUN/labels/annotations/pointwise.jsonl ]; then
  python3 - "$RUN/labels/annotations/pointwise.jsonl" "$DOC/labels/judge_test.jsonl.gz" <<'EOF'
import gzip, io, json, sys
rows = [json.loads(x) for x in open(sys.argv[1], encoding="utf-8") if x.strip()]
keep = ("item_id", "prompt", "response_idx", "response", "score", "gold_reward", "split", "truncated")
with io.TextIOWrapper(gzip.GzipFile(sys.argv[2], "wb", mtime=0), encoding="utf-8") as f:  # same bytes each time
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
# each shipped judge's judge.json: its agreement with the gold as the study's judges-eval measured it (curve.json)
python3 - "$RUN" <<'EOF'
import json, sys
from pathlib import Path
run, ship = Path(sys.argv[1]), Path("src/judgerl/study/judges")
curve = run / "judges" / "curve.json"
rows = json.loads(curve.read_text()) if curve.is_file() else []
for r in rows:
    name = "reasoning" if r.get("reasoning") else r["judge"]
    if "missing" in r or not (ship / name).is_dir():
        continue
    ev = run / "judges" / name / "eval" / "eval.json"
    gold = json.loads(ev.read_text()).get("gold", {}) if ev.is_file() else {}
    keep = ("judge", "labels", "alpha_expected", "alpha_label", "exact_match", "invalid_rate", "n", "stages",
            "seconds_per_verdict", "tokens_in_per_verdict", "tokens_out_per_verdict", "cost_note")
    rec = {k: r[k] for k in keep if k in r}
    rec["mean_thinking_tokens"] = gold.get("mean_thinking_tokens")
    rec["measured"] = ("the study's judges-eval (scripts/device/study.sh) on the seeded first n judge-test answers "
                       "(33 prompts no judge saw): docs/experiments/reward_hacking/contrast/judges/curve.json")
    (ship / name / "judge.json").write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
EOF
du -sh $DOC src/judgerl/study/judges 2>/dev/null || true
