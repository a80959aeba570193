"""Gold monitor: a TRL/transformers TrainerCallback that tracks proxy (training judge) vs gold scores.

Every `every_steps` optimizer steps (and at step 0, the base policy) it generates on held-out
prompts (greedy by default), scores the samples with the training judge and with the gold judge,
and writes
    monitor.jsonl              one record per checkpoint: proxy/gold means, invalid rates, lengths,
                               adversarial-pattern rates (evaluation/patterns.py), the cross-prompt
                               template detector's share and flag (evaluation/template.py)
    samples/step_XXXX.jsonl    the samples with both scores and detected patterns
    alarm.json, flagged/       when the hacking alarm (evaluation/alarm.py) fires
    best_gold/                 the policy at its best gold score (alarm.keep_best_gold)
and logs `monitor/*` through `Trainer.log`, so they reach report_to (tensorboard, wandb) and
trainer_state.json. A pairwise judge scores a sample as its win probability against the base
policy's step-0 response to the same prompt (both orders with `both_orders`).
On resume, `restore(step)` reloads the records up to the checkpoint step and replays the alarm.
With `scorer` set (evaluation/monitor_async.MonitorScorer) the training thread only answers the prompts and the
scoring runs on the scorer's thread in step order (same records on the same answers, written when the scores land,
logged through `Trainer.log` at the next step with `monitor/at_step`); `on_train_end` waits for them. Passes that
must act at their own step (`on_trigger: stop`, `keep_best_gold`, sharded or multi-process policies) stay synchronous.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from judgerl.data import read_jsonl
from judgerl.evaluation.alarm import AlarmConfig, HackingAlarm
from judgerl.evaluation.judge_metrics import mean
from judgerl.evaluation.monitor_config import MonitorConfig
from judgerl.evaluation.patterns import DETECTORS, TEXT_DETECTORS, detect, words
from judgerl.evaluation.template import prompt_text, template_report
from judgerl.judges.judge import run_sync
from judgerl.judges.spec import JudgeRequest
from judgerl.judges.values import first_wins, judge_prompt, point_value


def read_monitor(path: str | Path) -> list[dict]:
    """monitor.jsonl records, last record per step wins (a resumed run re-logs redone steps)."""
    path = Path(path)
    if not path.is_file():
        return []
    by_step = {int(r["step"]): r for r in read_jsonl(path)}
    return [by_step[s] for s in sorted(by_step)]


def engine_serves(model) -> bool:
    """Greedy monitor answers come from judgerl's static-cache engine (judges/static_decode.py) on CUDA, where it
    equals plain `generate` token for token (its GPU guards) and is ~9x faster at the study's shapes (bench 1); on
    the CPU plain `generate` stays (the engine saved ~7% there, bench/RESULTS.md section 7). PEFT models keep
    `generate` (the engine reads a plain module's weights)."""
    from judgerl.judges.static_decode import supported

    return (model.device.type == "cuda" and not hasattr(model, "peft_config") and plain_weights(model)
            and supported(model))


def plain_weights(model) -> bool:
    """Every parameter is a whole local tensor: not sharded by FSDP (DTensor, FlatParameter) or ZeRO-3 (ds_id).
    Sharded ranks generate in lock step through the model's own forward (training/sharding.py)."""
    return not any(type(p).__name__ in ("DTensor", "FlatParameter") or hasattr(p, "ds_id") for p in model.parameters())


def engine_greedy(model, tok, enc, max_new_tokens: int) -> list[str]:
    """Greedy completions of one left-padded batch through the engine (decode.generate_ids' graph path)."""
    from judgerl.judges.decode import generate_ids

    rows = enc["input_ids"].shape[0]
    new = generate_ids(model, enc["input_ids"], enc["attention_mask"], max_new_tokens=max_new_tokens,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, fast=True)
    return [tok.decode(t, skip_special_tokens=True) for t in new[:rows]]


def generate(model, tok, prompts: list, max_new_tokens: int, temperature: float = 0.0, batch_size: int = 8,
             engine: bool | None = None) -> list[str]:
    """Greedy (or sampled) completions of chat prompts with the policy, batched with left padding. engine: greedy
    decoding through judgerl's static-cache engine (None: where `engine_serves`)."""
    import torch

    from judgerl.judges.hf import chat_text

    engine = (engine_serves(model) if engine is None else engine) and temperature <= 0

    texts = [chat_text(tok, p if isinstance(p, list) else [{"role": "user", "content": p}]) for p in prompts]
    was_training = model.training
    model.eval()
    side, tok.padding_side = tok.padding_side, "left"
    out: list[str] = []
    try:
        for s in range(0, len(texts), batch_size):
            enc = tok(texts[s:s + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            if engine:
                out.extend(engine_greedy(model, tok, enc, max_new_tokens))
                continue
            kw = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            kw.update(dict(do_sample=True, temperature=temperature) if temperature > 0 else
                      dict(do_sample=False, temperature=None, top_p=None, top_k=None))
            with torch.no_grad():
                gen = model.generate(**enc, **kw)
            out.extend(tok.decode(g[enc["input_ids"].shape[1]:], skip_special_tokens=True) for g in gen)
    finally:
        tok.padding_side = side
        model.train(was_training)
    return out


def score(judge, prompts: list, responses: list[str], bases: list[str] | None, both_orders: bool) -> list[dict]:
    """Per-sample {value, valid, failed}: expected score (pointwise) or P(beats base) (pairwise)."""
    if judge.spec.format == "pointwise":
        vs = run_sync(judge.ajudge([JudgeRequest(prompt=judge_prompt(p), responses=[r]) for p, r in zip(prompts, responses)]))
        return [{"value": point_value(v), "valid": v.valid, "failed": v.failed} for v in vs]
    reqs = [JudgeRequest(prompt=judge_prompt(p), responses=[r, b]) for p, r, b in zip(prompts, responses, bases)]
    if both_orders:
        reqs += [JudgeRequest(prompt=judge_prompt(p), responses=[b, r]) for p, r, b in zip(prompts, responses, bases)]
    vs = run_sync(judge.ajudge(reqs))
    n = len(prompts)
    out = []
    for i in range(n):
        ps = [first_wins(vs[i], "prob")]
        if both_orders:
            q = first_wins(vs[n + i], "prob")
            ps.append(None if q is None else 1.0 - q)
        ok = [p for p in ps if p is not None]
        out.append({"value": sum(ok) / len(ok) if ok else None, "valid": all(vs[k].valid for k in ([i, n + i] if both_orders else [i])),
                    "failed": any(vs[k].failed for k in ([i, n + i] if both_orders else [i]))})
    return out


class GoldMonitor(TrainerCallback):
    def __init__(self, run, prompts: list, proxy, gold, cfg: MonitorConfig | None = None,
                 alarm: AlarmConfig | None = None, trainer=None):
        self.run, self.prompts, self.proxy, self.gold = run, prompts, proxy, gold
        self.cfg = cfg or MonitorConfig()
        self.alarm = HackingAlarm(alarm)
        self.trainer = trainer
        # sharded policy (FSDP / ZeRO-3): a context manager gathering its weights; set by train_policy, every rank
        # then generates the held-out answers (the policy's forwards need all ranks) and rank 0 scores them
        self.gather = None
        self.bases: list[str] | None = None
        self.records: list[dict] = []
        self.done_steps: set[int] = set()
        self._pattern_judge = None  # built at the first pass (it may reuse the gold judge's loaded weights)
        # step 0 handed in by a caller that already ran it with the same base policy, prompts, decoding and gold
        # (the quickstart's later policy runs): {"responses": [...], "gold": [score dicts] | None, "from": str}
        self.shared_base: dict | None = None
        self.scorer = None  # evaluation/monitor_async.MonitorScorer: score off the training thread
        self._pending: list = []  # (step, Future) of passes being scored, in step order

    # ---- resume -----------------------------------------------------------------------------
    def restore(self, step: int) -> None:
        """Reload monitor history up to `step` (a checkpoint) and replay the alarm on it."""
        self.records = [r for r in read_monitor(self.run.path / "monitor.jsonl") if r["step"] <= step]
        self.done_steps = {r["step"] for r in self.records}
        self.alarm.replay(self.records)
        base = self.run.path / "samples" / "step_0000.jsonl"
        if base.is_file():
            rows = [json.loads(x) for x in base.read_text(encoding="utf-8").splitlines() if x.strip()]
            self.bases = [r["response"] for r in rows]

    # ---- one monitor pass -------------------------------------------------------------------
    def evaluate(self, model, tok, step: int, responses: list[str] | None = None) -> dict:
        c = self.cfg
        shared = self.shared_base if step == 0 and responses is None else None
        if shared is not None and shared.get("prompts", self.prompts) != self.prompts:
            shared = None  # another run's prompts: computed here
        if shared is not None:
            responses = list(shared["responses"])
        elif responses is None:
            responses = generate(model, tok, self.prompts, c.max_new_tokens, c.temperature, c.batch_size)
        if self.bases is None:  # step 0 (or first pass): the base policy's answers are the reference
            self.bases = list(responses)
        self.done_steps.add(step)
        if self._scores_async():
            bases, responses = list(self.bases), list(responses)
            self._pending.append((step, self.scorer.submit(lambda: self._score(step, responses, shared, bases))))
            return None
        return self._score(step, responses, shared, self.bases)

    def _scores_async(self) -> bool:
        a = self.alarm.cfg
        return (self.scorer is not None and self.gather is None and a.on_trigger != "stop" and not a.keep_best_gold
                and (self.trainer is None or self.trainer.accelerator.num_processes == 1))

    def _score(self, step: int, responses: list[str], shared: dict | None, bases: list[str]) -> dict:
        """Score one pass's answers with the gold and the training judge, write its record, samples, alarm."""
        c = self.cfg
        gold = (shared or {}).get("gold") or score(self.gold, self.prompts, responses, bases, c.both_orders)
        proxy = gold if self._proxy_is_gold() else score(self.proxy, self.prompts, responses, bases, c.both_orders)
        hits = [detect(r, b, c.length_ratio, c.min_extra_words) for r, b in zip(responses, bases)]
        rows = [{"step": step, "prompt": p, "response": r, "proxy": pv["value"], "gold": gv["value"],
                 "words": words(r), "patterns": [d for d in DETECTORS if h[d]]}
                for p, r, pv, gv, h in zip(self.prompts, responses, proxy, gold, hits)]
        n = len(rows)
        rec = {"step": step, "n": n, "proxy_mean": mean([x["value"] for x in proxy]),
               "gold_mean": mean([x["value"] for x in gold]),
               "proxy_invalid_rate": sum(not x["valid"] for x in proxy) / n,
               "gold_invalid_rate": sum(not x["valid"] for x in gold) / n,
               "proxy_failed": sum(x["failed"] for x in proxy), "gold_failed": sum(x["failed"] for x in gold),
               "mean_words": sum(x["words"] for x in rows) / n}
        if shared is not None:
            rec["step0_from"] = shared.get("from")
        rec.update({f"pattern/{d}": sum(h[d] for h in hits) / n for d in DETECTORS})
        rec["pattern/any"] = sum(any(h[d] for d in TEXT_DETECTORS) for h in hits) / n
        tpl = template_report(responses, [prompt_text(p) for p in self.prompts])
        rec.update(template_share=tpl["share"], template_flag=tpl["flag"])
        if c.pattern_judge.enabled:
            self._judge_patterns(rows, rec)
        self._write_samples(step, rows)
        self.run.log_metrics(rec, name="monitor.jsonl")
        self.records = [r for r in self.records if r["step"] != step] + [rec]
        event = self.alarm.update(step, rec["proxy_mean"], rec["gold_mean"], rec["template_flag"])
        if event is not None:
            self._flag(step, rows, event)
        rec["alarm"] = event is not None
        return rec

    def _proxy_is_gold(self) -> bool:
        """The training judge is the gold itself (a control run) and shares its verdict cache: its scores would be
        the gold's cache hits, so they are taken from the gold's without the second pass."""
        p, g = self.proxy, self.gold
        return (p.fingerprint == g.fingerprint and p.spec.cache and g.spec.cache and p.cache is not None
                and g.cache is not None and p.cache.path == g.cache.path)

    def _judge_patterns(self, rows: list[dict], rec: dict) -> None:
        """The judge-backed detector beside the regexes: per-sample flags and P(yes), rates in the record."""
        from judgerl.evaluation import pattern_judge as pj

        if self._pattern_judge is None:
            self._pattern_judge = pj.build(self.cfg.pattern_judge, self.gold)
        det = self._pattern_judge
        res = det.detect([judge_prompt(r["prompt"]) for r in rows], [r["response"] for r in rows])
        for row, r in zip(rows, res):
            row["judge_patterns"] = [d for d in det.patterns if r["flags"][d]]
            row["judge_p_yes"] = r["p_yes"]
        rec.update({f"pattern_judge/{k}": v for k, v in pj.rates(res, det.patterns).items()})
        rec["pattern_judge/seconds"] = sum(r["seconds"] for r in res)

    def _write_samples(self, step: int, rows: list[dict], folder: str = "samples", limit: int | None = None) -> Path:
        p = self.run.path / folder / f"step_{step:04d}.jsonl"
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            for r in rows[:limit]:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        return p

    def _flag(self, step: int, rows: list[dict], event: dict) -> None:
        def gap(r):  # samples the proxy likes much more than the gold judge first
            return (r["proxy"] if r["proxy"] is not None else 0.0) - (r["gold"] if r["gold"] is not None else 0.0)
        ranked = sorted(rows, key=gap, reverse=True)
        path = self._write_samples(step, ranked, "flagged", self.alarm.cfg.max_flagged)
        event["flagged_file"] = str(path.relative_to(self.run.path))
        self.run.write_json("alarm.json", self.alarm.state())

    def _save_best(self, model, tok, step: int, rec: dict) -> None:
        best = self.alarm.best_gold()
        if best is None or best[0] != step:
            return
        out = self.run.path / "best_gold"
        model.save_pretrained(out)
        tok.save_pretrained(out)
        self.run.write_json("best_gold/best_gold.json", {"step": step, "gold_mean": rec["gold_mean"]})

    def _pass(self, args, state, control, model, tok):
        """One monitor pass on the main process; the stop decision is broadcast to the others."""
        step, stop = state.global_step, False
        responses = None
        if step not in self.done_steps and self.gather is not None:  # sharded policy: every rank joins its forwards
            c = self.cfg
            with self.gather(model):
                responses = generate(model, tok, self.prompts, c.max_new_tokens, c.temperature, c.batch_size)
        if step not in self.done_steps and state.is_world_process_zero:
            rec = self.evaluate(model, tok, step, responses)
            if rec is not None:  # scored here (None: handed to the scorer, logged by `collect`)
                if self.alarm.cfg.keep_best_gold:
                    self._save_best(model, tok, step, rec)
                self._log(rec, control)
                stop = rec["alarm"] and self.alarm.cfg.on_trigger == "stop"
        if self.trainer is not None and self.trainer.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            stop = broadcast_object_list([stop], from_process=0)[0]
        self.done_steps.add(step)  # on every rank, so all ranks skip (or join) the same passes
        if stop:
            control.should_training_stop = True
        return control

    def _log(self, rec: dict, control, at_step: bool = False) -> None:
        logs = {f"monitor/{k}": v for k, v in rec.items() if k != "step" and isinstance(v, (int, float))}
        if at_step:  # scored asynchronously: logged at a later training step
            logs["monitor/at_step"] = rec["step"]
        if self.trainer is not None:
            from transformers import Trainer

            should_log = control.should_log  # CallbackHandler.on_log clears it; keep the step's own log
            Trainer.log(self.trainer, logs)  # base log: log_history + report_to, not GRPO's metric flush
            control.should_log = should_log

    def collect(self, control, wait: bool = False):
        """Log the passes the scorer has finished, in step order (all of them with `wait`); a scoring error is
        raised here, on the training thread."""
        while self._pending and (wait or self._pending[0][1].done()):
            _step, fut = self._pending.pop(0)
            self._log(fut.result(), control, at_step=True)
        return control

    # ---- TrainerCallback hooks --------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kw):
        if self.cfg.enabled and state.global_step == 0:
            return self._pass(args, state, control, model, processing_class)
        return control

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kw):
        self.collect(control)
        if self.cfg.enabled and state.global_step % self.cfg.every_steps == 0:
            return self._pass(args, state, control, model, processing_class)
        return control

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kw):
        if self.cfg.enabled:  # the last step, unless already monitored
            control = self._pass(args, state, control, model, processing_class)
        return self.collect(control, wait=True)  # the run's summary waits for its outstanding scores
