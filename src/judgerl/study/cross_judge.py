"""Cross-judge matrix: every run's final held-out answers scored by every judge, and an arena against the base.

Answers: per run, the last monitor point that kept its samples (its greedy answers to the held-out monitor
prompts) and the run's first sampled point (step 0: the base policy's answers to the same prompts).
- Matrix: each judge (any JudgeSpec or Judge: the SFT judges, the prompted judge, the reasoning judge, the gold
  RM) scores both answer sets. Pointwise judges give the mean expected score of the final answers and of the
  base answers, each with a 95% bootstrap interval over prompts, and the paired change (final - base, same
  prompts) with its interval. A pairwise judge gives P(final answer preferred to the base answer), both orders
  averaged, with its interval (0.5 = no preference). An answer text scored once per judge, whatever run it is in.
- Arena: Arena-Hard's pairwise prompt (evaluation/arena.py, the `hard_prompt` system) with an in-process judge
  (default: the embedded SmolLM2 prompted as the arena judge, forced five-label verdict read from its
  distribution, evaluation/arena_forced.py), each final answer against the base answer in both orders. Per
  prompt the policy's battle score (strong verdicts weigh 3) averaged over the two games; the win rate is its
  mean with a 95% bootstrap interval (0.5 = tie with the base).
A policy whose gold and other judges rise with its own judge improved; one only its own judge likes hacked it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from judgerl import JudgerlError
from judgerl.data import write_text_atomic


def final_and_base(run: Path, limit: int | None = None) -> dict:
    """{final_step, base_step, items: [(prompt, final answer, base answer)]} paired by prompt (first `limit`)."""
    from judgerl.evaluation.monitor import read_monitor
    from judgerl.study.samples import prompt_key, read_samples

    steps = [int(r["step"]) for r in read_monitor(Path(run) / "monitor.jsonl")]
    kept = [s for s in steps if read_samples(run, s)]
    if len(kept) < 2:
        raise JudgerlError(f"{run}: needs samples at two monitor points (step 0 and a later one); kept: {kept}")
    base = {prompt_key(r): r for r in read_samples(run, kept[0])}
    rows = [r for r in read_samples(run, kept[-1]) if prompt_key(r) in base]
    items = [(r["prompt"], r["response"], base[prompt_key(r)]["response"]) for r in rows][:limit]
    return {"final_step": kept[-1], "base_step": kept[0], "items": items}


def as_judge(j, cache_dir: Path | None, name: str):
    from judgerl.judges.judge import Judge
    from judgerl.judges.spec import JudgeSpec

    if isinstance(j, JudgeSpec):
        return Judge(j, cache=(cache_dir / f"{name}.sqlite") if cache_dir else None, stage="cross-judge")
    return j


def _ci(rows: list[tuple[str, float | None]], nb: int, seed: int) -> dict:
    from judgerl.study.stats import cluster_bootstrap

    def mean(rs):
        xs = [x for _, x in rs if x is not None]
        return sum(xs) / len(xs) if xs else None
    return cluster_bootstrap(rows, lambda r: r[0], mean, nb, seed)


def _key(prompt) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def pointwise_scores(judge, answers: list[tuple]) -> dict[tuple[str, str], float | None]:
    """{(prompt key, answer): expected score} for the distinct (prompt, answer) pairs."""
    from judgerl.evaluation.monitor import score

    uniq = list(dict.fromkeys((_key(p), a) for p, a in answers))
    prompt_of = {_key(p): p for p, _ in answers}
    vals = score(judge, [prompt_of[k] for k, _ in uniq], [a for _, a in uniq], None, False)
    return {u: v["value"] for u, v in zip(uniq, vals)}


def judge_runs(judge, runs: dict[str, dict], nb: int, seed: int = 0) -> dict[str, dict]:
    """One judge's column: per run {final, base, change} (pointwise) or {pref_over_base} (pairwise)."""
    from judgerl.evaluation.monitor import score

    out = {}
    if judge.spec.format == "pointwise":
        s = pointwise_scores(judge, [(p, a) for x in runs.values() for p, f, b in x["items"] for a in (f, b)])
        for name, x in runs.items():
            fin = [(_key(p), s[(_key(p), f)]) for p, f, _ in x["items"]]
            base = [(_key(p), s[(_key(p), b)]) for p, _, b in x["items"]]
            d = [(k, None if a is None or c is None else a - c) for (k, a), (_, c) in zip(fin, base)]
            out[name] = {"final": _ci(fin, nb, seed), "base": _ci(base, nb, seed), "change": _ci(d, nb, seed)}
        return out
    for name, x in runs.items():
        ps, fs, bs = zip(*x["items"])
        v = score(judge, list(ps), list(fs), list(bs), True)
        out[name] = {"pref_over_base": _ci([(_key(p), r["value"]) for p, r in zip(ps, v)], nb, seed)}
    return out


