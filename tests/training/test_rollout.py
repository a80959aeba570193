"""Fast policy rollouts (training/rollout.py) on the real SmolLM2 against TRL's own generate path:
greedy tokens equal, sampled log-probabilities equal the policy's forward pass, in-place parameter
changes show in the next rollout, and a real train() with the engine trains on judge rewards."""

from __future__ import annotations

import pytest
import torch

from judgerl.training.rollout import FastRollout, unsupported

PROMPTS = ["Name three colours of the rainbow.", "Write one sentence about the sea.",
           "What is the capital of Italy?"]
LOGPROB_TOL = 1e-4  # fp32 on CPU: static cache + grouped SDPA vs TRL's padded forward, max |Δ log p|


def _trainer(path, tmp_path, device: str = "cpu", **args):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from judgerl.model_loader import load_model

    policy, tok = load_model(str(path), "causal", device=device, dtype="float32")
    kw = dict(output_dir=str(tmp_path / "out"), num_generations=2, per_device_train_batch_size=4, max_steps=1,
              max_completion_length=24, temperature=0.7, report_to=[], bf16=False, use_cpu=device == "cpu",
              logging_steps=1, save_strategy="no")
    kw.update(args)

    def unused_reward(prompts, completions, **kw):  # these tests never reach the reward step
        raise AssertionError("not called")

    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in PROMPTS])
    return GRPOTrainer(model=policy, reward_funcs=[unused_reward], args=GRPOConfig(**kw), train_dataset=ds,
                       processing_class=tok, rollout_func=FastRollout(0))


def _batch(n_prompts: int = 2, g: int = 2) -> list:
    return [[{"role": "user", "content": p}] for p in PROMPTS[:n_prompts] for _ in range(g)]


def _trl_greedy(trainer, prompts):
    """TRL's own rollout path (_tokenize_prompts + _generate_single_turn) with greedy decoding."""
    prompt_ids, _, _ = trainer._tokenize_prompts(prompts)
    gc, gk = trainer.generation_config, dict(trainer.generation_kwargs)
    trainer.generation_config = gc.__class__(**{**gc.to_dict(), "do_sample": False, "temperature": None,
                                                "top_p": None, "top_k": None})
    trainer.generation_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    try:
        ids, _ = trainer._generate_single_turn(prompt_ids, None, {}, trainer.num_generations)
    finally:
        trainer.generation_config, trainer.generation_kwargs = gc, gk
    return prompt_ids, ids


def _greedy(trainer, prompts) -> dict:
    t = trainer.temperature
    trainer.temperature = 0.0
    try:
        return trainer.rollout_func(prompts, trainer)
    finally:
        trainer.temperature = t


@pytest.mark.slow
def test_greedy_rollouts_equal_trl_generate(smollm2_path, tmp_path):
    trainer = _trainer(smollm2_path, tmp_path)
    assert unsupported(trainer) is None
    prompts = _batch(3, 2)
    out = _greedy(trainer, prompts)
    prompt_ids, ref = _trl_greedy(trainer, prompts)
    assert out["prompt_ids"] == [list(p) for p in prompt_ids]
    assert out["completion_ids"] == ref  # token for token, EOS kept, nothing after it
    assert any(c[-1] in trainer.eos_token_ids for c in ref) or all(len(c) == 24 for c in ref)
    h = trainer.rollout_func.history[-1]
    assert h["rows"] == 6 and h["prefills"] == 3  # each prompt prefilled once for its G = 2 rollouts


