"""The quickstart's loop: stages in order, each skipped when done with the same config (stages.py)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable

from judgerl.quickstart.config import QuickstartConfig, judge_dtype, source_name
from judgerl.quickstart.stages import Stages, free_memory, quiet


class Quickstart:
    def __init__(self, cfg: QuickstartConfig, log: Callable[[str], None] = print):
        from judgerl.paths import data_root

        self.cfg, self.log = cfg, log
        self.root = Path(cfg.run_dir)
        self.data_root = data_root(cfg.shared_data)
        n = 6 + cfg.trains_judge()
        self.stages = Stages(log, self.root / "train.log", n)
        self.weak_done = threading.Event()  # the weak run (its step 0 is the later runs') has ended

    def p(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def gold_spec(self):
        from judgerl.study.embedded import embedded_gold_spec

        from judgerl.quickstart.judges import GOLD_BATCH

        return embedded_gold_spec("cpu", GOLD_BATCH, "gold").model_copy(update={"dtype": judge_dtype(self.cfg)})

    def prompt_sets(self) -> dict[str, list[str]]:
        """The study's prompt sets (short prompts only), written to prompts/<set>_prompts.jsonl."""
        from judgerl.quickstart.data import prompt_sets
        from judgerl.study.labels import write_prompts

        sets = prompt_sets(self.data_root, self.cfg.max_prompt_chars)
        write_prompts(self.p("prompts"), {"monitor": sets["monitor"][:self.cfg.monitor_prompts], "policy": sets["policy"]})
        return sets

    def specs(self) -> dict[str, object]:
        """judge name -> spec of every judge source (training judges first)."""
        from judgerl.quickstart.judges import spec_for

        return {source_name(s): spec_for(s, self.cfg, self.root) for s in self.cfg.judge_sources().values()}

    # -- stages
    def labels(self, sets) -> str:
        from judgerl.quickstart.data import heldout

        rec = heldout(self.cfg, sets, self.p("labels"))
        chk = rec.get("gold_check") or {}
        extra = (f"; gold RM re-scored {chk['n']} of them here, max |diff| {chk['max_abs_diff']:.3f}"
                 if chk.get("n") else "")
        return f"{rec['n']} held-out answers to {rec['prompts']} prompts, gold labels 0-9 {rec['histogram']}{extra}"

    def eval_judges(self, specs: dict) -> str:
        from judgerl.data import read_jsonl
        from judgerl.quickstart.judges import agreement

        rows = read_jsonl(self.p("labels", "heldout.jsonl"))
        sources = {source_name(s): s for s in self.cfg.judge_sources().values()}
        roles = [source_name(self.cfg.weak_judge), source_name(self.cfg.reasoning_judge)]
        # beside the policy runs (lanes), in the order that shares the most weights with them: the judges no run
        # trains against first (the weak run, the lightest, is running), then the weak run's judge (the same loaded
        # model), then the reasoning run's (shared once that run starts)
        order = [n for n in specs if n not in roles] + [n for n in roles if n in specs]
        out = {}
        for name in order:
            spec = specs[name]
            res = agreement(spec, rows, self.p("judges", name), self.cfg.bootstrap, self.cfg.seed,
                            self.p("cache.sqlite"), sources.get(name))
            free_memory()  # one judge loaded at a time
            g = res["gold"]
            ci = g["alpha_expected_ci"]
            out[name] = (f"{name} {g['alpha_expected']:.0f} [{ci[0]:.0f}, {ci[1]:.0f}]" if ci[0] is not None
                         else f"{name} {g['alpha_expected']}")
        return f"alpha x100 vs gold on {len(rows)} answers: " + "; ".join(out[n] for n in specs)

    def probes(self, specs: list) -> str:
        from judgerl.evaluation.probes import load_attacks, load_items, run_probe
        from judgerl.judges.judge import Judge
        from judgerl.model_loader import shared_model

        src = self.data_root / "alpaca-eval" / "reference_outputs" / "gpt4_1106_preview.json.gz"
        items = load_items(src, self.cfg.probe_items, self.cfg.seed, 400)
        attacks = load_attacks(only=self.cfg.probe_attacks)
        lifts = []
        for spec in specs:
            m, t = shared_model(spec.model, spec.model_kind, "cpu", spec.dtype) if spec.model_kind else (None, None)
            judge = Judge(spec, cache=self.p("cache.sqlite"), ledger=self.p("probes", "ledger.sqlite"), stage="probe",
                          model=m, tokenizer=t)
            res = run_probe(judge, items, attacks)
            self.p("probes", f"probe-{spec.name}.json").write_text(json.dumps(res, indent=2, default=float))
            lifts += [f"{spec.name}/{a['attack']} {a['lift']:+.2f}" for a in res["attacks"] if a.get("lift") is not None]
        return f"{len(attacks)} attacks x {len(items)} answers; score lift " + ", ".join(lifts)

    def side_stages(self, sets: dict, specs: dict, gold, probe_specs: list, deps: list[str], lanes) -> None:
        """What the policy runs do not need: labels, agreement, probes (the side lane, or after the policy runs)."""
        c, S = self.cfg, self.stages
        runs = [("labels", self.p("labels"), {"source": c.heldout_answers, "n": c.agreement_items, "check": c.gold_check,
                                              "seed": c.seed, "gold": gold.fingerprint(), "prompts": sets["label_test"]},
                 [], lambda r: self.labels(sets), True),
                ("judges", self.p("judges"), {n: s.fingerprint() for n, s in specs.items()}, ["labels"] + deps,
                 lambda r: self.eval_judges(specs), False),
                ("probes", self.p("probes"), {"items": c.probe_items, "attacks": c.probe_attacks, "seed": c.seed,
                                              "judges": [s.fingerprint() for s in probe_specs]}, deps,
                 lambda r: self.probes(probe_specs), True)]
        for name, folder, config, needs, fn, owns in runs:
            if lanes is not None and lanes.stopping:  # the policy lane failed
                return
            S.run(name, folder, config, needs, fn, owns_folder=owns)

    def policy_runs(self, specs: dict, roles: dict, gold, deps: list[str], lanes, names=None) -> None:
        """The policy runs `names` (all by default) one after the other on the calling thread."""
        import judgerl.quickstart.policies as policies
        from judgerl.judges.hf import _MODEL_THREAD, MODEL_EXECUTOR

        # the policy lane's judge work (hf and rm backends alike) on the judge-model thread, whose thread count the
        # lanes set (an rm judge would otherwise run on asyncio worker threads)
        token = MODEL_EXECUTOR.set(_MODEL_THREAD)
        try:
            for name in names or policies.RUNS:
                try:
                    self.policy_run(name, specs, roles, gold, deps, lanes)
                finally:
                    if name == "weak":
                        self.weak_done.set()
        finally:
            MODEL_EXECUTOR.reset(token)

    def policy_run(self, name: str, specs: dict, roles: dict, gold, deps: list[str], lanes, side: bool = False) -> None:
        """One policy run as a stage; `side`: on the side lane (its own one-thread model executor, no thread sync)."""
        import judgerl.quickstart.policies as policies
        from judgerl.quickstart.lanes import ThreadSync

        c = self.cfg
        judge = gold if name == "gold" else specs[roles[name]]
        folder = self.p("policies", name)
        pc = policies.policy_config(c, name, judge, gold, self.p("prompts"), folder)
        cb = [ThreadSync(lanes)] if lanes is not None and not side else []
        scorer = lanes.scorer() if lanes is not None else None  # monitor scoring off the lane
        if lanes is not None and not side:
            lanes.sync()
        self.stages.run(f"policy-{name}", folder, {**pc, "bootstrap": c.bootstrap}, deps,
                        lambda r: policies.train(c, name, judge, gold, self.p("prompts"), folder, cb, scorer))

    # -- everything
    def run(self) -> dict:
        from judgerl import model_loader

        from judgerl.judges import fused_step

        was = model_loader.trim_cpu_judges, model_loader.memo_judge_heads, fused_step.ON_BY_DEFAULT["cpu"]
        model_loader.trim_cpu_judges = model_loader.memo_judge_heads = True  # model_loader.trim_heap, prefix_memo
        # the rollouts' fused decode step keeps concatenated copies of the q/k/v and gate/up weights (0.28 GB for
        # SmolLM2-135M) for ~10% less rollout CPU (8 x 48 tokens: 5.1 vs 5.7 CPU-s): off, two lanes fit in 4 GB
        fused_step.ON_BY_DEFAULT["cpu"] = False
        try:
            return self._run()
        finally:
            model_loader.trim_cpu_judges, model_loader.memo_judge_heads, fused_step.ON_BY_DEFAULT["cpu"] = was

    def _run(self) -> dict:
        import torch

        from judgerl.config import dump_yaml
        from judgerl.quickstart.lanes import Lanes
        import judgerl.quickstart.judges as judges
        import judgerl.quickstart.summary as summary

        from judgerl.quickstart.thread_cpu import ThreadCPU

        c, S, t0 = self.cfg, self.stages, time.perf_counter()
        cpu = ThreadCPU()
        cpu.start()
        self.root.mkdir(parents=True, exist_ok=True)
        dump_yaml(c, self.p("config.yaml"))
        sets = self.prompt_sets()
        deps = []
        if c.trains_judge():
            S.run("train-judge", self.p("judges", "trained"), {"labels": c.train_labels, "steps": c.train_steps,
                                                               "seed": c.seed, "prompts": sets["label_train"]},
                  [], lambda r: judges.train(c, sets, self.p("judges", "trained")))
            deps = ["train-judge"]
        with quiet(self.p("train.log")):  # a shipped judge is merged into the user cache on first use
            specs = self.specs()
        free_memory()  # merging a shipped adapter loads its base
        gold = self.gold_spec()
        roles = {k: source_name(v) for k, v in c.judge_sources().items()}
        probe_specs = [specs[roles["weak"]], specs[roles["reasoning"]], gold]

        lanes = Lanes(torch.get_num_threads()) if c.lanes == 2 else None

        # two lanes: the side lane's stages, then the gold control (which takes the weak run's step 0), beside the weak
        # and reasoning runs; the lanes' CPU seconds are then about even (bench/RESULTS.md 7e)
        def side():
            self.side_stages(sets, specs, gold, probe_specs, deps, lanes)
            if lanes is not None and self.weak_done.wait() and not lanes.stopping:
                self.policy_run("gold", specs, roles, gold, deps, lanes, side=True)

        if lanes is not None:  # the side lane beside the policy runs (lanes.py)
            lanes.side(side)
        try:
            self.policy_runs(specs, roles, gold, deps, lanes, ("weak", "reasoning") if lanes is not None else None)
        except Exception:
            if lanes is not None:
                self.weak_done.set()  # the side lane must not wait for a run that will not come
                lanes.abort()  # no stray thread left behind an in-process caller
            raise
        lanes.join() if lanes is not None else side()
        cpu.write(self.p("cpu_lanes.json"))  # CPU seconds per lane (thread_cpu.py)
        s = summary.write(self.root, roles, time.perf_counter() - t0)
        from judgerl.report import build_report

        report = build_report(self.root)
        return {"stages": dict(S.status), "seconds": dict(S.seconds), "report": str(report), "summary": s["lines"]}


def where(root: Path) -> list[tuple[str, str]]:
    """(what, path) of the run's outputs, for the closing printout."""
    rows = [("resolved config", "config.yaml"), ("held-out gold labels", "labels/heldout.jsonl"),
            ("judge agreement", "judges/*/eval.json"), ("policy runs (monitor, alarm, flagged)", "policies/*/"),
            ("probes", "probes/probe-*.json"), ("library log (TRL, transformers)", "train.log"),
            ("summary", "summary.json"), ("report", "report.html")]
    return [(w, str(root / p)) for w, p in rows]
