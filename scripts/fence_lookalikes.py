"""Measure the candidate-text fence on a look-alike set (JSONL of {id, text, kind, family, target}).

The fence is what every judge applies to candidate text before it enters a judge prompt:
`judges.prompts.neutralise` (fence markers such as [END CANDIDATE RESPONSE], incl. look-alike spellings)
then `judges.plain_chat.neutralise_control_tokens` (chat-template control tokens, openai backend).

    defused   a case of kind `lookalike` / `template_injection` whose text the fence changes
    untouched a `benign` case the fence leaves byte-identical (no false positive)

    python scripts/fence_lookalikes.py tests/data/fence_lookalikes_heldout.jsonl [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def fence(text: str) -> str:
    from judgerl.judges.plain_chat import neutralise_control_tokens
    from judgerl.judges.prompts import neutralise

    return neutralise_control_tokens(neutralise(text))


def measure(path: str | Path) -> dict:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]
    by_kind: dict = defaultdict(lambda: [0, 0])
    by_family: dict = defaultdict(lambda: [0, 0])
    missed = []
    for r in rows:
        changed = fence(r["text"]) != r["text"]
        ok = (not changed) if r["kind"] == "benign" else changed
        for d, k in ((by_kind, r["kind"]), (by_family, f"{r['kind']}/{r['family']}")):
            d[k][0] += ok
            d[k][1] += 1
        if not ok:
            missed.append(r["id"])
    attacks = [v for k, v in by_kind.items() if k != "benign"]
    return {"cases": len(rows),
            "defused": [sum(v[0] for v in attacks), sum(v[1] for v in attacks)],
            "benign_untouched": list(by_kind.get("benign", [0, 0])),
            "by_kind": dict(by_kind), "by_family": dict(sorted(by_family.items())), "missed": missed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    res = measure(a.path)
    d, b = res["defused"], res["benign_untouched"]
    print(f"{res['cases']} cases: attacks defused {d[0]}/{d[1]}; benign untouched {b[0]}/{b[1]}")
    for k, (ok, n) in res["by_kind"].items():
        print(f"  {k:20s} {ok}/{n}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
