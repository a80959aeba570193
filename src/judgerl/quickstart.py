"""`judgerl quickstart`: the paper's whole loop, offline on CPU, in one readable file.

    annotate (gold) -> train judges (non-reasoning, reasoning) -> judge agreement -> policy GRPO against
    each judge (gold monitor + hacking alarm) -> held-out scores (gold + training judges) -> probes -> report

Choices (sizes per `scale`, see SCALES; every field can be overridden in configs/quickstart.yaml):
- Models: all roles use the embedded SmolLM2-135M-Instruct (gold judge, judge base, policy), a toy
  stand-in for gpt-oss-120b / Qwen3 judges / Llama-3.1-8B. The run shows the loop and its plumbing,
  not the paper's results.
- Gold judge (`gold`): `embedded-rm` (default) is the package's Bradley-Terry reward model (LoRA adapter in
  judgerl/study/gold_rm: 92% vs GPT-4-Turbo on held-out AlpacaEval pairs, 70% on MT-Bench expert votes), its
  reward mapped to 0-9 by the deciles of the annotated items' own rewards (a rank label: the RM prefers long
  answers, and the quickstart's short items all sit under cuts calibrated on longer answers); `prompted` is
  SmolLM2 itself in reasoning mode (no signal). The RM writes no thinking: with it, the reasoning judge
  distils SmolLM2's own reasoning-mode thinking followed by the RM's label (a stand-in, as in
  scripts/repro_small.py).
- Data: AlpacaEval instructions with two responses each (GPT-4-Turbo reference + one model's output),
  the first `items` whose texts fit `max_item_chars`; pointwise labels for both responses. The split
  seed is the first one that leaves train, validation and test non-empty.
- Judges (LoRA r16, merged into the saved judge): non-reasoning = SFT on `Score: N` only; reasoning =
  SFT on the gold thinking + verdict, then GRPO with the Eq. 1 reward (token-level loss, clip 0.2/0.3, no KL).
- Agreement: the prompted base model and both trained judges on the test split (alpha, accuracy,
  invalid rate) and on a slice of LLMBar-natural (human labels).
- Policies: GRPO from SmolLM2 against each trained judge (reward = expected score), T 0.7, G samples per
  prompt, token-level loss, clip 0.2/0.3, no KL; the gold monitor scores held-out self-instruct prompts
  every `monitor_every` steps and the alarm watches for proxy-up / gold-down.
- Held-out: base and both trained policies answer unseen WizardLM prompts; gold and both judges score them.
- Probes: the default red-team attacks on AlpacaEval reference answers, against both judges and the gold.

Resumption: every stage writes `stage-<name>.json` (hash of its resolved config and of the stages it
depends on) next to its outputs and is skipped when that hash matches. A changed config clears the
stage's folder and reruns it (and, through the hashes, everything downstream). An interrupted
annotation resumes from its work table, an interrupted policy run from its last checkpoint (a finished
policy run's checkpoints are deleted: final/ holds the policy).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judgerl import JudgerlError
from judgerl.evaluation.judge_metrics import mean

SCALES: dict[str, dict] = {
    # full: `make quickstart` (~20 CPU-minutes; 13m33s wall measured on 2 cores); ci: every stage, minimal sizes.
    "full": dict(items=12, max_item_chars=800, gold_tokens=32, judge_tokens=24, sft_steps=6, judge_grpo_steps=2,
                 policy_steps=4, num_generations=4, prompts_per_step=1, completion_tokens=32, monitor_every=2,
                 monitor_prompts=4, heldout_prompts=6, eval_limit=6, human_limit=2, probe_items=3,
                 probe_attacks=["policy_refusal", "fake_end_marker", "inflated_self_assessment", "null_model"]),
    "ci": dict(items=3, max_item_chars=300, gold_tokens=4, judge_tokens=4, sft_steps=1, judge_grpo_steps=1,
               policy_steps=1, num_generations=2, prompts_per_step=1, completion_tokens=4, monitor_every=1,
               monitor_prompts=1, heldout_prompts=1, eval_limit=2, human_limit=1, probe_items=1,
               probe_attacks=["fake_end_marker"]),
}


class QuickstartConfig(BaseModel):
    """`judgerl quickstart [--config configs/quickstart.yaml] [--scale ci]`; unset sizes come from `scale`."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["quickstart"] = Field("quickstart", description="Config kind marker (for judgerl validate).")
    scale: Literal["full", "ci"] = Field("full", description="Size preset: full (make quickstart) or ci (tests).")
    run_dir: str = Field("runs/quickstart", description="Where everything goes.")
    model: str = Field("smollm2-135m-instruct", description="Judge base model and policy (and the prompted gold).")
    gold: Literal["embedded-rm", "prompted"] = Field("embedded-rm", description="embedded-rm: the shipped BT reward "
                                                     "model (judgerl/study/gold_rm); prompted: `model` as a reasoning judge.")
    shared_data: str | None = Field(None, description="Shared data folder (default $JUDGERL_SHARED_DATA or ../shared/data).")
    seed: int = Field(0, description="Seed of the item split, prompts and training.")
    items: int | None = Field(None, ge=3, description="Annotated AlpacaEval items (two responses each).")
    max_item_chars: int | None = Field(None, ge=100, description="Longest prompt + responses kept (characters).")
    gold_tokens: int | None = Field(None, ge=1, description="Gold judge thinking budget (tokens).")
    judge_tokens: int | None = Field(None, ge=1, description="Reasoning judge thinking budget (tokens).")
    sft_steps: int | None = Field(None, ge=1, description="Judge SFT optimizer steps.")
    judge_grpo_steps: int | None = Field(None, ge=1, description="Reasoning judge GRPO steps.")
    policy_steps: int | None = Field(None, ge=1, description="Policy GRPO steps per judge.")
    num_generations: int | None = Field(None, ge=2, description="G: samples per prompt (judge and policy GRPO).")
    prompts_per_step: int | None = Field(None, ge=1, description="Policy prompts per GRPO step.")
    completion_tokens: int | None = Field(None, ge=1, description="Policy answer budget (tokens).")
    monitor_every: int | None = Field(None, ge=1, description="Gold monitor period (policy steps).")
    monitor_prompts: int | None = Field(None, ge=1, description="Held-out prompts the monitor scores.")
    heldout_prompts: int | None = Field(None, ge=1, description="Unseen prompts for the final policy scores.")
    eval_limit: int | None = Field(None, ge=1, description="At most this many test rows per judge evaluation.")
    human_limit: int | None = Field(None, ge=1, description="LLMBar-natural pairs for the human-label accuracy.")
    probe_items: int | None = Field(None, ge=1, description="Honest answers the probes attack.")
    probe_attacks: list[str] | None = Field(None, description="Attack names (evaluation/attacks/default.yaml).")

    @model_validator(mode="after")
    def _fill(self) -> "QuickstartConfig":
        for k, v in SCALES[self.scale].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        return self