@pytest.mark.slow
def test_sampled_logprobs_match_the_policy_forward(smollm2_path, tmp_path):
    trainer = _trainer(smollm2_path, tmp_path, top_k=50, top_p=0.9)
    prompts = _batch(2, 2)
    out = trainer.rollout_func(prompts, trainer)
    comps = out["completion_ids"]
    assert len(comps) == 4 and all(len(c) == len(lp) for c, lp in zip(comps, out["logprobs"]))
    # TRL's own per-token log-probabilities of the same tokens (what its loss uses)
    p_ids = [torch.tensor(p) for p in out["prompt_ids"]]
    c_ids = [torch.tensor(c) for c in comps]
    width_p, width_c = max(map(len, p_ids)), max(map(len, c_ids))
    pad = trainer._tokenizer.pad_token_id
    ids = torch.full((4, width_p + width_c), pad)
    mask = torch.zeros_like(ids)
    for i, (p, c) in enumerate(zip(p_ids, c_ids)):
        ids[i, width_p - len(p):width_p], mask[i, width_p - len(p):width_p] = p, 1
        ids[i, width_p:width_p + len(c)], mask[i, width_p:width_p + len(c)] = c, 1
    with torch.no_grad():
        ref, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, width_c, batch_size=4)
    for i, lp in enumerate(out["logprobs"]):
        assert (ref[i, :len(lp)] - torch.tensor(lp)).abs().max() < LOGPROB_TOL
    # the sampled tokens lie in the top-k / top-p set: their probabilities are not tiny
    assert min(x for lp in out["logprobs"] for x in lp) > -12
    # a private generator: the global RNG is untouched, and the same (step, call) gives the same draw
    state = torch.random.get_rng_state()
    again = FastRollout(0)(prompts, trainer)
    assert torch.equal(state, torch.random.get_rng_state()) and again["completion_ids"] == comps
    # top-k = 1 sampling is greedy decoding
    trainer.top_k = 1
    assert trainer.rollout_func(prompts, trainer)["completion_ids"] == _trl_greedy(trainer, prompts)[1]


def _in_place_change(device: str, smollm2_path, tmp_path):
    trainer = _trainer(smollm2_path, tmp_path, device=device)
    prompts = _batch(2, 2)
    before = _greedy(trainer, prompts)["completion_ids"]
    assert before == _trl_greedy(trainer, prompts)[1]
    model = trainer.accelerator.unwrap_model(trainer.model)
    with torch.no_grad():  # an optimizer-like in-place update: same storage, new values
        for layer in model.model.layers:
            layer.mlp.down_proj.weight.mul_(1.5)
    after = _greedy(trainer, prompts)["completion_ids"]
    assert after != before  # the new weights are used ...
    assert after == _trl_greedy(trainer, prompts)[1]  # ... exactly as TRL's generate uses them
    return trainer


@pytest.mark.slow
def test_parameter_change_shows_in_the_next_rollout(smollm2_path, tmp_path):
    _in_place_change("cpu", smollm2_path, tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_replays_read_updated_weights(smollm2_path, tmp_path):
    from judgerl.judges.static_decode import decoder_for

    trainer = _in_place_change("cuda", smollm2_path, tmp_path)
    eng = decoder_for(trainer.accelerator.unwrap_model(trainer.model))
    assert eng.captures == 1  # one graph, replayed before and after the update (addresses unchanged)


@pytest.mark.slow
def test_train_with_engine_rollouts_uses_judge_rewards(tmp_path, shared_data, smollm2_path, smollm2):
    """A real train(): engine rollouts, rewards from the real SmolLM2 judge, parameters change."""
    from judgerl.judges import Judge, JudgeRequest, JudgeSpec
    from judgerl.judges.values import completion_text, judge_prompt, point_value
    from judgerl.training.policy_config import PolicyConfig
    from judgerl.training.policy_grpo import build_trainer, grpo_args, validate
    from judgerl.training.rewards import make_reward

    from datasets import Dataset

    from judgerl.model_loader import load_model

    judge_spec = {"name": "smol", "backend": "hf", "model": "smollm2-135m-instruct", "format": "pointwise",
                  "mode": "direct", "cache": False}
    cfg = PolicyConfig.model_validate({
        "name": "t", "run_dir": str(tmp_path / "run"), "policy": str(smollm2_path), "judge": judge_spec,
        "grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "max_steps": 2, "max_completion_length": 12,
                 "learning_rate": 1e-5, "save_final": False, "rollout": "engine"},
        "data": {"sources": ["pool:self-instruct"], "data_root": str(shared_data), "max_prompt_chars": 120,
                 "max_prompts": 4},
        "monitor": {"enabled": False}})
    v = validate(cfg)
    judge = Judge(JudgeSpec.model_validate(judge_spec), model=smollm2[0], tokenizer=smollm2[1])
    reward = make_reward(judge, cfg.reward, 2)
    seen: list = []

    async def recorded(prompts, completions, **kw):  # the real judge reward, its inputs and outputs kept
        out = await reward(prompts, completions, **kw)
        seen.append((prompts, completions, out))
        return out

    recorded.__name__ = "judge_expected"
    policy, tok = load_model(str(smollm2_path), "causal", device="cpu", dtype="float32")
    start = {k: t.clone() for k, t in policy.state_dict().items()}
    train = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in v["prompts"]])
    trainer = build_trainer(cfg, policy, tok, [recorded], grpo_args(cfg, tmp_path / "ck", v["layout"]), train, [])
    assert trainer.judgerl_rollout == "engine"
    trainer.train()
    assert len(trainer.rollout_func.history) == 2 and len(seen) == 2
    assert any(not start[k].equal(t) for k, t in policy.state_dict().items())  # the policy trained
    prompts, completions, rewards = seen[-1]
    again = judge.judge([JudgeRequest(prompt=judge_prompt(p), responses=[completion_text(c)])
                         for p, c in zip(prompts, completions)])
    assert rewards == pytest.approx([point_value(x) for x in again], abs=1e-6)  # the judge's expected scores
    assert all(0 <= r <= 9 for r in rewards)


