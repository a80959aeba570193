"""The study's analysis: per monitor point intervals, distance from the base policy, figures, study.json.

Per run and monitor point that kept its samples (the monitor's greedy answers to the held-out prompts,
samples/step_XXXX.jsonl or .jsonl.gz; points without samples are left out of the per-point figures):
- proxy (training judge) and gold means, each with a 95% bootstrap interval over prompts, and the
  paired change of the gold from step 0 and from the run's gold peak (same prompts), with intervals;
- distance from the base policy: the base model's mean per-token negative log-likelihood of the
  answers minus that of its own step-0 answers (the cross-entropy part of KL(policy || base), measured
  on the greedy answers; 0 at step 0, grows as the policy's outputs leave what the base would write);
- text statistics of the answers: words, distinct-bigram ratio (repetition), the share opening with the same five
  words, and the cross-prompt template detector's share and flag (evaluation/template.py: answers to different
  prompts carrying one shared text, anywhere in the answer, paraphrase-tolerant).
- `kl`, copied from the monitor record when the run logs a per-token KL(policy || base) estimate there.
The training metrics (reward, completion length, clipped share) come from metrics.jsonl. Per run also: the
trained judge's alpha (judges/curve.json), the online Gao fit (gao_fit.py); over the runs: the tuned alarm's
quality (alarm_quality.py) and the cross-judge matrix when analysis/cross_judge.json exists (cross_judge.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from judgerl.study.config import StudyConfig
from judgerl.study.samples import prompt_key, read_samples, sample_file


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def distinct2(text: str) -> float | None:
    w = text.split()
    grams = list(zip(w, w[1:]))
    return len(set(grams)) / len(grams) if grams else None


def same_opening(texts: list[str], words: int = 5) -> float | None:
    """Share of answers that open with the most common first `words` words: answers to different prompts that
    start alike (a template the policy learned) push it towards 1; the base policy's answers sit near 1/n."""
    from collections import Counter

    heads = [" ".join(t.split()[:words]).lower() for t in texts if t.split()]
    return Counter(heads).most_common(1)[0][1] / len(heads) if heads else None


def answer_stats(rows: list[dict]) -> dict:
    """Text statistics of one point's answers: words, distinct-bigram ratio, same-opening share, and the cross-prompt
    template detector's share, flag and template (evaluation/template.py)."""
    from judgerl.evaluation.template import report_of_rows

    texts = [r["response"] for r in rows]
    tpl = report_of_rows(rows)
    return {"words": _mean([r["words"] for r in rows]), "distinct2": _mean([distinct2(t) for t in texts]),
            "same_opening": same_opening(texts), "template_share": tpl["share"], "template_flag": tpl["flag"],
            "template": tpl["template"]}


