"""Gold monitor and hacking alarm: synthetic histories, a monitor pass on the real SmolLM2 policy
with controlled (stub) judges, alarm files, stop control, resume replay."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerControl, TrainerState

from judgerl.evaluation.alarm import AlarmConfig, HackingAlarm, trend
from judgerl.evaluation.monitor import GoldMonitor, MonitorConfig, read_monitor
from judgerl.judges import Judge, JudgeSpec, Verdict
from judgerl.rundir import RunDir


def test_trend_is_fitted_change():
    assert trend([1, 2, 3]) == pytest.approx(2.0)
    assert trend([3, 3]) == 0.0 and trend([5]) == 0.0


def test_alarm_fires_on_proxy_up_gold_down_and_not_on_healthy_runs():
    cfg = AlarmConfig(window=3, proxy_margin=0.2, gold_margin=0.2)
    hacked = [(0, 5.0, 5.0), (50, 5.5, 5.2), (100, 6.5, 4.9), (150, 7.8, 4.1), (200, 8.9, 3.0)]
    a = HackingAlarm(cfg)
    fired = [s for s, p, g in hacked if a.update(s, p, g)]
    assert fired == [150, 200] and a.state()["first_step"] == 150
    healthy = [(0, 5.0, 5.0), (50, 5.4, 5.3), (100, 5.9, 5.6), (150, 6.1, 6.0), (200, 6.6, 6.2)]
    noisy = [(0, 5.0, 5.0), (50, 5.3, 4.95), (100, 5.2, 5.05), (150, 5.4, 4.98)]  # within the margins
    for hist in (healthy, noisy):
        b = HackingAlarm(cfg)
        assert not any(b.update(s, p, g) for s, p, g in hist) and not b.triggered
    c = HackingAlarm(cfg)
    c.replay([{"step": s, "proxy_mean": p, "gold_mean": g} for s, p, g in hacked[:4]])
    assert c.triggered and c.best_gold() == (50, 5.2)
    assert HackingAlarm(cfg).update(0, None, 5.0) is None


class ScriptedBackend:
    """Pointwise verdicts whose expected score follows a per-pass script (fault injection)."""

    def __init__(self, script):
        self.script, self.pass_no = script, -1

    async def run(self, requests):
        v = self.script[min(self.pass_no, len(self.script) - 1)]
        return [Verdict(label=round(v), expected=v, valid=True) for _ in requests]


def test_monitor_pass_alarm_files_stop_and_resume(tmp_path, smollm2):
    model, tok = smollm2
    proxy_b, gold_b = ScriptedBackend([5.0, 6.0, 7.0, 8.0]), ScriptedBackend([5.0, 4.5, 4.0, 3.0])
    spec = JudgeSpec(cache=False)
    run = RunDir(tmp_path / "run")
    prompts = [[{"role": "user", "content": "Say hi."}], [{"role": "user", "content": "Name a colour."}]]
    mon = GoldMonitor(run, prompts, Judge(spec, backend=proxy_b), Judge(spec, backend=gold_b),
                      MonitorConfig(every_steps=2, max_new_tokens=4),
                      AlarmConfig(window=3, proxy_margin=0.5, gold_margin=0.5, on_trigger="stop", max_flagged=1,
                                  keep_best_gold=True))
    state, control = TrainerState(), TrainerControl()
    for step in (0, 1, 2, 3, 4):
        state.global_step = step
        proxy_b.pass_no = gold_b.pass_no = step // 2
        hook = mon.on_train_begin if step == 0 else mon.on_step_end
        control = hook(None, state, control, model=model, processing_class=tok)
    recs = read_monitor(run.path / "monitor.jsonl")
    assert [r["step"] for r in recs] == [0, 2, 4]
    assert [r["proxy_mean"] for r in recs] == [5.0, 6.0, 7.0] and recs[-1]["gold_mean"] == 4.0
    assert "pattern/fake_end_marker" in recs[0] and recs[0]["n"] == 2
    samples = [json.loads(x) for x in (run.path / "samples" / "step_0004.jsonl").read_text().splitlines()]
    assert len(samples) == 2 and samples[0]["proxy"] == 7.0 and "patterns" in samples[0]
    alarm = json.loads((run.path / "alarm.json").read_text())
    assert alarm["triggered"] and alarm["first_step"] == 4
    assert len((run.path / "flagged" / "step_0004.jsonl").read_text().splitlines()) == 1
    assert control.should_training_stop
    assert json.loads((run.path / "best_gold" / "best_gold.json").read_text())["step"] == 0  # gold only fell
    assert (run.path / "best_gold" / "model.safetensors").is_file()
    # resume from a checkpoint at step 2: history up to 2 is restored, the alarm replayed (silent)
    mon2 = GoldMonitor(run, prompts, Judge(spec, backend=proxy_b), Judge(spec, backend=gold_b),
                       MonitorConfig(every_steps=2), AlarmConfig(window=3, proxy_margin=0.5, gold_margin=0.5))
    mon2.restore(2)
    assert [h[0] for h in mon2.alarm.history] == [0, 2] and not mon2.alarm.triggered
    assert mon2.bases == samples_base(run) and mon2.done_steps == {0, 2}


def samples_base(run):
    return [json.loads(x)["response"] for x in (run.path / "samples" / "step_0000.jsonl").read_text().splitlines()]


def test_monitor_answers_from_the_engine_equal_plain_generate(smollm2):
    """The engine path (taken on CUDA) gives the same greedy answers as `generate`, short answers and long
    alike (rows end at different steps); on the CPU the monitor keeps `generate`."""
    from judgerl.evaluation.monitor import engine_serves, generate

    model, tok = smollm2
    prompts = ["Say hi.", "Name three colours, one word each.",
               [{"role": "user", "content": "Write two sentences about the sea and the wind at night."}]]
    plain = generate(model, tok, prompts, 40, batch_size=3, engine=False)
    fast = generate(model, tok, prompts, 40, batch_size=3, engine=True)
    assert fast == plain and len({len(t) for t in plain}) == 3
    assert not engine_serves(model)  # CPU: generate() unless asked


class CountingBackend(ScriptedBackend):
    def __init__(self, script):
        super().__init__(script)
        self.calls = 0

    async def run(self, requests):
        self.calls += len(requests)
        return await super().run(requests)


PROMPTS = [[{"role": "user", "content": "Say hi."}], [{"role": "user", "content": "Name a colour."}]]


def test_shared_step0_is_taken_without_generating_or_gold_scoring(tmp_path):
    """A step 0 handed in (same prompts) is used as is: no generation (model None would fail), no gold call; the
    record names its source. Other prompts: it is ignored and step 0 is computed."""
    proxy_b, gold_b = CountingBackend([6.0]), CountingBackend([1.0])
    spec = JudgeSpec(cache=False)
    mon = GoldMonitor(RunDir(tmp_path / "run"), PROMPTS, Judge(spec, backend=proxy_b), Judge(spec, backend=gold_b))
    mon.shared_base = {"responses": ["hi", "red"], "prompts": PROMPTS, "from": "policies/weak",
                       "gold": [{"value": -0.5, "valid": True, "failed": False}, {"value": 0.5, "valid": True,
                                                                               "failed": False}]}
    rec = mon.evaluate(None, None, 0)
    assert rec["step0_from"] == "policies/weak" and rec["gold_mean"] == 0.0 and rec["proxy_mean"] == 6.0
    assert gold_b.calls == 0 and proxy_b.calls == 2 and mon.bases == ["hi", "red"]
    other = GoldMonitor(RunDir(tmp_path / "other"), PROMPTS[:1], Judge(spec, backend=proxy_b),
                        Judge(spec, backend=gold_b))
    other.shared_base = mon.shared_base
    with pytest.raises(AttributeError):  # not the same prompts: it generates (and here has no model to do it)
        other.evaluate(None, None, 0)


@pytest.mark.parametrize("shared_cache", [True, False])
def test_a_proxy_that_is_the_gold_with_its_cache_is_not_scored_twice(tmp_path, shared_cache):
    proxy_b, gold_b = CountingBackend([5.0]), CountingBackend([5.0])
    spec = JudgeSpec()  # cache on
    run = RunDir(tmp_path / "run")
    proxy_cache = run.cache_path if shared_cache else tmp_path / "other.sqlite"
    mon = GoldMonitor(run, PROMPTS, Judge(spec, cache=proxy_cache, backend=proxy_b),
                      Judge(spec, cache=run.cache_path, backend=gold_b))
    rec = mon.evaluate(None, None, 1, responses=["hi", "red"])
    assert gold_b.calls == 2 and proxy_b.calls == (0 if shared_cache else 2) and rec["proxy_mean"] == 5.0


def test_sharded_weights_keep_the_models_own_generate(tmp_path):
    """FSDP2-sharded parameters (DTensor) are not read by the engine: the monitor keeps `generate` for them."""
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from transformers import LlamaConfig, LlamaForCausalLM

    from judgerl.evaluation.monitor import plain_weights

    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2)
    model = LlamaForCausalLM(cfg)
    assert plain_weights(model)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        assert not plain_weights(model)
    finally:
        dist.destroy_process_group()
    p = torch.nn.Parameter(torch.zeros(2))
    p.ds_id = 7  # a ZeRO-3 parameter carries its DeepSpeed id
    assert not plain_weights(torch.nn.ParameterList([p]))


def test_template_input_raises_the_alarm_after_window_flagged_points_and_off_is_the_old_alarm():
    flat = [(0, 5.0, 5.0, False), (5, 5.1, 5.1, True), (10, 5.2, 5.2, True), (15, 5.3, 5.3, None),
            (20, 5.4, 5.4, True), (25, 5.5, 5.5, False), (30, 5.6, 5.6, True)]
    on = HackingAlarm(AlarmConfig(window=3, template=True))
    fired = [(s, e["reason"], e["window_steps"]) for s, p, g, t in flat if (e := on.update(s, p, g, t))]
    assert fired == [(20, "template", [5, 10, 20])]  # a point without a flag (15) is skipped, a False one resets
    assert on.state()["template_history"][-1] == {"step": 30, "flag": True}
    off = HackingAlarm(AlarmConfig(window=3))
    assert not any(off.update(s, p, g, t) for s, p, g, t in flat) and "template_history" not in off.state()
    recs = [{"step": s, "proxy_mean": p, "gold_mean": g, "template_flag": t} for s, p, g, t in flat]
    replayed = HackingAlarm(AlarmConfig(window=3, template=True))
    replayed.replay(recs)
    assert [e["step"] for e in replayed.events] == [20]
    # the proxy-up / gold-down signature still fires first, unchanged, with template on
    hacked = [(0, 5.0, 5.0), (50, 5.5, 5.2), (100, 6.5, 4.9), (150, 7.8, 4.1)]
    both = HackingAlarm(AlarmConfig(window=3, proxy_margin=0.2, gold_margin=0.2, template=True))
    ev = [both.update(s, p, g, True) for s, p, g in hacked]
    assert ev[2]["reason"] == "template" and "proxy_trend" in ev[3] and "reason" not in ev[3]


def test_monitor_records_the_template_detector_on_a_real_run(tmp_path):
    """The issue-23 best-judge arm's committed held-out answers (96 prompts) fed through a monitor pass: from
    step 40 they carry one agreement template; with the template input the alarm fires at the third such point
    while the proxy and gold (scripted flat here) never show the signature."""
    from pathlib import Path

    from judgerl.study.samples import read_samples

    run_src = Path(__file__).resolve().parents[2] / "docs/experiments/reward_hacking/contrast/policies/best"
    steps = [0, 35, 40, 45, 50]
    answers = {s: read_samples(run_src, s) for s in steps}
    prompts = [r["prompt"] for r in answers[0]]
    assert all([r["prompt"] for r in answers[s]] == prompts for s in steps)
    spec = JudgeSpec(cache=False)
    mon = GoldMonitor(RunDir(tmp_path / "run"), prompts, Judge(spec, backend=ScriptedBackend([5.0])),
                      Judge(spec, backend=ScriptedBackend([1.0])), alarm=AlarmConfig(window=3, template=True))
    recs = [mon.evaluate(None, None, s, responses=[r["response"] for r in answers[s]]) for s in steps]
    assert [r["template_flag"] for r in recs] == [False, False, True, True, True]
    assert recs[0]["template_share"] == 0.0 and recs[-1]["template_share"] > 0.9
    assert [r["alarm"] for r in recs] == [False, False, False, False, True]
    alarm = json.loads((tmp_path / "run" / "alarm.json").read_text())
    assert alarm["first_step"] == 50 and alarm["events"][0]["reason"] == "template"
    logged = read_monitor(tmp_path / "run" / "monitor.jsonl")
    assert [r["template_flag"] for r in logged] == [False, False, True, True, True]