# ---- stage bookkeeping ------------------------------------------------------------------------
def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stages:
    """Run stages in order; skip those whose record says done with the same hash."""

    def __init__(self, log: Callable[[str], None]):
        self.log, self.hashes, self.status = log, {}, {}

    def run(self, name: str, folder: Path, config: dict, deps: list[str], fn: Callable[[bool], None],
            owns_folder: bool = True) -> None:
        h = config_hash({"stage": name, "config": config, "deps": [self.hashes[d] for d in deps]})
        rec_path = folder / f"stage-{name}.json"
        rec = json.loads(rec_path.read_text()) if rec_path.is_file() else None
        self.hashes[name] = h
        if rec and rec["hash"] == h and rec["status"] == "done":
            self.status[name] = "skipped"
            self.log(f"[dim]{name}: up to date ({folder}), skipped[/dim]")
            return
        resume = bool(rec and rec["hash"] == h)  # same config, interrupted: the stage may continue
        if rec and not resume and owns_folder and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.log(f"[bold]{name}[/bold]: {'resuming' if resume else 'running'} -> {folder}")
        t0 = time.perf_counter()
        rec = {"stage": name, "hash": h, "status": "running", "deps": deps, "config": config}
        rec_path.write_text(json.dumps(rec, indent=2, default=str))
        fn(resume)
        rec.update(status="done", seconds=round(time.perf_counter() - t0, 1), finished=time.time())
        rec_path.write_text(json.dumps(rec, indent=2, default=str))
        self.status[name] = "ran"