def default_arena_spec(device: str = "cpu", batch_size: int = 8):
    """The embedded SmolLM2 as the arena judge (direct mode: forced verdict from the five-label distribution)."""
    from judgerl.judges.spec import JudgeSpec

    return JudgeSpec(name="arena-smollm2", backend="hf", model="smollm2-135m-instruct", format="pairwise",
                     mode="direct", device=device, batch_size=batch_size)


def arena_vs_base(judge, items: list[tuple], nb: int, seed: int = 0, category: str = "hard_prompt") -> dict:
    """Win rate of the final answers against the base answers (Arena-Hard prompt, both orders); ties count 0.5."""
    from judgerl.evaluation.arena import judge_games, judge_messages
    from judgerl.evaluation.arena_score import game_battle

    def text(p):
        return p if isinstance(p, str) else next(m["content"] for m in reversed(p) if m["role"] == "user")
    convs = []
    for p, f, b in items:
        convs += [judge_messages(category, text(p), f, b), judge_messages(category, text(p), b, f)]
    games = judge_games(judge, convs)

    def policy_score(g, policy_is_b: bool):
        if g.get("expected") is not None:  # forced: A's expected battle score under the label distribution
            return 1.0 - g["expected"] if policy_is_b else g["expected"]
        return None if g["score"] is None else game_battle(g["score"], policy_is_b)[0]
    rows, invalid = [], 0
    for i, (p, _, _) in enumerate(items):
        s = [policy_score(games[2 * i], False), policy_score(games[2 * i + 1], True)]
        invalid += sum(x is None for x in s)
        ok = [x for x in s if x is not None]
        rows.append((_key(p), sum(ok) / len(ok) if ok else None))
    return {"win_rate": _ci(rows, nb, seed), "games": len(games), "invalid_games": invalid, "category": category,
            "judge": judge.spec.name}


def keep_columns(res: dict, earlier: dict, keep: list[str]) -> dict:
    """Add the `keep` judges' columns of an `earlier` matrix to `res`, in the earlier column order. A kept cell
    whose answers came from another final step than the run's current one gets `scored_step` (that step)."""
    kept = [j for j in earlier.get("judges", []) if j in keep and j not in res["judges"]]
    if not kept:
        return res
    order = [j for j in earlier["judges"] if j in res["judges"] or j in kept]
    res["judges"] = order + [j for j in res["judges"] if j not in order]
    for name, row in res["runs"].items():
        old = earlier.get("runs", {}).get(name) or {}
        moved = old.get("final_step") != row["final_step"]
        for j in kept:
            cell = (old.get("scores") or {}).get(j)
            if cell:
                row["scores"][j] = {**cell, "scored_step": old.get("final_step")} if moved else dict(cell)
    res["kept_from_earlier"] = kept
    return res


