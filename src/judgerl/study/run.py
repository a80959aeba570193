"""The reward-hacking study's command: stages in order, each resumable, one console line per stage.

    python scripts/hacking_study.py --config configs/study/hacking.yaml [--stage gold --stage answers ...]

Stages (folder under run_dir; each writes stage-<name>.json with a hash of its config and of the stages
it depends on, and is skipped when that record says done with the same hash; a changed config reruns it
and, through the hashes, everything downstream):
    prompts      prompts/     monitor / judge-train / judge-test / policy prompt sets
    gold         gold/        gold BT RM (LoRA adapter), held-out accuracy
    answers      answers/     the base policy's answers to the label prompts
    labels       labels/      gold rewards -> 0-9 labels (annotation folder)
    judge-sft-N  judges/sft-N one SFT judge per label count
    judges-eval  judges/      alpha vs gold for the prompted judge and every SFT judge (curve.json)
    policy-NAME  policies/NAME one GRPO run per policy.runs entry
    cross-judge  analysis/    every run's final answers scored by every judge + an arena vs the base (on request:
                              --stage cross-judge; analyze folds analysis/cross_judge.json in when it exists)
    analyze      analysis/    bootstrap intervals, distance from the base policy, figures, study.json
`--stage` picks stages (groups: judges, policies, all); the others must already be done. Independent
stages may run at once in separate processes on one run_dir (e.g. gold and answers, or the policy runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

from judgerl import JudgerlError
from judgerl.study.config import StudyConfig
from judgerl.study.stages import StageRunner, stale_verdicts


class Study:
    def __init__(self, cfg: StudyConfig, log: Callable[[str], None] = print):
        from judgerl.paths import data_root

        self.cfg, self.log = cfg, log
        self.root = Path(cfg.run_dir)
        self.data = data_root(cfg.shared_data)

    def p(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def sft_counts(self) -> list[int]:
        return sorted(set(self.cfg.judges.label_counts))

    def mid_count(self) -> int:
        counts = self.sft_counts()
        return self.cfg.judges.mid or counts[(len(counts) - 1) // 2]

    def judge_name(self, judge: str) -> str:
        """A policy run's `judge` with the aliases resolved: prompted, gold, reasoning or sft-<N>."""
        n = {"sft-best": self.cfg.judges.best or max(self.sft_counts()), "sft-weak": self.cfg.judges.weak,
             "sft-mid": self.mid_count()}.get(judge)
        return f"sft-{n}" if n else judge

    def judge_stage(self, judge: str) -> str | None:
        """The stage a policy run's training judge comes from (None: the prompted base model)."""
        name = self.judge_name(judge)
        return {"gold": "gold", "prompted": None}.get(name, f"judge-{name}")

    def judge_for(self, judge: str):
        """The JudgeSpec of a policy run's training judge (its stage must be done)."""
        from judgerl.study.judges import prompted_spec, sft_spec

        stage = self.judge_stage(judge)
        if stage is None:
            return prompted_spec(self.cfg)
        if stage == "gold":
            return self.gold_spec()
        if stage == "judge-reasoning":
            from judgerl.study.reasoning import reasoning_spec

            return reasoning_spec(self.cfg, self.p("judges", "reasoning"))
        name = stage.removeprefix("judge-")
        return sft_spec(self.p("judges", name), name, self.cfg.device)

    def gold_spec(self):
        from judgerl.study.gold import rm_spec

        return rm_spec(self.p("gold", "merged").resolve(), "gold-rm", self.cfg.device, 64)

    def ensure_merged(self) -> None:
        """Rebuild merged models from carried adapters (a fresh machine has only the adapters)."""
        from judgerl.study.adapters import merged_model

        if (self.p("gold", "adapter")).is_dir():
            merged_model(self.cfg.base, self.p("gold", "adapter"), "reward", self.p("gold", "merged"))
        for n in self.sft_counts():
            f = self.p("judges", f"sft-{n}")
            if (f / "adapter").is_dir():
                merged_model(self.cfg.base, f / "adapter", "causal", f / "merged")
        if (self.p("judges", "reasoning", "sft_adapter")).is_dir():
            from judgerl.study.reasoning import merged_reasoning

            merged_reasoning(self.cfg, self.p("judges", "reasoning"))

    def trained_judges(self, gold: bool = True) -> dict:
        """{name: JudgeSpec or None} of every judge of the config: prompted, SFT judges, reasoning (None: not trained
        in this run dir), and the gold."""
        from judgerl.study.judges import prompted_spec, sft_spec

        self.ensure_merged()
        out = {"prompted": prompted_spec(self.cfg)}
        for n in self.sft_counts():
            f = self.p("judges", f"sft-{n}")
            out[f"sft-{n}"] = sft_spec(f, f"sft-{n}", self.cfg.device) if (f / "adapter").is_dir() else None
        if self.cfg.reasoning.enabled:
            from judgerl.study.reasoning import reasoning_spec

            f = self.p("judges", "reasoning")
            out["reasoning"] = reasoning_spec(self.cfg, f) if (f / "sft_adapter").is_dir() else None
        if gold:
            out["gold"] = self.gold_spec()
        return out

    def cross_judge(self) -> dict:
        """analysis/cross_judge.json: every policy run's final held-out answers (and its step-0 answers) scored by
        every judge, and an arena against the base with the embedded SmolLM2 (study/cross_judge.py)."""
        from judgerl.study.cross_judge import cross_judge_matrix, default_arena_spec

        runs = {r.name: self.p("policies", r.name) for r in self.cfg.policy.runs
                if (self.p("policies", r.name, "monitor.jsonl")).is_file()}
        keep = self.cfg.cross_judge_keep
        judges = {k: v for k, v in self.trained_judges().items()
                  if v is not None and k not in keep and k not in self.cfg.cross_judge_drop}
        trained_on = {r.name: self.judge_name(r.judge) for r in self.cfg.policy.runs if r.name in runs}
        return cross_judge_matrix(runs, judges, self.p("analysis", "cross_judge.json"),
                                  arena=default_arena_spec(self.cfg.device),  # auto: the GPU when there is one
                                  nb=self.cfg.gold.bootstrap, limit=self.cfg.cross_judge_prompts,
                                  cache_dir=self.p("analysis", "cross_judge_cache"), log=self.log,
                                  trained_on=trained_on, keep=keep, only=self.cfg.cross_judge_runs,
                                  drop=self.cfg.cross_judge_drop)

    # ---- the stages ----------------------------------------------------------------------------
    def run(self, selected: set[str] | None = None) -> dict:
        from judgerl.config import dump_yaml

        c, S = self.cfg, StageRunner(self.log, selected)
        self.root.mkdir(parents=True, exist_ok=True)
        try:  # parallel stage processes on one run_dir write the same config: a lost rename race is fine
            dump_yaml(c, self.p("config.yaml"))
        except FileNotFoundError:
            pass

        def prompts():
            from judgerl.study.labels import split_prompts, write_prompts

            counts = write_prompts(self.p("prompts"), split_prompts(c, self.data))
            self.log(f"prompts: {counts}")
            return counts
        S.run("prompts", self.p("prompts"), {"prompts": c.prompts.model_dump(), "seed": c.seed}, [], prompts)

        def gold():
            from judgerl.study.embedded import use_embedded_gold
            from judgerl.study.gold import train_gold
            from judgerl.study.stats import fmt_ci

            if c.gold.source == "embedded":
                rec = use_embedded_gold(c, self.p("gold"), self.log)
                return {"source": "embedded", "adapter_sha256": rec.get("adapter", {}).get("sha256")}
            rec = train_gold(c, self.p("gold"), self.data, self.log)
            ch = rec["checks"]
            self.log(f"gold: held-out accuracy vs GPT-4-Turbo {fmt_ci(ch['alpaca_heldout_vs_gpt4_turbo'])}; "
                     f"MT-Bench human {fmt_ci(ch['mtbench_human'])}")
            return {"checks": ch, "pairs": rec["pairs"], "adapter_sha256": rec["adapter"]["sha256"]}
        gold_key = {"source": "embedded"} if c.gold.source == "embedded" else c.gold.model_dump()
        S.run("gold", self.p("gold"), {"gold": gold_key, "base": c.base, "seed": c.seed}, [], gold)

        def answers():
            from judgerl.study.labels import sample_answers

            res = sample_answers(c, self.p("prompts"), self.p("answers", "answers.jsonl"), self.log)
            self.log(f"answers: {res['answers']:,} answers to {res['prompts']} prompts, {res['truncated']:,} cut at "
                     f"the token budget")
            return res
        lab = c.labels.model_dump(exclude={"scoring"})
        S.run("answers", self.p("answers"), {"labels": lab, "base": c.base, "seed": c.seed}, ["prompts"], answers)

        def labels():
            from judgerl.study.labels import score_answers

            self.ensure_merged()
            return score_answers(c, self.p("answers", "answers.jsonl"), self.p("gold", "merged"), self.p("labels"),
                                 self.log)
        S.run("labels", self.p("labels"), {"scoring": c.labels.scoring, "seed": c.seed}, ["gold", "answers"], labels)

        jcfg = c.judges.model_dump(exclude={"label_counts", "weak", "mid", "best", "eval_limit", "save_steps"})
        ann = self.p("labels", "annotations")
        for n in self.sft_counts():
            def sft(n=n):
                from judgerl.study.judges import train_sft_judge

                stale_verdicts(self.p("judges", f"sft-{n}"))
                rec = train_sft_judge(c, n, ann, self.p("judges", f"sft-{n}"), self.log)
                return {"labels": n, "train_examples": rec["train"].get("sft_train_examples"),
                        "loss": rec["train"].get("sft_train_loss"), "adapter_sha256": rec["adapter"]["sha256"]}
            S.run(f"judge-sft-{n}", self.p("judges", f"sft-{n}"), {"judges": jcfg, "labels": n, "base": c.base},
                  ["labels"], sft)

        # the default trace sampling stays out of the hashes, so the judges trained before the field existed stay done
        rcfg = c.reasoning.model_dump(exclude={"traces"} if c.reasoning.traces == "rejection" else None)
        if c.reasoning.enabled:
            def traces():
                from judgerl.study.reasoning import sample_traces

                return sample_traces(c, ann, self.p("judges", "reasoning-traces"), self.log)
            S.run("reasoning-traces", self.p("judges", "reasoning-traces"),
                  {"reasoning": {k: rcfg[k] for k in ("items", "samples", "tolerance", "max_new_tokens", "traces")
                                 if k in rcfg},
                   "base": c.base, "seed": c.seed}, ["labels"], traces)

            def reasoning_judge():
                from judgerl.study.reasoning import train_reasoning_judge

                stale_verdicts(self.p("judges", "reasoning"))
                rec = train_reasoning_judge(c, ann, self.p("judges", "reasoning-traces", "annotations"),
                                            self.p("judges", "reasoning"), self.log)
                return {"train": rec["train"], "adapter_sha256": (rec["adapter"] or rec["sft_adapter"])["sha256"]}
            S.run("judge-reasoning", self.p("judges", "reasoning"), {"reasoning": rcfg, "judges": jcfg},
                  ["reasoning-traces"], reasoning_judge)

        eval_cfg = {"eval_limit": c.judges.eval_limit, "counts": self.sft_counts(),
                    "reasoning_eval_limit": c.reasoning.eval_limit, "bootstrap": c.gold.bootstrap}
        from judgerl.study.judges import earlier_alpha_rows

        kept = earlier_alpha_rows(self.p("judges"), eval_cfg)  # read before the stage marks its record running

        def judges_eval():
            from judgerl.study.judges import judge_alpha
            from judgerl.study.reasoning import has_grpo_adapter
            from judgerl.study.stats import fmt_ci

            rows = []
            for name, spec in self.trained_judges(gold=False).items():
                if spec is not None and name in kept:
                    self.log(f"judge {name}: alpha kept from the earlier evaluation (same settings, trained before it)")
                    rows.append(kept[name])
                    continue
                row = {"judge": name, "labels": 0 if name == "prompted" else int(name[4:]) if name.startswith("sft-")
                       else c.reasoning.items}
                if name == "reasoning":
                    row.update(reasoning=True, stages="sft+grpo" if has_grpo_adapter(self.p("judges", name))
                               else "sft only")
                if spec is None:  # not trained (yet): said so in the curve, not skipped silently
                    rows.append({**row, "missing": "not trained"})
                    continue
                folder = self.p("judges", name) / ("" if name == "prompted" else "eval")
                limit = c.reasoning.eval_limit if name == "reasoning" else None
                rows.append({**judge_alpha(c, spec, ann, folder, limit), **row, "judge": spec.name})
            for r in [r for r in rows if "missing" not in r]:
                self.log(f"judge {r['judge']}: alpha (expected score) vs gold {fmt_ci(r['alpha_expected'])}, "
                         f"invalid {r['invalid_rate']}, {r.get('seconds_per_verdict')} s and "
                         f"{r.get('tokens_out_per_verdict')} output tokens a verdict")
            (self.p("judges", "curve.json")).write_text(json.dumps(rows, indent=2, default=float))
            return {"curve": rows}
        S.run("judges-eval", self.p("judges"), eval_cfg, ["labels"], judges_eval, owns_folder=False)  # every judge trained so far; the others marked missing

        pcfg = c.policy.model_dump(exclude={"runs", "max_seconds"})  # a budget change must not restart a run
        for r in c.policy.runs:
            def pol(r=r):
                from judgerl.study.policy import run_policy

                self.ensure_merged()
                s = run_policy(c, r, self.judge_for(r.judge), self.gold_spec(), self.p("prompts"),
                               self.p("policies", r.name), self.log)
                return {k: s.get(k) for k in ("steps", "wall_s", "stopped_by_budget_at", "monitor", "alarm", "incomplete")}
            dep = self.judge_stage(r.judge)
            run_cfg = r.model_dump(exclude={"seed"} if r.seed is None else None)  # runs made before the field: done
            S.run(f"policy-{r.name}", self.p("policies", r.name), {"policy": pcfg, "run": run_cfg},
                  ["prompts", "gold"] + ([dep] if dep and dep != "gold" else []), pol)

        if selected is not None and "cross-judge" in selected:
            self.cross_judge()
        if selected is None or "analyze" in selected:
            from judgerl.study.analyze import analyze

            res = analyze(self.cfg, self.root, self.log, distance=c.distance_prompts != 0)
            return {"stages": sorted(S.done), "analysis": res}
        return {"stages": sorted(S.done)}