def base_nll(cfg: StudyConfig, items: list[tuple[str, str]], batch: int = 16) -> list[float | None]:
    """Mean per-token NLL of each response (given its prompt, chat template) under the base policy."""
    import torch

    from judgerl.judges.hf import chat_text
    from judgerl.model_loader import shared_model

    model, tok = shared_model(cfg.base, "causal", cfg.device, "float32")
    out: list[float | None] = []
    side, tok.padding_side = tok.padding_side, "right"
    try:
        for s in range(0, len(items), batch):
            heads = [chat_text(tok, [{"role": "user", "content": p}]) for p, _ in items[s:s + batch]]
            fulls = [h + r for h, (_, r) in zip(heads, items[s:s + batch])]
            enc = tok(fulls, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            n_head = [len(tok(h, add_special_tokens=False)["input_ids"]) for h in heads]
            mask = enc["attention_mask"][:, 1:].clone()
            for i, k in enumerate(n_head):
                mask[i, :k - 1] = 0
            sel = mask.bool()
            with torch.no_grad():  # the vocabulary head only at the answer positions (not the prompt's)
                h = model.base_model(**enc).last_hidden_state[:, :-1][sel]
                logits = model.get_output_embeddings()(h).float()
                nll = torch.nn.functional.cross_entropy(logits, enc["input_ids"][:, 1:][sel], reduction="none")
            row = torch.arange(len(heads), device=sel.device)[:, None].expand_as(sel)[sel]
            for i in range(len(heads)):
                m = row == i
                out.append(float(nll[m].mean()) if m.any() else None)
    finally:
        tok.padding_side = side
    return out


def cached_base_nll(cfg: StudyConfig, run: Path, step: int, items: list[tuple[str, str]],
                    compute: bool = True) -> list[float | None] | None:
    """base_nll, kept in <run>/base_nll.json keyed by step and checked against a hash of the texts (the base model
    is only needed once: a committed run re-draws its distances without it). compute=False: None on a miss."""
    import hashlib

    path = run / "base_nll.json"
    cache = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    key = hashlib.sha256(json.dumps([cfg.base, items]).encode()).hexdigest()[:16]
    hit = cache.get(str(step))
    if hit and hit.get("key") == key:
        return hit["nll"]
    if not compute:
        return None
    nll = base_nll(cfg, items)
    cache[str(step)] = {"key": key, "n": len(items), "nll": nll}
    path.write_text(json.dumps(cache, sort_keys=True), encoding="utf-8")
    return nll


def nll_items(rows: list[dict]) -> list[tuple[str, str]]:
    """(last user message, response) of a point's sample rows: what the base model re-reads for the distance (and
    what base_nll.json's per-step key hashes)."""
    return [(r["prompt"][-1]["content"] if isinstance(r["prompt"], list) else r["prompt"], r["response"]) for r in rows]


def run_points(cfg: StudyConfig, run: Path, distance: bool | str) -> list[dict]:
    """Per monitor point with samples: judge, gold, their paired changes vs step 0, length, patterns and (distance:
    True computes missing base NLLs, "cached" uses only those already in base_nll.json) the distance from the base."""
    from judgerl.evaluation.monitor import read_monitor
    from judgerl.study.stats import cluster_bootstrap

    recs = read_monitor(run / "monitor.jsonl")
    samples = {r["step"]: read_samples(run, r["step"]) for r in recs if sample_file(run, r["step"]) is not None}
    samples = {k: v for k, v in samples.items() if v}
    steps = sorted(samples)
    if not steps:
        return []
    key = prompt_key
    rec_of = {r["step"]: r for r in recs}
    base = {key(s): s for s in samples[steps[0]]}
    nb = cfg.gold.bootstrap
    points = []
    for st in steps:
        rows = samples[st]
        pt = {"step": st, "n": len(rows),
              "proxy": cluster_bootstrap(rows, key, lambda rs: _mean([r["proxy"] for r in rs]), nb),
              "gold": cluster_bootstrap(rows, key, lambda rs: _mean([r["gold"] for r in rs]), nb),
              "gold_delta_vs_step0": cluster_bootstrap(
                  [(key(r), r["gold"], base[key(r)]["gold"]) for r in rows if key(r) in base], lambda x: x[0],
                  lambda rs: _mean([None if a is None or b is None else a - b for _, a, b in rs]), nb),
              "proxy_delta_vs_step0": cluster_bootstrap(
                  [(key(r), r["proxy"], base[key(r)]["proxy"]) for r in rows if key(r) in base], lambda x: x[0],
                  lambda rs: _mean([None if a is None or b is None else a - b for _, a, b in rs]), nb),
              **answer_stats(rows),
              "patterns": {k: v for k, v in rec_of[st].items() if k.startswith("pattern/")}}
        if rec_of[st].get("kl") is not None:  # a per-token KL(policy || base) estimate, when the run logs one
            pt["kl"] = rec_of[st]["kl"]
        if distance:
            k = cfg.distance_prompts or len(rows)  # the same first k monitor prompts at every point
            nll = cached_base_nll(cfg, run, st, nll_items(rows)[:k],
                                  compute=distance != "cached")
            if nll is not None:
                pt["base_nll"] = _mean(nll)
                pt["distance_n"] = min(k, len(rows))
        points.append(pt)
    if distance and points[0].get("base_nll") is not None:
        for pt in points:
            pt["distance"] = None if pt.get("base_nll") is None else pt["base_nll"] - points[0]["base_nll"]
    return points


def peak_and_fall(points: list[dict], run: Path, nb: int) -> dict:
    """Gold peak (step, value), and the paired change from the peak to the last point with its interval."""
    from judgerl.study.stats import cluster_bootstrap

    ok = [p for p in points if p["gold"]["value"] is not None]
    if not ok:
        return {}
    peak = max(ok, key=lambda p: p["gold"]["value"])
    last = ok[-1]
    a = {prompt_key(r): r["gold"] for r in read_samples(run, peak["step"])}
    b = [(prompt_key(r), r["gold"]) for r in read_samples(run, last["step"])]
    d = cluster_bootstrap([(k, g, a.get(k)) for k, g in b], lambda x: x[0],
                          lambda rs: _mean([None if g is None or h is None else g - h for _, g, h in rs]), nb)
    return {"peak_step": peak["step"], "peak_gold": peak["gold"]["value"], "last_step": last["step"],
            "last_gold": last["gold"]["value"], "last_minus_peak": d,
            "gold_fell_beyond_ci": d["hi"] is not None and d["hi"] < 0}


def train_curve(run: Path) -> list[dict]:
    from judgerl.data import read_jsonl

    p = run / "metrics.jsonl"
    keep = ("reward", "completions/mean_length", "completions/clipped_ratio", "grad_norm", "entropy")
    rows = [r for r in read_jsonl(p) if "reward" in r] if p.is_file() else []
    return [{"step": r["step"], **{k: r.get(k) for k in keep}} for r in rows]


DEFAULT_ALARM_SETTINGS = Path(__file__).resolve().parents[3] / "docs/experiments/reward_hacking/alarm_tuned.json"


def trained_judge(run: Path, judge: str, curve: list[dict], cfg: StudyConfig) -> dict:
    """{name, alpha} of the judge a run trained against: the name in the run's config.yaml (else resolved from the
    run spec: sft-best = judges.best or most labels, sft-weak / sft-mid = judges.weak / judges.mid or the median count), and its
    alpha x100 interval from judges/curve.json (the gold control: the gold itself, alpha 100 by definition)."""
    import yaml

    name = None
    if (run / "config.yaml").is_file():
        name = ((yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}).get("judge") or {}).get("name")
    if judge == "gold":
        return {"name": name or "gold", "alpha": {"value": 100.0, "lo": None, "hi": None, "gold_itself": True}}
    rows = {r["judge"]: r for r in curve}
    if name not in rows:
        counts = sorted(cfg.judges.label_counts)
        mid = getattr(cfg.judges, "mid", None) or counts[(len(counts) - 1) // 2]
        best = getattr(cfg.judges, "best", None) or counts[-1]
        alias = {"sft-best": f"sft-{best}", "sft-weak": f"sft-{cfg.judges.weak}", "sft-mid": f"sft-{mid}"}
        cand = alias.get(judge, judge)
        name = cand if cand in rows or name is None else name
    return {"name": name, "alpha": rows[name].get("alpha_expected") if name in rows else None}


def with_thinking_tokens(root: Path, curve: list[dict]) -> list[dict]:
    """Curve rows with the mean thinking tokens of a reasoning judge's evaluation (judges/<name>/eval/eval.json)
    when the row lacks it (curves written before judges-eval recorded it)."""
    for r in curve:
        ev = root / "judges" / ("reasoning" if r.get("reasoning") else r["judge"]) / "eval" / "eval.json"
        if r.get("mean_thinking_tokens") is None and ev.is_file():
            r["mean_thinking_tokens"] = json.loads(ev.read_text()).get("gold", {}).get("mean_thinking_tokens")
    return curve


def run_record(cfg: StudyConfig, r, run: Path, curve: list[dict], distance: bool | str) -> dict:
    """One run's entry of study.json: points, training curve, alarm as run, gold peak and fall, exploit table,
    the trained judge and its alpha, and the online Gao fit."""
    from judgerl.study.exploit import exploit_table
    from judgerl.study.gao_fit import fit_report

    pts = run_points(cfg, run, distance)
    alarm = json.loads((run / "alarm.json").read_text()) if (run / "alarm.json").is_file() else {"triggered": False}
    summ = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    tj = trained_judge(run, r.judge, curve, cfg)
    train = train_curve(run)  # a run cut before summary.json (a call's timeout) counts its steps from metrics.jsonl
    rec = {"judge": r.judge, "judge_name": tj["name"], "alpha": tj["alpha"], "points": pts, "train": train,
           "alarm": {"triggered": alarm.get("triggered"), "first_step": alarm.get("first_step")},
           "steps": summ.get("steps") if summ else (train[-1]["step"] if train else None),
           "judge_calls": summ.get("judge_calls"),
           **peak_and_fall(pts, run, cfg.gold.bootstrap)}
    if pts:
        rec["exploit"] = exploit_table(run, pts[-1]["step"])
        rec["gao"] = fit_report(pts)
    return rec


def mark_stale(cross: dict, runs: dict) -> dict:
    """Cross-judge rows scored on answers of a step the run no longer ends at (the run was re-run from step 0 after
    the matrix was computed) get `stale: True` and the run's `current_final_step`, so no table passes them off as
    the current run's."""
    for name, row in cross.get("runs", {}).items():
        last = (runs.get(name) or {}).get("last_step")
        if last is not None and row.get("final_step") != last:
            row["stale"], row["current_final_step"] = True, last
    return cross


def analyze(cfg: StudyConfig, root: Path, log: Callable[[str], None], distance: bool | str = True,
            alarm_settings: Path | None = None) -> dict:
    """analysis/study.json and the figures from a study run_dir. `alarm_settings`: the tuned alarm settings file
    (alarm_quality.tune_on_runs; default: docs/experiments/reward_hacking/alarm_tuned.json when present);
    analysis/cross_judge.json (cross_judge.cross_judge_matrix) is folded in when it exists."""
    from judgerl.study.alarm_quality import alarm_quality, load_settings
    from judgerl.study.figures import draw_all

    out = root / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    curve_p = root / "judges" / "curve.json"
    res: dict = {"judges": with_thinking_tokens(root, json.loads(curve_p.read_text()) if curve_p.is_file() else []),
                 "runs": {}}
    gold_p = root / "gold" / "gold.json"
    if gold_p.is_file():
        g = json.loads(gold_p.read_text())
        res["gold"] = g.get("checks") or g.get("checks_gpu") or {}  # checks_gpu: the embedded gold's record
    runs = {r.name: root / "policies" / r.name for r in cfg.policy.runs if (root / "policies" / r.name / "monitor.jsonl").is_file()}
    for r in cfg.policy.runs:
        if r.name not in runs:
            continue
        x = res["runs"][r.name] = run_record(cfg, r, runs[r.name], res["judges"], distance)
        log(f"analyze {r.name}: gold peak {x.get('peak_gold', float('nan')):.2f} at step {x.get('peak_step')}, last "
            f"{x.get('last_gold', float('nan')):.2f}; fell beyond CI: {x.get('gold_fell_beyond_ci')}; alarm "
            f"{'at step ' + str(x['alarm']['first_step']) if x['alarm']['triggered'] else 'silent'}")
    settings = alarm_settings or DEFAULT_ALARM_SETTINGS
    if runs and Path(settings).is_file():
        tuned = load_settings(settings)
        res["alarm_tuning"] = {k: tuned[k] for k in ("setting", "loss", "tied", "rule", "grid", "tuned_on", "chosen")}
        flags = {k: {p["step"]: p["template_flag"] for p in v["points"]} for k, v in res["runs"].items()}
        res["alarm_quality"] = alarm_quality(runs, tuned, cfg.gold.bootstrap, template_flags=flags)
        q = res["alarm_quality"]
        log(f"alarm quality ({q['setting']}): {q['on_time']} on time, {q['early']} early, {q['late']} late, "
            f"{q['missed']} missed, {q['false_alarms']} false alarms; held out: {', '.join(q['held_out_runs']) or 'none'}")
        t = q["with_template"]
        log(f"with the template input: {t['on_time']} on time, {t['early']} early, {t['late']} late, {t['missed']} "
            f"missed, {t['false_alarms']} false alarms")
    if (out / "cross_judge.json").is_file():
        res["cross_judge"] = mark_stale(json.loads((out / "cross_judge.json").read_text(encoding="utf-8")), res["runs"])
    (out / "study.json").write_text(json.dumps(res, indent=2, default=float), encoding="utf-8")
    res["figures"] = draw_all(res, out)
    return {"runs": sorted(res["runs"]), "figures": res["figures"]}