# ---- the loop ---------------------------------------------------------------------------------
class Quickstart:
    def __init__(self, cfg: QuickstartConfig, log: Callable[[str], None] = print):
        from judgerl.paths import data_root

        self.cfg, self.log = cfg, log
        self.root = Path(cfg.run_dir)
        self.data_root = data_root(cfg.shared_data)
        self.stages = Stages(log)

    # -- paths and specs
    def p(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def gold_spec(self):
        if self.cfg.gold == "embedded-rm":
            from judgerl.study.embedded import embedded_gold_spec

            return embedded_gold_spec("cpu", 8, "gold")
        return self.prompted_gold_spec()

    def prompted_gold_spec(self):
        """`model` as a reasoning judge: the gold when gold=prompted; with the embedded RM, its thinking is the
        reasoning judge's distillation text (the RM writes none)."""
        from judgerl.judges.spec import JudgeSpec, Sampling

        return JudgeSpec(name="gold", backend="hf", model=self.cfg.model, mode="reasoning", device="cpu",
                         sampling=Sampling(temperature=0.0, max_new_tokens=self.cfg.gold_tokens), batch_size=8)

    def judge_spec(self, variant: str, rl: bool = False):
        """A trained judge's saved spec; `rl` = the paper's judge decoding during policy RL."""
        from judgerl.config import load_judge_spec

        spec = load_judge_spec(self.p("judges", variant, "judge.yaml"))
        upd = {"device": "cpu", "name": f"judge-{variant}"}
        if rl:
            upd["sampling"] = spec.sampling.model_copy(update={"temperature": 0.7, "top_k": 20, "top_p": 0.95})
        return spec.model_copy(update=upd)

    def load(self, name: str, kind: str = "causal") -> tuple:
        """(model, tokenizer) from the shared registry (generation / judging only, never trained here)."""
        from judgerl.model_loader import shared_model

        return shared_model(name, kind, "cpu", "float32")

    def judge(self, spec, stage: str, ledger: Path):
        from judgerl.judges.judge import Judge

        m, t = self.load(spec.model, spec.model_kind or "causal")
        return Judge(spec, cache=self.p("cache.sqlite"), ledger=ledger, stage=stage, model=m, tokenizer=t)

    # -- stage configs (what each stage's hash covers)
    def items(self) -> tuple[list[dict], int]:
        """The annotated items and the first split seed leaving every split non-empty."""
        from judgerl.annotate.dataset import split_of
        from judgerl.annotate.loaders import builtin_items

        c = self.cfg
        pool = builtin_items("alpaca_eval", {"models": ["alpaca-7b", "gpt-3.5-turbo-1106", "claude-2.1"],
                                             "limit_per_model": 200, "data_dir": str(self.data_root)})
        pool = [it for it in pool if len(it["prompt"]) + sum(map(len, it["responses"])) <= c.max_item_chars]
        items = pool[:c.items]
        if len(items) < c.items:
            raise JudgerlError(f"only {len(items)} AlpacaEval items fit max_item_chars={c.max_item_chars}")
        fr = (0.6, 0.2, 0.2)
        for seed in range(c.seed, c.seed + 1000):
            if len({split_of(it["id"], seed, fr) for it in items}) == 3:
                return items, seed
        raise JudgerlError("no split seed leaves train, validation and test non-empty; raise items")

    def annotate_config(self, seed: int) -> dict:
        return {"input": str(self.p("annotations", "items.jsonl")), "output_dir": str(self.p("annotations")),
                "judge": self.gold_spec().model_dump(), "kinds": ["pointwise"], "split_seed": seed,
                "split_fractions": [0.6, 0.2, 0.2], "batch_size": 8, "invalid_retries": 0,
                "cache": str(self.p("cache.sqlite"))}

    def judge_config(self, variant: str) -> dict:
        c = self.cfg
        d = {"name": f"judge-{variant}", "output_dir": str(self.p("judges", variant)), "variant": variant,
             "format": "pointwise", "base_model": c.model, "annotations": str(self.p("annotations")),
             "finetune": "lora", "lora": {"r": 16, "alpha": 32}, "seed": c.seed, "save_stages": False,
             "sft": {"learning_rate": 5e-4, "max_steps": c.sft_steps, "warmup_ratio": 0.0,
                     "per_device_train_batch_size": 2, "max_length": 2048, "logging_steps": 1},
             "judge_sampling": {"temperature": 0.0, "max_new_tokens": c.judge_tokens if variant == "reasoning" else 8}}
        if variant == "reasoning":
            g = c.num_generations
            d["grpo"] = {"learning_rate": 1e-5, "max_steps": c.judge_grpo_steps, "num_generations": g,
                         "per_device_train_batch_size": g, "temperature": 1.0, "max_prompt_length": 2048,
                         "max_completion_length": c.judge_tokens, "loss_type": "dapo", "epsilon": 0.2,
                         "epsilon_high": 0.3, "beta": 0.0, "logging_steps": 1}
        return d

    def policy_config(self, variant: str) -> dict:
        c = self.cfg
        return {"name": f"policy-{variant}", "run_dir": str(self.p("policies", variant)), "policy": c.model,
                "judge": self.judge_spec(variant, rl=True).model_dump(), "gold": self.gold_spec().model_dump(),
                "reward": {"on_failure": "drop"},
                "grpo": {"learning_rate": 1e-5, "num_generations": c.num_generations,
                         "per_device_train_batch_size": c.num_generations * c.prompts_per_step,
                         "max_steps": c.policy_steps, "max_completion_length": c.completion_tokens,
                         "temperature": 0.7, "loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.3, "beta": 0.0,
                         "save_steps": max(1, c.monitor_every), "save_total_limit": 1, "seed": c.seed},
                "data": {"sources": ["pool:self-instruct"], "data_root": str(self.data_root),
                         "max_prompt_chars": 300, "seed": c.seed},
                "monitor": {"every_steps": c.monitor_every, "n_prompts": c.monitor_prompts,
                            "max_new_tokens": c.completion_tokens},
                "alarm": {"window": 3, "proxy_margin": 0.1, "gold_margin": 0.1, "on_trigger": "log"}}

    def trainer_log(self):
        """TRL's per-step dicts (printed to stdout) go to <run_dir>/train.log, not the console."""
        import contextlib

        f = open(self.p("train.log"), "a", encoding="utf-8")
        stack = contextlib.ExitStack()
        stack.enter_context(f)
        stack.enter_context(contextlib.redirect_stdout(f))
        return stack

    # -- stages
    def annotate(self, resume: bool) -> None:
        from judgerl.annotate import AnnotateConfig, run_annotate
        from judgerl.data import write_jsonl_atomic

        items, seed = self.items()
        write_jsonl_atomic(self.p("annotations", "items.jsonl"), items)
        if self.cfg.gold == "embedded-rm":
            from judgerl.study.embedded import annotate_items

            thinking = self.judge(self.prompted_gold_spec(), "annotate-thinking", self.p("annotations", "ledger.sqlite"))
            res = annotate_items(items, self.p("annotations"), seed, (0.6, 0.2, 0.2), self.p("cache.sqlite"),
                                 ledger=self.p("annotations", "ledger.sqlite"), thinking=thinking)
            self.log(f"  gold labels (embedded RM, deciles of these items' rewards): {res['valid']}/{res['rows']} "
                     f"responses, 0-9 histogram {res['histogram']}")
            return
        m, t = self.load(self.cfg.model)
        run_annotate(AnnotateConfig.model_validate(self.annotate_config(seed)), model=m, tokenizer=t)

    def train_judge(self, variant: str) -> None:
        from judgerl.training.judge_config import TrainJudgeConfig
        from judgerl.training.train_judge import train_judge

        with self.trainer_log():
            _, _, st = train_judge(TrainJudgeConfig.model_validate(self.judge_config(variant)))
        self.log(f"  judge-{variant}: {st.get('sft_steps', 0)} SFT steps, loss {st.get('sft_train_loss', float('nan')):.3f}"
                 + (f", {st.get('grpo_steps')} GRPO steps" if st.get("grpo_steps") else ""))

    def eval_judges(self, resume: bool) -> None:
        from judgerl.evaluation.eval_judge import evaluate_judge
        from judgerl.judges.spec import JudgeSpec

        base = JudgeSpec(name="base-prompted", backend="hf", model=self.cfg.model, device="cpu")
        folders = {"base-prompted": self.p("judges", "base-prompted")}
        for spec in [base, self.judge_spec("non_reasoning"), self.judge_spec("reasoning")]:
            out = folders.get(spec.name, self.p("judges", spec.name.removeprefix("judge-")))
            res = evaluate_judge(spec, out, str(self.p("annotations")), "test", self.cfg.eval_limit, ["llmbar-natural"],
                                 str(self.data_root), judge=self.judge(spec, "eval-judge", out / "ledger.sqlite"))
            g = res.get("gold") or {}
            a = g.get("alpha_expected")
            self.log(f"  {spec.name}: alpha (expected) vs gold {'–' if a is None else f'{a:.1f}'} on n {g.get('n')}"
                     + (" (small n)" if (g.get("n") or 0) < 30 else ""))

    def train_policy(self, variant: str, resume: bool) -> None:
        from judgerl.training.policy_grpo import PolicyConfig, train_policy

        cfg = PolicyConfig.model_validate(self.policy_config(variant))
        ckpt = Path(cfg.run_dir) / "checkpoints"
        resume = resume and ckpt.is_dir() and any(ckpt.glob("checkpoint-*"))
        if not resume and Path(cfg.run_dir).exists():  # an interrupted run without a checkpoint starts over
            keep = {f"stage-policy-{variant}.json"}
            for f in Path(cfg.run_dir).iterdir():
                if f.name not in keep:
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
        with self.trainer_log():
            summ = train_policy(cfg, resume=resume)  # judge and gold weights come from the shared registry
        m, al = summ.get("monitor") or {}, summ.get("alarm") or {}
        self.log(f"  policy-{variant}: {summ['steps']} steps; last monitor judge {m.get('proxy_mean', float('nan')):.2f}, "
                 f"gold {m.get('gold_mean', float('nan')):.2f}; alarm "
                 + (f"at step {al.get('first_step')}" if al.get("triggered") else "silent"))
        # A finished stage is skipped on rerun, so its resume checkpoints (weights + ~1 GB of optimizer state
        # for the 135M policy) are dead weight: final/ holds the trained policy.
        shutil.rmtree(ckpt, ignore_errors=True)

    def heldout_prompts(self) -> list[str]:
        from judgerl.training.prompts import load_prompts

        return load_prompts(["pool:wizardlm"], self.data_root, None, 300, self.cfg.seed)[:self.cfg.heldout_prompts]

    def heldout(self, resume: bool) -> None:
        from judgerl.evaluation.monitor import generate, score

        prompts = self.heldout_prompts()
        ledger = self.p("heldout", "ledger.sqlite")
        judges = {"gold": self.judge(self.gold_spec(), "heldout", ledger)}
        for v in ("non_reasoning", "reasoning"):
            judges[f"judge-{v}"] = self.judge(self.judge_spec(v), "heldout", ledger)
        policies = {"base": self.cfg.model, **{f"policy-{v}": str(self.p("policies", v, "final"))
                                               for v in ("non_reasoning", "reasoning")}}
        out, samples = {"prompts": len(prompts), "policies": {}}, []
        chats = [[{"role": "user", "content": p}] for p in prompts]
        for name, path in policies.items():
            m, t = self.load(path)
            answers = generate(m, t, chats, self.cfg.completion_tokens, 0.0, 8)
            scores = {j: score(judge, chats, answers, None, False) for j, judge in judges.items()}
            out["policies"][name] = {j: mean([s["value"] for s in sc]) for j, sc in scores.items()}
            samples += [{"policy": name, "prompt": p, "response": a, **{j: scores[j][i]["value"] for j in judges}}
                        for i, (p, a) in enumerate(zip(prompts, answers))]
        self.p("heldout", "scores.json").write_text(json.dumps(out, indent=2))
        from judgerl.data import write_jsonl_atomic

        write_jsonl_atomic(self.p("heldout", "samples.jsonl"), samples)

    def probes(self, resume: bool) -> None:
        from judgerl.evaluation.probes import load_attacks, load_items, run_probe

        src = self.data_root / "alpaca-eval" / "reference_outputs" / "gpt4_1106_preview.json.gz"
        items = load_items(src, self.cfg.probe_items, self.cfg.seed, self.cfg.max_item_chars // 2)
        attacks = load_attacks(only=self.cfg.probe_attacks)
        ledger = self.p("probes", "ledger.sqlite")
        for spec in [self.judge_spec("non_reasoning"), self.judge_spec("reasoning"), self.gold_spec()]:
            res = run_probe(self.judge(spec, "probe", ledger), items, attacks)
            self.p("probes", f"probe-{spec.name}.json").write_text(json.dumps(res, indent=2, default=float))

    # -- everything
    def run(self) -> dict:
        c, S = self.cfg, self.stages
        self.root.mkdir(parents=True, exist_ok=True)
        from judgerl.config import dump_yaml

        dump_yaml(c, self.p("config.yaml"))
        items, seed = self.items()
        S.run("annotate", self.p("annotations"), {**self.annotate_config(seed), "items": [i["id"] for i in items],
                                                  "thinking": self.prompted_gold_spec().fingerprint()},
              [], self.annotate)
        for v in ("non_reasoning", "reasoning"):
            S.run(f"judge-{v}", self.p("judges", v), self.judge_config(v), ["annotate"],
                  lambda resume, v=v: self.train_judge(v))
        S.run("eval-judges", self.p("judges"), {"limit": c.eval_limit, "human": c.human_limit, "split": "test"},
              ["judge-non_reasoning", "judge-reasoning"], self.eval_judges, owns_folder=False)
        for v in ("non_reasoning", "reasoning"):
            S.run(f"policy-{v}", self.p("policies", v), self.policy_config(v), [f"judge-{v}"],
                  lambda resume, v=v: self.train_policy(v, resume))
        S.run("heldout", self.p("heldout"), {"prompts": self.heldout_prompts(), "tokens": c.completion_tokens,
                                             "gold": self.gold_spec().fingerprint()},
              ["policy-non_reasoning", "policy-reasoning"], self.heldout)
        S.run("probes", self.p("probes"), {"items": c.probe_items, "attacks": c.probe_attacks, "seed": c.seed,
                                           "gold": self.gold_spec().fingerprint()},
              ["judge-non_reasoning", "judge-reasoning"], self.probes)
        from judgerl.report import build_report

        report = build_report(self.root)
        return {"stages": dict(S.status), "report": str(report)}


def where(root: Path) -> list[tuple[str, str]]:
    """(what, path) of the run's outputs, for the closing printout."""
    rows = [("resolved config", "config.yaml"), ("gold annotations", "annotations/pointwise.jsonl"),
            ("non-reasoning judge", "judges/non_reasoning/judge.yaml"),
            ("reasoning judge", "judges/reasoning/judge.yaml"),
            ("judge agreement", "judges/*/eval.json"),
            ("policy runs (monitor, alarm, samples)", "policies/*/monitor.jsonl"),
            ("held-out scores", "heldout/scores.json"), ("probes", "probes/probe-*.json"),
            ("figures", "figures/"), ("report", "report.html")]
    return [(w, str(root / p)) for w, p in rows]


# ---- plan (dry run) ---------------------------------------------------------------------------