def keep_rows(res: dict, earlier: dict, drop: list[str]) -> dict:
    """Add the rows of `earlier` for runs `res` did not score, without the cells of the `drop` judges (judges that
    changed since that matrix was made; listed in `dropped_stale`)."""
    kept = [r for r in earlier.get("runs", {}) if r not in res["runs"]]
    for name in kept:
        row = json.loads(json.dumps(earlier["runs"][name]))
        row["scores"] = {j: c for j, c in row.get("scores", {}).items() if j not in drop}
        row["kept_from_earlier_pass"] = True
        res["runs"][name] = row
        res["trained_on"].setdefault(name, earlier.get("trained_on", {}).get(name))
    res["judges"] += [j for j in earlier.get("judges", []) if j not in res["judges"] and j not in drop]
    if kept:
        res["rows_kept_from_earlier"], res["dropped_stale"] = kept, list(drop)
    return res


def cross_judge_matrix(runs: dict[str, Path], judges: dict, out: Path | None = None, arena=None, nb: int = 1000,
                       limit: int | None = None, cache_dir: Path | None = None,
                       log: Callable[[str], None] = print, trained_on: dict[str, str] | None = None,
                       keep: list[str] | None = None, only: list[str] | None = None,
                       drop: list[str] | None = None) -> dict:
    """The matrix (module docstring) of `runs` ({name: policy run folder}) under `judges` ({name: JudgeSpec or
    Judge}); `arena`: a JudgeSpec/Judge for the arena vs base (None: skip; "default": the embedded SmolLM2);
    `limit`: first n held-out prompts per run (small n on a CPU); `trained_on`: {run: judge name it trained
    against}, marking the own-judge cell; `keep`: judges whose columns are copied from the matrix already at `out`
    (keep_columns) instead of scored; `only`: the runs scored in this pass, the others' rows copied from the matrix
    at `out` without the cells of the `drop` judges (keep_rows). Writes `out` (JSON) when given, after each judge
    and arena row (an interrupted pass keeps what it scored, marked `incomplete`); returns the matrix."""
    earlier = json.loads(out.read_text(encoding="utf-8")) if (keep or only) and out is not None and out.is_file() \
        else {}
    if not judges:
        raise JudgerlError("cross-judge: no judges given")
    unknown = sorted(set(only or []) - set(runs))
    if unknown:
        raise JudgerlError(f"cross-judge: no policy run named {', '.join(unknown)} (runs: {', '.join(runs)})")
    data = {k: final_and_base(Path(v), limit) for k, v in runs.items() if only is None or k in only}
    res: dict = {"judges": list(judges), "limit": limit, "bootstrap": nb, "incomplete": True,
                 "trained_on": {k: v for k, v in (trained_on or {}).items() if k in data},
                 "runs": {k: {"final_step": x["final_step"], "base_step": x["base_step"], "n": len(x["items"]),
                              "scores": {}} for k, x in data.items()}}

    def save() -> dict:  # after every column and arena row: a call cut by its deadline keeps what it scored
        merged = keep_columns(json.loads(json.dumps(res)), earlier, keep or [])
        merged = keep_rows(merged, earlier, drop or []) if only is not None else merged
        if out is not None:
            write_text_atomic(out, json.dumps(merged, indent=2, default=float) + "\n")
        return merged
    for name, j in judges.items():
        judge = as_judge(j, cache_dir, name)
        log(f"cross-judge: {name} on {sum(len(x['items']) for x in data.values())} final answers and their base answers")
        for run, cell in judge_runs(judge, data, nb).items():
            res["runs"][run]["scores"][name] = cell
        save()
    if arena is not None:
        judge = as_judge(default_arena_spec() if arena == "default" else arena, cache_dir, "arena")
        res["arena_judge"] = judge.spec.name
        for run, x in data.items():
            log(f"cross-judge: arena {run} (step {x['final_step']}) vs base, {len(x['items'])} prompts x 2 orders")
            res["runs"][run]["arena"] = arena_vs_base(judge, x["items"], nb)
            save()
    del res["incomplete"]
    return save()