def expand(stages: list[str] | None, cfg: StudyConfig) -> set[str] | None:
    if not stages or "all" in stages:
        return None
    out: set[str] = set()
    counts = sorted(set(cfg.judges.label_counts))
    for s in stages:
        if s == "judges":
            out |= {f"judge-sft-{n}" for n in counts} | {"judges-eval"}
            out |= {"reasoning-traces", "judge-reasoning"} if cfg.reasoning.enabled else set()
        elif s == "policies":
            out |= {f"policy-{r.name}" for r in cfg.policy.runs}
        elif s.startswith("policy:"):
            out.add(f"policy-{s[7:]}")
        else:
            out.add(s)
    known = {"prompts", "gold", "answers", "labels", "judges-eval", "analyze", "reasoning-traces", "cross-judge",
             "judge-reasoning"} | {f"judge-sft-{n}" for n in counts} \
        | {f"policy-{r.name}" for r in cfg.policy.runs}
    bad = sorted(out - known)
    if bad:
        raise JudgerlError(f"unknown stage(s) {', '.join(bad)} (known: {', '.join(sorted(known))}, judges, policies, all)")
    return out


def load_config(path: str | None, overrides: list[str] | None) -> StudyConfig:
    from pydantic import ValidationError

    from judgerl.config import deep_merge, format_validation_error, parse_overrides, read_yaml

    raw = read_yaml(path) if path else {}
    raw = deep_merge(raw, parse_overrides(overrides))
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as e:
        raise JudgerlError(format_validation_error(e, path or "study config")) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Reward-hacking study (issue 15): gold RM, labels, judges, policy "
                                 "runs, analysis; resumable stages.")
    ap.add_argument("--config", help="Study YAML (configs/study/hacking.yaml).")
    ap.add_argument("--set", action="append", default=[], help="Override a field: key.sub=value (YAML value).")
    ap.add_argument("--stage", action="append", default=[], help="Stage(s) to run (default all).")
    a = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)
    try:
        cfg = load_config(a.config, a.set)
        res = Study(cfg, log).run(expand(a.stage, cfg))
    except JudgerlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(f"stages done: {', '.join(res['stages'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