@pytest.mark.slow
def test_auto_falls_back_to_trl_where_the_engine_cannot_serve(tmp_path, shared_data, smollm2_path):
    from datasets import Dataset

    from judgerl import JudgerlError
    from judgerl.model_loader import load_model
    from judgerl.training.policy_config import PolicyConfig
    from judgerl.training.policy_grpo import build_trainer, grpo_args, validate

    def cfg(rollout: str) -> PolicyConfig:
        return PolicyConfig.model_validate({
            "run_dir": str(tmp_path / rollout), "policy": str(smollm2_path), "judge": "smollm2-135m-instruct",
            "grpo": {"num_generations": 2, "per_device_train_batch_size": 2, "max_steps": 1, "rollout": rollout,
                     "trl": {"min_p": 0.1}},  # min_p: not implemented by the engine
            "data": {"sources": ["pool:self-instruct"], "data_root": str(shared_data), "max_prompts": 2},
            "monitor": {"enabled": False}})

    policy, tok = load_model(str(smollm2_path), "causal", device="cpu", dtype="float32")
    train = Dataset.from_list([{"prompt": [{"role": "user", "content": "Hi"}]}] * 2)
    auto = cfg("auto")
    args = grpo_args(auto, tmp_path / "ck", validate(auto)["layout"])
    trainer = build_trainer(auto, policy, tok, [lambda prompts, completions, **kw: [0.0] * len(prompts)], args, train, [])
    assert trainer.judgerl_rollout == "trl" and trainer.rollout_func is None
    with pytest.raises(JudgerlError, match="engine cannot serve this run: min_p"):
        build_trainer(cfg("engine"), policy, tok, [lambda prompts, completions, **kw: [0.0] * len(prompts)], args,
                      train, [])


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graphs_survive_eviction_and_recapture(smollm2_path):
    """More shapes than the engine keeps, and a sampling change on a kept shape: every capture after an
    eviction or a re-capture still works (a shared graph memory pool once failed here with an allocator assert)."""
    from judgerl.judges import static_decode
    from judgerl.model_loader import load_model

    model, _ = load_model(str(smollm2_path), "causal", device="cuda", dtype="float32")
    eng = static_decode.decoder_for(model)
    g = torch.Generator(device="cuda").manual_seed(0)
    ids = torch.randint(10, 1000, (6, 12), device="cuda", generator=g)
    shapes = [(2, 0.0), (3, 0.0), (4, 0.0), (5, 0.0), (2, 0.7), (2, 0.0), (6, 0.7)]
    for rows, temp in shapes:
        out = eng.generate(ids[:rows], torch.ones_like(ids[:rows]), max_new_tokens=5, temperature=temp,
                           top_k=20 if temp else 0, generator=g)
        assert out.tokens.shape == (rows, 5)
    assert len(eng.entries) <= static_decode.MAX_ENTRIES
    assert eng.captures == len(shapes)  # each shape above needed a new or re-captured graph
