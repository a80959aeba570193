"""The gold monitor scored off the training thread (evaluation/monitor_async.py): the same records, samples and
alarm as the synchronous pass on the same answers (real SmolLM2 prompted judge, real embedded gold RM), the judges'
model work on the executor handed in, errors raised on the training thread, and real GRPO runs (train()) whose
monitor records are the synchronous run's."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from transformers import TrainerControl

from judgerl.evaluation.alarm import AlarmConfig
from judgerl.evaluation.monitor import GoldMonitor, MonitorConfig, read_monitor
from judgerl.evaluation.monitor_async import MonitorScorer
from judgerl.judges import Judge, JudgeSpec
from judgerl.rundir import RunDir

PROMPTS = [[{"role": "user", "content": "Name a colour."}], [{"role": "user", "content": "Say hi politely."}],
           [{"role": "user", "content": "What is 2 + 2?"}]]
ANSWERS = {0: ["Blue.", "Hello, nice to meet you.", "2 + 2 = 4."],
           3: ["Blue is a colour of the sky.", "Hi!", "It is 4."],
           6: ["As an AI, I think red. As an AI, I think red.", "As an AI, hello. As an AI, hello.",
               "As an AI, 4. As an AI, 4."]}


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self):
        super().__init__(max_workers=1, thread_name_prefix="test-side-model")
        self.calls = 0

    def submit(self, fn, /, *args, **kw):
        self.calls += 1
        return super().submit(fn, *args, **kw)


def monitor(tmp_path, name, smollm2_path, gold_model, scorer=None) -> GoldMonitor:
    run = RunDir(tmp_path / name)
    proxy = JudgeSpec(name="smol", backend="hf", model=str(smollm2_path), format="pointwise", mode="direct",
                      batch_size=4, cache=False)
    mon = GoldMonitor(run, PROMPTS, Judge(proxy, cache=run.cache_path), Judge(gold_model, cache=run.cache_path),
                      MonitorConfig(every_steps=3, max_new_tokens=8),
                      AlarmConfig(window=3, proxy_margin=0.0, gold_margin=0.0, max_flagged=2))
    mon.scorer = scorer
    return mon


def files(run: RunDir) -> dict:
    out = {}
    for p in sorted(run.path.rglob("*.json*")):
        rel = str(p.relative_to(run.path))
        if rel.endswith(".jsonl"):
            out[rel] = [{k: v for k, v in json.loads(x).items() if k != "time"} for x in p.read_text().splitlines()]
        elif rel == "alarm.json":
            out[rel] = json.loads(p.read_text())
    return out


def first_difference(a, b, path="") -> str | None:
    """Where `a` and `b` first differ beyond float noise (None: equal up to it): 1e-4 relative, since the scorer
    thread and the training thread run torch with different thread counts, so float32 sums come out in another
    order (~1e-5 on an Intel host without bf16)."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return next((d for k in a if (d := first_difference(a[k], b[k], f"{path}/{k}"))), None)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := first_difference(x, y, f"{path}[{i}]"))), None)
    if isinstance(a, float) and isinstance(b, float):
        equal = abs(a - b) <= 1e-4 * max(1.0, abs(a))
    else:
        equal = not isinstance(a, (dict, list)) and a == b
    return None if equal else f"{path}: {str(a)[:120]!r} vs {str(b)[:120]!r}"


def same(a, b) -> bool:
    """Equal up to float noise (first_difference)."""
    return first_difference(a, b) is None


@pytest.mark.slow
def test_async_scoring_writes_the_synchronous_records_on_the_same_answers(tmp_path, smollm2_path):
    from judgerl.study.embedded import embedded_gold_spec

    gold = embedded_gold_spec("cpu", 4)
    sync = monitor(tmp_path, "sync", smollm2_path, gold)
    recs = [sync.evaluate(None, None, s, responses=list(a)) for s, a in ANSWERS.items()]
    assert [r["step"] for r in recs] == [0, 3, 6]

    side = CountingExecutor()
    scorer = MonitorScorer(side, threads=1)
    asyn = monitor(tmp_path, "async", smollm2_path, gold, scorer)
    main = threading.get_ident()
    seen = []
    real = asyn._score
    asyn._score = lambda *a: (seen.append(threading.get_ident()), real(*a))[1]
    try:
        assert all(asyn.evaluate(None, None, s, responses=list(a)) is None for s, a in ANSWERS.items())
        asyn.collect(TrainerControl(), wait=True)
    finally:
        scorer.close()
        side.shutdown()
    assert seen and main not in seen  # scored on the scorer's thread
    assert side.calls >= 2 * len(ANSWERS)  # the proxy's and the gold's model work on the executor handed in
    assert not asyn._pending and not scorer.busy()
    a, b = files(sync.run), files(asyn.run)
    assert set(a) == set(b) >= {"monitor.jsonl", "samples/step_0000.jsonl", "samples/step_0006.jsonl"}
    assert same(a, b), first_difference(a, b)
    assert same(sync.records, asyn.records) and [r["step"] for r in asyn.records] == [0, 3, 6]
    assert same(sync.alarm.state(), asyn.alarm.state())
    assert all(r["gold"] is not None and r["proxy"] is not None for r in b["samples/step_0006.jsonl"])


