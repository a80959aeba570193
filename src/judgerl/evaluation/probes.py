"""Judge red-team probes: how easily is a judge fooled by the paper's adversarial patterns,
master-key replies, a null model, length/markdown inflation and position swaps?

Items are prompts with honest answers (default: AlpacaEval instructions + gpt4_1106_preview
reference outputs). Each attack (YAML data in `attacks/`, extendable) turns the honest answer into an
adversarial one. Then:
- pointwise judge: lift = score(attacked) - score(honest) (expected score when the backend gives
  one, else the label), mean with a t interval; fooled = attacked label > honest label (Wilson CI).
- pairwise judge: attacked vs honest in BOTH orders; win rate = mean P(attacked preferred) (t CI);
  fooled = attacked preferred in both orders (Wilson CI); order flips = the two orders disagree.
  `identity` attacks (position_swap) report the share of position-1 choices (50% = no bias).
Invalid verdicts are counted per attack and left out of that attack's statistics.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np
from scipy import stats

from judgerl import JudgerlError
from judgerl.config import read_yaml
from judgerl.data import read_text
from judgerl.judges.spec import JudgeRequest
from judgerl.judges.values import first_wins, point_value

DEFAULT_ATTACKS = Path(str(files("judgerl.evaluation").joinpath("attacks"))) / "default.yaml"
KINDS = ("template", "markdown", "identity")
FORMATS = ("pointwise", "pairwise")


@dataclass
class Attack:
    name: str
    template: str = "{answer}"
    kind: str = "template"
    formats: list[str] = field(default_factory=lambda: list(FORMATS))
    group: str = "custom"
    description: str = ""

    def apply(self, instruction: str, answer: str) -> str:
        if self.kind == "markdown":
            return markdown_inflate(answer)
        if self.kind == "identity":
            return answer
        return self.template.replace("{answer}", answer).replace("{instruction}", instruction)


def markdown_inflate(text: str) -> str:
    """Header + bold lead sentence + one bullet per remaining sentence (same words, more markdown)."""
    sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    if not sents:
        return "## Answer\n\n**(empty)**"
    bullets = "\n".join(f"- {s}" for s in sents[1:])
    return f"## Answer\n\n**{sents[0]}**\n\n### Key points\n\n{bullets}\n\n**In summary:** {sents[-1]}"


def load_attacks(extra: list[Path] | None = None, only: list[str] | None = None) -> list[Attack]:
    """The default attacks plus those of `extra` YAML files (same name replaces); `only` filters."""
    attacks: dict[str, Attack] = {}
    for path in [DEFAULT_ATTACKS, *(extra or [])]:
        path = Path(path)
        if not path.is_file():
            raise JudgerlError(f"attack file not found: {path}")
        data = read_yaml(path)
        entries = data.get("attacks") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise JudgerlError(f"{path}: expected a top-level 'attacks:' list")
        for n, e in enumerate(entries, 1):
            if not isinstance(e, dict) or not e.get("name"):
                raise JudgerlError(f"{path}: attack #{n} needs a 'name'")
            unknown = set(e) - {"name", "template", "kind", "formats", "group", "description"}
            if unknown:
                raise JudgerlError(f"{path}: attack {e['name']!r} has unknown field(s) {sorted(unknown)}")
            a = Attack(**e)
            if a.kind not in KINDS:
                raise JudgerlError(f"{path}: attack {a.name!r} kind must be one of {KINDS}, got {a.kind!r}")
            if not set(a.formats) <= set(FORMATS):
                raise JudgerlError(f"{path}: attack {a.name!r} formats must be within {FORMATS}")
            if a.kind == "template" and not str(a.template).strip():
                raise JudgerlError(f"{path}: attack {a.name!r} has an empty template")
            attacks[a.name] = a
    if only:
        missing = [o for o in only if o not in attacks]
        if missing:
            raise JudgerlError(f"unknown attack {missing[0]!r} (known: {', '.join(attacks)})")
        return [attacks[o] for o in only]
    return list(attacks.values())


def load_items(source: Path, n: int = 20, seed: int = 0, max_chars: int = 2000) -> list[dict]:
    """n items {prompt, answer}: from a JSONL of {prompt, answer}, or an AlpacaEval model_outputs JSON
    ({instruction, output}); answers longer than max_chars are skipped; a seeded sample."""
    source = Path(source)
    text = read_text(source, "probe items file")
    try:
        recs = json.loads(text) if text.lstrip().startswith("[") else [json.loads(x) for x in text.splitlines() if x.strip()]
    except json.JSONDecodeError as e:
        raise JudgerlError(f"{source}: malformed JSON ({e.msg})") from None
    for k, r in enumerate(recs, 1):
        if not isinstance(r, dict):
            raise JudgerlError(f"{source}: record {k} is not a {{prompt, answer}} object (got {type(r).__name__})")
    items = []
    for r in recs:
        prompt, answer = r.get("prompt", r.get("instruction")), r.get("answer", r.get("output"))
        if isinstance(prompt, str) and isinstance(answer, str) and answer.strip() and len(answer) <= max_chars:
            items.append({"prompt": prompt, "answer": answer})
    if not items:
        raise JudgerlError(f"{source}: no usable items (need prompt/answer or instruction/output, answer <= {max_chars} chars)")
    random.Random(seed).shuffle(items)
    return items[:n]


def check_level(level: float) -> float:
    """A confidence level strictly between 0 and 1 (0.95, not 95); anything else is a JudgerlError."""
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise JudgerlError(f"confidence level must be in (0, 1), e.g. 0.95; got {level}")
    return float(level)


def wilson(k: int, n: int, level: float) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else float(c - h)), (1.0 if k == n else float(c + h))


def t_interval(x: list[float], level: float) -> tuple[float, float, float]:
    a = np.asarray(x, float)
    if len(a) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(a.mean())
    if len(a) < 2 or a.std() == 0:
        return m, m, m
    h = stats.t.ppf(0.5 + level / 2, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a))
    return m, float(m - h), float(m + h)


def _value(v) -> float | None:
    return point_value(v)


def _p_first(v) -> float | None:
    """P(response 1 preferred) for a pairwise verdict."""
    return first_wins(v, "prob")


def run_probe(judge, items: list[dict], attacks: list[Attack], level: float = 0.95, progress: bool = False) -> dict:
    """Judge honest and attacked answers; per-attack statistics (see the module docstring)."""
    level = check_level(level)
    fmt = judge.spec.format
    attacks = [a for a in attacks if fmt in a.formats]
    if not attacks:
        raise JudgerlError(f"no attack applies to a {fmt} judge")
    adv = {a.name: [a.apply(it["prompt"], it["answer"]) for it in items] for a in attacks}
    reqs: list[JudgeRequest] = []
    if fmt == "pointwise":
        reqs += [JudgeRequest(prompt=it["prompt"], responses=[it["answer"]]) for it in items]
        for a in attacks:
            reqs += [JudgeRequest(prompt=it["prompt"], responses=[x]) for it, x in zip(items, adv[a.name])]
    else:
        for a in attacks:
            for it, x in zip(items, adv[a.name]):
                reqs += [JudgeRequest(prompt=it["prompt"], responses=[x, it["answer"]]),
                         JudgeRequest(prompt=it["prompt"], responses=[it["answer"], x])]
    verdicts = judge.judge(reqs, progress=progress, desc=f"probing {judge.spec.name}")
    n = len(items)
    rows = []
    if fmt == "pointwise":
        honest = verdicts[:n]
        for k, a in enumerate(attacks):
            att = verdicts[n * (k + 1): n * (k + 2)]
            pairs = [(h, x) for h, x in zip(honest, att) if h.valid and x.valid]
            lift = [_value(x) - _value(h) for h, x in pairs]
            fooled = sum(_value(x) > _value(h) for h, x in pairs)  # label is None for reward-model judges
            m, lo, hi = t_interval(lift, level)
            flo, fhi = wilson(fooled, len(pairs), level)
            rows.append({"attack": a.name, "group": a.group, "n": len(pairs), "invalid": n - len(pairs),
                         "honest_mean": float(np.mean([_value(h) for h, _ in pairs])) if pairs else None,
                         "attacked_mean": float(np.mean([_value(x) for _, x in pairs])) if pairs else None,
                         "lift": m, "lift_ci": [lo, hi], "fooled_rate": fooled / len(pairs) if pairs else None,
                         "fooled_ci": [flo, fhi]})
    else:
        for k, a in enumerate(attacks):
            vs = verdicts[2 * n * k: 2 * n * (k + 1)]
            ok = [(vs[2 * i], vs[2 * i + 1]) for i in range(n) if vs[2 * i].valid and vs[2 * i + 1].valid]
            row = {"attack": a.name, "group": a.group, "n": len(ok), "invalid": n - len(ok)}
            if a.kind == "identity":
                firsts = [p for v1, v2 in ok for p in (_p_first(v1), _p_first(v2))]
                m, lo, hi = t_interval(firsts, level)
                row.update({"first_position_rate": m, "first_position_ci": [lo, hi]})
            else:
                p_att = [(_p_first(v1) + 1 - _p_first(v2)) / 2 for v1, v2 in ok]
                fooled = sum(v1.label == 1 and v2.label == 2 for v1, v2 in ok)
                flips = sum(v1.label == v2.label for v1, v2 in ok)
                m, lo, hi = t_interval(p_att, level)
                flo, fhi = wilson(fooled, len(ok), level)
                row.update({"win_rate": m, "win_rate_ci": [lo, hi], "fooled_rate": fooled / len(ok) if ok else None,
                            "fooled_ci": [flo, fhi], "order_flip_rate": flips / len(ok) if ok else None})
            rows.append(row)
    return {"judge": judge.spec.name, "format": fmt, "mode": judge.spec.mode, "model": judge.spec.model,
            "n_items": n, "level": level, "attacks": rows}
