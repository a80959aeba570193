"""Small-scale reproduction of the paper's loop on one GPU (issue 8), in the spirit of Gao et al.

    gold  : a Bradley-Terry reward model on SmolLM2-135M trained on the 17.7K GPT-4-Turbo preferences of
            AlpacaEval (../shared/data/alpaca-eval), checked on held-out pairs and on LLMBar human labels;
    annot : SmolLM2 samples answers to RL-pool prompts (wizardlm + eq-bench + writingbench), the gold RM
            scores them, scores become 0-9 labels by gold-reward decile (the pointwise annotation set);
    judges: a non-reasoning judge (SFT on the label) and a reasoning judge (SFT on thinking + label,
            then GRPO with the paper's Eq. 1 reward). The gold RM writes no thinking, so the "thinking"
            distilled here is a short critique SmolLM2 wrote itself, followed by the GOLD score: a
            stand-in for gpt-oss-120b's reasoning, not the paper's distillation target. (RL-only from the
            raw 135M model does not learn: it never writes a valid verdict, every reward is -1.)
    policy: policy GRPO runs (SmolLM2 policy) against each judge, gold monitor (the gold RM) on held-out
            self-instruct prompts, hacking alarm on; curves + summary to OUT.

    gao   : (separate) Gao et al.'s proxy/gold setting: a proxy BT RM from few preference labels is
            optimised by policy GRPO while the gold RM (all labels) watches through the gold monitor.

Stages run in order; `--stage gold` does gold+annot+judges, `--stage policy` the policy runs, so the
two fit separate device calls. Everything goes to --work; the figures and JSON to --out.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from judgerl.annotate.dataset import split_of  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def jl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def write_annotations(folder: Path, pointwise: list[dict] | None, pairwise: list[dict] | None, meta: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for kind, rows in (("pointwise", pointwise), ("pairwise", pairwise)):
        if rows is None:
            continue
        with open(folder / f"{kind}.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        counts[kind] = len(rows)
    (folder / "manifest.json").write_text(json.dumps({"version": 1, "counts": counts, **meta}, indent=2))


def alpaca_pairs(data: Path, limit: int | None) -> list[dict]:
    refs = {r["instruction"]: r["output"] for r in json.load(gzip.open(data / "alpaca-eval/reference_outputs/gpt4_1106_preview.json.gz", "rt"))}
    rows = []
    for f in sorted((data / "alpaca-eval/weighted_alpaca_eval_gpt4_turbo_annotations").glob("*.jsonl.gz")):
        for i, r in enumerate(jl(f)):
            p = r.get("preference")
            if p is None or p != p or abs(p - 1.5) < 0.1 or not r.get("output_2") or r["instruction"] not in refs:
                continue  # ties / near-ties carry no label
            item = f"{f.name.split('.jsonl')[0]}:{i}"
            rows.append({"item_id": item, "prompt": r["instruction"], "responses": [refs[r["instruction"]], r["output_2"]],
                         "label": 1 if p < 1.5 else 2, "label_swapped": 1 if p < 1.5 else 2, "consistent": True,
                         "reasoning": "", "valid": True, "split": split_of(r["instruction"], 0), "rubric": None,
                         "effort": "high", "soft_preference": p})
    random.Random(0).shuffle(rows)
    return rows[:limit] if limit else rows


def stage_gold(a) -> None:
    import torch

    from judgerl.judges import Judge, JudgeRequest, JudgeSpec, Sampling, run_sync
    from judgerl.training.judge_config import TrainJudgeConfig
    from judgerl.training.prompts import load_prompts
    from judgerl.training.train_judge import train_judge

    work, data, base = Path(a.work), Path(a.data), a.base
    results: dict = {}
    # 1. gold reward model on GPT-4-Turbo preferences
    pairs = alpaca_pairs(data, a.gold_pairs)
    gold_spec, st = train_rm(a, work, "gold_rm", pairs)
    results["gold_train"] = st
    gold = Judge(gold_spec, cache=work / "cache.sqlite", ledger=work / "ledger.sqlite", stage="gold-check")

    def pair_acc(items):
        return rm_pair_accuracy(gold, items)

    test = [(r["prompt"], *r["responses"], r["label"]) for r in pairs if r["split"] == "test"][: a.eval_n]
    results["gold_acc_alpaca_test"] = pair_acc(test)
    for sub in ("Natural", "Adversarial_Neighbor", "Adversarial_GPTInst", "Adversarial_GPTOut", "Adversarial_Manual"):
        rows = json.loads((data / f"llmbar/{sub}.json").read_text())
        results[f"gold_acc_llmbar_{sub}"] = pair_acc([(r["input"], r["output_1"], r["output_2"], r["label"])
                                                       for r in rows][: a.eval_n])
    mt = json.loads((data / "llmbar/processed_MT-Bench.json").read_text())
    results["gold_acc_mtbench_human"] = pair_acc([(r["input"], r["output_1"], r["output_2"], r["label"]) for r in mt][: a.eval_n])
    log(f"gold checks: {json.dumps({k: v for k, v in results.items() if k.startswith('gold_acc')})}")

    # 2. pointwise annotation of policy samples by the gold RM
    os.environ["JUDGERL_SHARED_DATA"] = str(data)
    prompts = load_prompts(["pool:wizardlm", "pool:eq-bench", "pool:writingbench"], root=data)
    prompts = [p for p in prompts if len(p) < 1500][: a.annot_prompts]
    gen_spec = JudgeSpec(name="sampler", backend="hf", model=base, batch_size=64,
                         sampling={"temperature": 1.0, "max_new_tokens": a.annot_tokens, "seed": 1})
    sampler = Judge(gen_spec, stage="annotate")
    msgs = [[{"role": "user", "content": p}] for p in prompts for _ in range(a.samples)]
    outs = run_sync(sampler.agenerate(msgs))
    answers = [(p, o.raw.strip()) for p, o in zip([p for p in prompts for _ in range(a.samples)], outs) if o.raw.strip()]
    del sampler
    torch.cuda.empty_cache()
    gold.stage = "annotate"
    verdicts = gold.judge([JudgeRequest(prompt=p, responses=[r]) for p, r in answers])
    rewards = [v.expected for v in verdicts]
    order = sorted(range(len(rewards)), key=lambda i: rewards[i])
    score = [0] * len(rewards)
    for rank, i in enumerate(order):
        score[i] = min(9, rank * 10 // len(rewards))
    cuts = [rewards[order[min(len(order) - 1, k * len(order) // 10)]] for k in range(1, 10)]
    critic = Judge(gen_spec.model_copy(update={"sampling": Sampling(temperature=0.0, max_new_tokens=a.judge_think)}),
                   stage="annotate-critique")
    crit = run_sync(critic.agenerate([[{"role": "user", "content":
                                        f"Instruction:\n{p[:1200]}\n\nResponse:\n{r[:1200]}\n\nIn two sentences, "
                                        "judge how well the response follows the instruction and how helpful and "
                                        "accurate it is."}] for p, r in answers]))
    del critic
    torch.cuda.empty_cache()
    point = [{"item_id": f"a{i // a.samples}", "prompt": p, "response_idx": i % a.samples, "response": r,
              "score": score[i], "expected": None, "reasoning": crit[i].raw.strip(), "valid": True,
              "split": split_of(f"a{i // a.samples}", 0), "rubric": None, "effort": "high", "gold_reward": rewards[i]}
             for i, (p, r) in enumerate(answers)]
    point = [r for r in point if r["reasoning"]]  # the distillation target needs a critique
    write_annotations(work / "point_ann", point, None, {"source": "SmolLM2 samples scored by the gold RM",
                                                        "decile_cuts": cuts})
    results["annotation"] = {"prompts": len(prompts), "responses": len(point), "decile_cuts": cuts}
    log(f"annotated {len(point)} responses; decile cuts {[round(c, 2) for c in cuts]}")

    # 3. judges trained on the gold labels
    nr = TrainJudgeConfig(name="judge_nr", output_dir=str(work / "judge_nr"), variant="non_reasoning", base_model=base,
                          annotations=str(work / "point_ann"),
                          sft={"learning_rate": 3e-5, "num_train_epochs": a.sft_epochs, "per_device_train_batch_size": a.bs,
                               "max_length": 1536, "logging_steps": 20})
    _, _, st = train_judge(nr)
    results["judge_nr_train"] = st
    rl = TrainJudgeConfig(name="judge_rl", output_dir=str(work / "judge_rl"), variant="reasoning", base_model=base,
                          annotations=str(work / "point_ann"), judge_sampling={"max_new_tokens": a.judge_think + 16},
                          sft={"learning_rate": 3e-5, "num_train_epochs": a.sft_epochs, "per_device_train_batch_size": a.bs,
                               "max_length": 1536, "logging_steps": 20},
                          grpo={"learning_rate": 2e-6, "max_steps": a.judge_grpo_steps, "num_generations": 8,
                                "per_device_train_batch_size": 32, "max_prompt_length": 1536,
                                "max_completion_length": a.judge_think + 16, "logging_steps": 5})
    _, _, st = train_judge(rl)
    results["judge_rl_train"] = st
    judge_alphas(a, work, point, results)
    (work / "gold_results.json").write_text(json.dumps(results, indent=2, default=float))
    if a.out:
        (Path(a.out) / "gold_results.json").write_text(json.dumps(results, indent=2, default=float))


def train_rm(a, work: Path, name: str, pairs: list[dict]):
    """A Bradley-Terry reward model (`train-judge` variant bt_rm) on the train split of `pairs`."""
    from judgerl.training.judge_config import TrainJudgeConfig
    from judgerl.training.train_judge import train_judge

    write_annotations(work / f"{name}_ann", None, pairs, {"source": "alpaca-eval gpt4_turbo preferences"})
    log(f"{name}: {sum(r['split'] == 'train' for r in pairs)} train pairs")
    cfg = TrainJudgeConfig(name=name, output_dir=str(work / name), variant="bt_rm", base_model=a.base,
                           annotations=str(work / f"{name}_ann"),
                           rm={"learning_rate": 2e-5, "num_train_epochs": 1.0, "per_device_train_batch_size": a.bs,
                               "max_length": a.rm_max_len, "logging_steps": 20})
    _, spec, st = train_judge(cfg)
    return spec.model_copy(update={"batch_size": 32, "name": name}), st


def rm_pair_accuracy(judge, items: list[tuple[str, str, str, int]]) -> float:
    """% of (prompt, response 1, response 2, better) items where the RM rewards the better response more."""
    from judgerl.judges import JudgeRequest

    reqs = [JudgeRequest(prompt=p, responses=[r]) for p, r1, r2, _ in items for r in (r1, r2)]
    v = judge.judge(reqs)
    ok = [(v[2 * i].expected > v[2 * i + 1].expected) == (lab == 1) for i, (_, _, _, lab) in enumerate(items)]
    return round(100 * sum(ok) / max(1, len(ok)), 1)


def stage_gao(a) -> None:
    """Gao et al.'s setting: a proxy RM from few labels is optimised, a gold RM from all labels watches.

    Both RMs are SmolLM2 BT models on the same GPT-4-Turbo preferences (gold: all train pairs; proxy:
    --proxy-pairs of them). The policy runs GRPO against the proxy with the gold monitor and the alarm on.
    """
    from judgerl.judges import Judge
    from judgerl.training.policy_grpo import PolicyConfig, train_policy

    work, data = Path(a.work), Path(a.data)
    os.environ["JUDGERL_SHARED_DATA"] = str(data)
    pairs = alpaca_pairs(data, a.gold_pairs)
    test = [(r["prompt"], *r["responses"], r["label"]) for r in pairs if r["split"] == "test"][: a.eval_n]
    results: dict = {}
    specs = {}
    for name, rows in (("gold_rm", pairs),
                       ("proxy_rm", [r for r in pairs if r["split"] == "train"][: a.proxy_pairs] +
                        [r for r in pairs if r["split"] != "train"])):
        done = work / name / "judge.yaml"
        if done.exists():
            from judgerl.config import load_judge_spec

            specs[name] = load_judge_spec(str(done)).model_copy(update={"batch_size": 32, "name": name})
        else:
            specs[name], results[f"{name}_train"] = train_rm(a, work, name, rows)
        j = Judge(specs[name], cache=work / "cache.sqlite", ledger=work / "ledger.sqlite", stage=f"check-{name}")
        results[f"{name}_acc_alpaca_test"] = rm_pair_accuracy(j, test)
    log(f"RM checks on {len(test)} held-out pairs: {json.dumps({k: v for k, v in results.items() if 'acc' in k})}")
    if a.out:
        (Path(a.out) / "gao_rm_results.json").write_text(json.dumps(results, indent=2, default=float))
    if a.policy_steps <= 0:
        return
    cfg = PolicyConfig(
        name="policy_proxy_rm", run_dir=str(work / "policy_proxy_rm"), policy=a.base, judge=specs["proxy_rm"],
        gold=specs["gold_rm"],
        grpo={"learning_rate": a.policy_lr, "num_generations": 8, "per_device_train_batch_size": 64,
              "max_steps": a.policy_steps, "max_completion_length": a.policy_tokens, "save_steps": 10_000,
              "save_final": False, "logging_steps": 1, "policy_dtype": "bfloat16"},
        data={"sources": ["pool:wizardlm", "pool:eq-bench", "pool:self-instruct"], "max_prompt_chars": 1500},
        monitor={"every_steps": a.monitor_every, "n_prompts": 64, "max_new_tokens": a.policy_tokens, "batch_size": 64},
        alarm={"window": 3, "proxy_margin": 0.1, "gold_margin": 0.05})
    log(f"policy GRPO vs proxy RM: {a.policy_steps} steps, lr {a.policy_lr}")
    t = time.time()
    summary = train_policy(cfg)
    summary["wall_s"] = round(time.time() - t, 1)
    if a.out:
        for f in ("monitor.jsonl", "metrics.jsonl", "alarm.json", "summary.json"):
            src = work / "policy_proxy_rm" / f
            if src.exists():
                (Path(a.out) / f"gao_{f}").write_bytes(src.read_bytes())


def judge_alphas(a, work: Path, point: list[dict], results: dict) -> None:
    """Static agreement of each trained judge with gold on the held-out split (Krippendorff α, interval)."""
    import krippendorff
    import torch

    from judgerl.config import load_judge_spec
    from judgerl.judges import Judge, JudgeRequest

    test_rows = [r for r in point if r["split"] == "test"]
    for name in ("judge_nr", "judge_rl"):
        spec = load_judge_spec(str(work / name / "judge.yaml")).model_copy(update={"batch_size": 32})
        j = Judge(spec, cache=work / "cache.sqlite", ledger=work / "ledger.sqlite", stage=f"eval-{name}")
        vs = j.judge([JudgeRequest(prompt=r["prompt"], responses=[r["response"]]) for r in test_rows])
        pred = [v.expected if v.expected is not None else float("nan") for v in vs]
        alpha = krippendorff.alpha(reliability_data=[[r["score"] for r in test_rows], pred], level_of_measurement="interval")
        results[f"{name}_alpha_x100"] = round(100 * float(alpha), 2)
        results[f"{name}_invalid_rate"] = round(sum(not v.valid for v in vs) / max(1, len(vs)), 3)
        del j
        torch.cuda.empty_cache()
    log(f"judges: alpha nr={results['judge_nr_alpha_x100']} rl={results['judge_rl_alpha_x100']}")


def stage_policy(a) -> None:
    from judgerl.config import load_judge_spec
    from judgerl.training.policy_grpo import PolicyConfig, train_policy

    work, data = Path(a.work), Path(a.data)
    os.environ["JUDGERL_SHARED_DATA"] = str(data)
    if not (work / "gold_results.json").exists():  # the gold stage stopped before the static checks
        point = [json.loads(x) for x in open(work / "point_ann" / "pointwise.jsonl")]
        results: dict = {}
        judge_alphas(a, work, point, results)
        (work / "gold_results.json").write_text(json.dumps(results, indent=2, default=float))
        if a.out:
            (Path(a.out) / "gold_results.json").write_text(json.dumps(results, indent=2, default=float))
    gold = load_judge_spec(str(work / "gold_rm" / "judge.yaml")).model_copy(update={"batch_size": 32, "name": "gold-rm"})
    summary = {}
    for name, extra in (("judge_nr", {}), ("judge_rl", {"sampling": {"max_new_tokens": a.judge_think + 16, "temperature": 0.7,
                                                                      "top_k": 20, "top_p": 0.95}})):
        spec = load_judge_spec(str(work / name / "judge.yaml")).model_copy(update={"batch_size": 64})
        if extra:
            spec = spec.model_copy(update={"sampling": spec.sampling.model_copy(update=extra["sampling"])})
        cfg = PolicyConfig(
            name=f"policy_{name}", run_dir=str(work / f"policy_{name}"), policy=a.base, judge=spec, gold=gold,
            grpo={"learning_rate": a.policy_lr, "num_generations": 8, "per_device_train_batch_size": 64,
                  "max_steps": a.policy_steps, "max_completion_length": a.policy_tokens, "save_steps": 10_000,
                  "logging_steps": 1, "policy_dtype": "bfloat16"},
            data={"sources": ["pool:self-instruct"], "max_prompt_chars": 1500},
            monitor={"every_steps": a.monitor_every, "n_prompts": 32, "max_new_tokens": a.policy_tokens, "batch_size": 32},
            alarm={"window": 3, "proxy_margin": 0.1, "gold_margin": 0.05})
        log(f"policy GRPO vs {name}: {a.policy_steps} steps")
        t = time.time()
        summary[name] = train_policy(cfg)
        summary[name]["wall_s"] = round(time.time() - t, 1)
        if a.out:
            for f in ("monitor.jsonl", "metrics.jsonl", "alarm.json"):
                src = work / f"policy_{name}" / f
                if src.exists():
                    (Path(a.out) / f"{name}_{f}").write_bytes(src.read_bytes())
    (work / "policy_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if a.out:
        (Path(a.out) / "policy_summary.json").write_text(json.dumps(summary, indent=2, default=str))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=["gold", "policy", "all", "gao"], default="all")
    ap.add_argument("--work", default="/tmp/jr/work")
    ap.add_argument("--data", default=os.environ.get("JUDGERL_SHARED_DATA", "../shared/data"))
    ap.add_argument("--out", default=os.environ.get("OUT"))
    ap.add_argument("--base", default="smollm2-135m-instruct")
    ap.add_argument("--bs", type=int, default=16)
    ap.add_argument("--gold-pairs", type=int, default=None)
    ap.add_argument("--rm-max-len", type=int, default=1024)
    ap.add_argument("--eval-n", type=int, default=1000)
    ap.add_argument("--annot-prompts", type=int, default=400)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--annot-tokens", type=int, default=192)
    ap.add_argument("--sft-epochs", type=float, default=2.0)
    ap.add_argument("--judge-think", type=int, default=64)
    ap.add_argument("--judge-grpo-steps", type=int, default=15)
    ap.add_argument("--policy-steps", type=int, default=40)
    ap.add_argument("--policy-tokens", type=int, default=128)
    ap.add_argument("--policy-lr", type=float, default=2e-6)
    ap.add_argument("--monitor-every", type=int, default=5)
    ap.add_argument("--proxy-pairs", type=int, default=500, help="gao: train pairs of the proxy RM")
    a = ap.parse_args()
    Path(a.work).mkdir(parents=True, exist_ok=True)
    if a.stage in ("gold", "all"):
        stage_gold(a)
    if a.stage in ("policy", "all"):
        stage_policy(a)
    if a.stage == "gao":
        stage_gao(a)


if __name__ == "__main__":
    main()
