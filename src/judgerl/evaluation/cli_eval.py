"""CLI verbs of issue 6: `judgerl arena answer|judge|score`, `judgerl winrate`, `judgerl probe`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from judgerl import JudgerlError
from judgerl.paths import data_root

arena_app = typer.Typer(help="Arena-Hard-V2: answer, judge vs the category baselines, score.", no_args_is_help=True)
console = Console(stderr=True)
CATS = ["hard_prompt", "creative_writing"]


def _data(data: Optional[Path]) -> Path:
    from judgerl.evaluation.arena import default_data_dir

    d = data or default_data_dir()
    if not d.is_dir():
        raise JudgerlError(f"Arena-Hard-V2 data folder not found: {d} (use --data or JUDGERL_SHARED_DATA)")
    return d


def _fmt(x) -> str:
    return "" if x is None or (isinstance(x, float) and x != x) else (f"{x:.1f}" if isinstance(x, float) else str(x))


@arena_app.command("answer")
def arena_answer(
    model: str = typer.Option(..., "--model", help="Model config YAML (judge-spec fields: backend, model, sampling) or a model name."),
    name: Optional[str] = typer.Option(None, help="Model name in the answer file (default: the config's name)."),
    category: list[str] = typer.Option(CATS, "--category", help="Categories to answer (repeatable)."),
    limit: Optional[int] = typer.Option(None, help="Only the first N questions of each category."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Answer length budget (default: the config's)."),
    run_dir: Path = typer.Option(Path("runs/arena"), help="Run directory (answers, judgments, cache, ledger)."),
    data: Optional[Path] = typer.Option(None, help="arena-hard-auto v2.0 data folder."),
    set_: list[str] = typer.Option([], "--set", help="Override a config field, e.g. --set sampling.temperature=0.7."),
) -> None:
    """Answer the Arena-Hard-V2 questions (resumable: answered uids are skipped)."""
    from judgerl.config import load_judge_spec
    from judgerl.evaluation.arena import generate_answers

    spec = load_judge_spec(model, set_)
    print(json.dumps(generate_answers(spec, run_dir, _data(data), category, limit, name, max_new_tokens), indent=2))


@arena_app.command("judge")
def arena_judge(
    judge: str = typer.Option(..., "--judge", help="Judge config YAML or model name (free-form generation)."),
    models: list[str] = typer.Option(..., "--model", help="Model(s) whose answers to judge (repeatable)."),
    category: list[str] = typer.Option(CATS, "--category"),
    limit: Optional[int] = typer.Option(None, help="Only the first N questions of each category."),
    retries: int = typer.Option(2, min=0, help="Re-asks for a judgment without one clear [[verdict]]."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Judgment length budget (default: the judge's)."),
    run_dir: Path = typer.Option(Path("runs/arena")),
    data: Optional[Path] = typer.Option(None),
    set_: list[str] = typer.Option([], "--set"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (judge, judge calls) and exit; loads no model."),
) -> None:
    """Judge answers against the category baseline in both orders (5-level verdicts; cached)."""
    from judgerl.config import load_judge_spec
    from judgerl.evaluation.arena import check_judge_inputs, run_judgments
    from judgerl.rundir import RunDir

    spec = load_judge_spec(judge, set_)
    if dry_run:
        from judgerl.plans import format_plan, plan_arena_judge

        return print(format_plan(plan_arena_judge(spec, models, _data(data), category, limit, str(run_dir))))
    check_judge_inputs(run_dir, _data(data), models, category)  # a refused input leaves no run folder
    rd = RunDir(run_dir)
    rd.save_config(spec, f"judge-{spec.name}.yaml")
    summary = run_judgments(rd.judge(spec, "arena-judge"), run_dir, _data(data), models, category, limit, retries,
                            max_new_tokens)
    print(json.dumps(summary, indent=2))
    bad = sum(m.get("invalid games", 0) for m in summary["models"].values())
    if bad:
        console.print(f"[yellow]{bad} game(s) without a verdict after {retries} retries: kept with score null, "
                      f"counted in `arena score`[/yellow]")


@arena_app.command("score")
def arena_score(
    judges: list[str] = typer.Option(..., "--judge", help="Judge name(s) (folders under model_judgment); several = ensemble."),
    models: list[str] = typer.Option([], "--model", help="Restrict to these models (default: all judged)."),
    category: list[str] = typer.Option(CATS, "--category"),
    style_control: bool = typer.Option(True, "--style-control/--no-style-control", help="Bradley-Terry with length + markdown features."),
    level: float = typer.Option(0.95, help="Confidence level of the bootstrap CI (arena-hard-auto prints 0.90)."),
    n_boot: int = typer.Option(100, min=1, help="Bootstrap resamples (over questions)."),
    seed: int = typer.Option(0),
    published: bool = typer.Option(False, help="Add the published leaderboard_from_readme.csv scores for context."),
    out: Optional[Path] = typer.Option(None, help="Output prefix for .csv/.json (default <run_dir>/leaderboard)."),
    run_dir: Path = typer.Option(Path("runs/arena")),
    data: Optional[Path] = typer.Option(None),
) -> None:
    """Leaderboard vs the baselines (per category + overall), with bootstrap CIs at --level."""
    from judgerl.evaluation.arena import leaderboard_paths, score_run, write_leaderboard

    prefix = out or run_dir / "leaderboard"
    leaderboard_paths(prefix)  # an unwritable --out is refused before scoring
    rows, problems = score_run(run_dir, _data(data), judges, category, models or None, style_control, level, n_boot,
                               seed, published)
    t = Table("category", "model", "score", f"{level:.0%} CI", "questions", "source",
              title=f"Arena-Hard-V2 ({'style control' if style_control else 'no style control'}; judges: {'+'.join(judges)})")
    for r in rows:
        ci = f"{_fmt(r['ci_low'])} - {_fmt(r['ci_high'])}" + (" (90%)" if r["source"].startswith("published") else "")
        t.add_row(r["category"], r["model"], _fmt(r["score"]), ci, _fmt(r.get("n_questions")), r["source"])
    Console().print(t)
    for k, v in sorted(problems.items()):
        console.print(f"[yellow]excluded:[/yellow] {k}: {v}")
    csv_path, json_path = write_leaderboard(rows, prefix)
    console.print(f"wrote {csv_path} and {json_path}")


def winrate_cmd(
    annotations: Optional[Path] = typer.Option(None, help="Folder of AlpacaEval annotation files (preference in [1, 2])."),
    reference: Optional[Path] = typer.Option(None, help="Reference outputs JSON (for lengths; LC)."),
    leaderboard: Optional[Path] = typer.Option(None, help="Leaderboard CSV to compare against."),
    lc: bool = typer.Option(True, "--lc/--no-lc", help="Also compute the length-controlled win rate."),
    out: Optional[Path] = typer.Option(None, help="Write the table (.md, .csv or .json)."),
) -> None:
    """AlpacaEval win rates (+ SE) and length-controlled win rates, compared to the leaderboard."""
    from judgerl.data import check_output_file, write_text_atomic
    from judgerl.evaluation.winrate import markdown, winrate_table

    if out:
        check_output_file(out, "--out")  # before any work

    if annotations is None or reference is None or leaderboard is None:
        base = data_root() / "alpaca-eval"
        annotations = annotations or base / "weighted_alpaca_eval_gpt4_turbo_annotations"
        reference = reference or base / "reference_outputs" / "gpt4_1106_preview.json.gz"
        if leaderboard is None and (base / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv").is_file():
            leaderboard = base / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"
    table = winrate_table(annotations, reference, leaderboard, lc)
    text = markdown(table)
    print(text)
    if out:
        body = (table.to_csv(index=False) if out.suffix == ".csv" else
                table.to_json(orient="records", indent=2) if out.suffix == ".json" else text)
        write_text_atomic(out, body)
        console.print(f"wrote {out}")


def probe_cmd(
    judges: list[str] = typer.Option(..., "--judge", help="Judge config YAML or model name (repeatable: compare judges)."),
    items: Optional[Path] = typer.Option(None, help="JSONL {prompt, answer} or AlpacaEval outputs JSON (default: gpt4_1106_preview references)."),
    n: int = typer.Option(20, min=1, help="Number of items (seeded sample)."),
    max_chars: int = typer.Option(2000, help="Skip honest answers longer than this."),
    attacks: list[Path] = typer.Option([], "--attacks", help="Extra attack YAML file(s)."),
    only: list[str] = typer.Option([], "--only", help="Run only these attacks."),
    level: float = typer.Option(0.95, help="Confidence level of the intervals."),
    seed: int = typer.Option(0),
    run_dir: Path = typer.Option(Path("runs/probe")),
    set_: list[str] = typer.Option([], "--set"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (judges, judge calls) and exit; loads no model."),
) -> None:
    """Red-team judges: score lift / fooled rate per attack, with confidence intervals (table + JSON per judge)."""
    from judgerl.config import load_judge_spec
    from judgerl.evaluation.probes import check_level, load_attacks, load_items, run_probe
    from judgerl.rundir import RunDir

    check_level(level)
    src = items or data_root() / "alpaca-eval" / "reference_outputs" / "gpt4_1106_preview.json.gz"
    its, atts = load_items(src, n, seed, max_chars), load_attacks(attacks, only or None)
    if dry_run:
        from judgerl.plans import format_plan, plan_probe

        return print(format_plan(plan_probe([load_judge_spec(j, set_) for j in judges], len(its), atts, str(run_dir))))
    specs = [load_judge_spec(j, set_) for j in judges]  # every judge config read before the run folder exists
    rd = RunDir(run_dir)
    t = Table("judge", "attack", "n", "invalid", "lift / win rate", f"{level:.0%} CI", "fooled", "fooled CI", "order flips",
              title="Judge probes (pointwise: score lift; pairwise: attacked-vs-honest win rate, both orders)")
    for spec in specs:
        res = run_probe(rd.judge(spec, "probe"), its, atts, level, progress=True)
        path = rd.write_json(f"probe-{spec.name}.json", res)
        console.print(f"wrote {path}")
        for r in res["attacks"]:
            key = "lift" if "lift" in r else ("win_rate" if "win_rate" in r else "first_position_rate")
            ci = r.get(f"{key}_ci") or r.get("first_position_ci") or [None, None]
            fc = r.get("fooled_ci") or [None, None]
            t.add_row(spec.name, r["attack"] + (" (P first)" if key == "first_position_rate" else ""), str(r["n"]),
                      str(r["invalid"]), _fmt2(r.get(key)), f"{_fmt2(ci[0])} - {_fmt2(ci[1])}", _fmt2(r.get("fooled_rate")),
                      f"{_fmt2(fc[0])} - {_fmt2(fc[1])}", _fmt2(r.get("order_flip_rate")))
    Console().print(t)


def _fmt2(x) -> str:
    return "" if x is None or (isinstance(x, float) and x != x) else f"{x:.3f}"


def register(app: typer.Typer) -> None:
    """Attach the evaluation verbs (arena, winrate, probe) to the main app."""
    app.add_typer(arena_app, name="arena")
    app.command("winrate")(winrate_cmd)
    app.command("probe")(probe_cmd)