def test_a_scoring_error_is_raised_on_the_training_thread_and_later_passes_still_land(tmp_path):
    from judgerl.judges import Verdict

    class Backend:
        def __init__(self, fail_on=None):
            self.calls, self.fail_on = 0, fail_on

        async def run(self, requests):
            self.calls += 1
            if self.calls == self.fail_on:
                raise RuntimeError("judge fell over")
            return [Verdict(label=5, expected=5.0, valid=True) for _ in requests]

    spec = JudgeSpec(cache=False)
    scorer = MonitorScorer(None, threads=None)
    mon = GoldMonitor(RunDir(tmp_path / "run"), PROMPTS[:1], Judge(spec, backend=Backend()),
                      Judge(spec, backend=Backend(fail_on=2)), MonitorConfig())
    mon.scorer = scorer
    try:
        assert mon.evaluate(None, None, 0, responses=["a"]) is None
        assert mon.evaluate(None, None, 1, responses=["b"]) is None  # its gold call fails
        assert mon.evaluate(None, None, 2, responses=["c"]) is None
        mon._pending[-1][1].result(timeout=30)
        with pytest.raises(RuntimeError, match="judge fell over"):
            mon.collect(TrainerControl(), wait=True)
    finally:
        scorer.close()
    assert [r["step"] for r in read_monitor(mon.run.path / "monitor.jsonl")] == [0, 2]


@pytest.mark.slow
def test_grpo_runs_with_and_without_the_scorer_write_the_same_monitor(tmp_path, shared_data, smollm2_path, smollm2):
    """Real train() steps: the policy changes between monitor points; the asynchronous run's monitor records,
    samples and summary are the synchronous run's, and its trainer log carries the records at a later step."""
    from judgerl.training.policy_config import PolicyConfig
    from judgerl.training.policy_grpo import train_policy
    judge = {"name": "smol", "backend": "hf", "model": "smollm2-135m-instruct", "format": "pointwise",
             "mode": "direct", "cache": False}
    out = {}
    for name in ("sync", "async"):
        cfg = PolicyConfig.model_validate({
            "name": "t", "run_dir": str(tmp_path / name / "run"), "policy": str(smollm2_path), "judge": judge,
            "gold": dict(judge, name="gold"),
            "grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "max_steps": 3,
                     "max_completion_length": 8, "learning_rate": 5e-4, "save_steps": 100, "save_final": False,
                     "logging_steps": 1},
            "data": {"sources": ["pool:self-instruct"], "data_root": str(shared_data), "max_prompt_chars": 120,
                     "max_prompts": 6},
            "monitor": {"every_steps": 1, "n_prompts": 2, "max_new_tokens": 8}, "alarm": {"window": 2}})
        scorer = MonitorScorer(ThreadPoolExecutor(max_workers=1), threads=None) if name == "async" else None
        try:
            s = train_policy(cfg, models={"judge": smollm2, "gold": smollm2}, monitor_scorer=scorer)
        finally:
            if scorer is not None:
                scorer.close()
        run = RunDir(tmp_path / name / "run")
        logged = [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]
        out[name] = (s, files(run), logged)
    (s0, f0, m0), (s1, f1, m1) = out["sync"], out["async"]
    f0.pop("metrics.jsonl"), f1.pop("metrics.jsonl")  # the trainer's log: the async run logs its records later
    assert [r["step"] for r in f0["monitor.jsonl"]] == [0, 1, 2, 3]
    assert same(f0, f1), first_difference(f0, f1)
    assert same({k: v for k, v in s0["monitor"].items() if k != "time"},
                {k: v for k, v in s1["monitor"].items() if k != "time"})
    at = sorted(r["monitor/at_step"] for r in m1 if "monitor/at_step" in r)
    assert at == [0, 1, 2, 3] and not any("monitor/at_step" in r for r in m0)
