"""model_loader: the cuDNN SDPA switch every CUDA model load applies (bench 3 --profile found its per-shape cost)."""

import pytest
import torch

from judgerl import model_loader


@pytest.fixture
def cudnn_sdp_restored():
    before = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(True)
    yield
    torch.backends.cuda.enable_cudnn_sdp(before)


def test_avoid_cudnn_attention_turns_it_off_on_cuda_only(monkeypatch, cudnn_sdp_restored):
    monkeypatch.delenv("JUDGERL_CUDNN_SDPA", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert model_loader.avoid_cudnn_attention() is False
    assert torch.backends.cuda.cudnn_sdp_enabled()          # a CPU process keeps torch's default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("JUDGERL_CUDNN_SDPA", "1")
    assert model_loader.avoid_cudnn_attention() is False
    assert torch.backends.cuda.cudnn_sdp_enabled()          # the opt-out keeps it
    monkeypatch.delenv("JUDGERL_CUDNN_SDPA")
    assert model_loader.avoid_cudnn_attention() is True
    assert not torch.backends.cuda.cudnn_sdp_enabled()


@pytest.mark.slow
def test_load_model_applies_it(monkeypatch, cudnn_sdp_restored):
    monkeypatch.delenv("JUDGERL_CUDNN_SDPA", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # weights stay on the CPU: device=None
    model, _ = model_loader.load_model("smollm2-135m-instruct", "causal", device=None, dtype="float32")
    assert next(model.parameters()).device.type == "cpu"
    assert not torch.backends.cuda.cudnn_sdp_enabled()
    assert model.config._attn_implementation == "sdpa"  # a GPU host: transformers' SDPA as loaded


@pytest.mark.slow
def test_cpu_loads_get_grouped_attention_unless_turned_off(smollm2_path, monkeypatch):
    """Without CUDA (and for device="cpu" anywhere) models load with grouped-query SDPA; the flag turns it off."""
    from judgerl.judges.attention import GQA_ATTENTION

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cpu", None):
        model, _ = model_loader.load_model(str(smollm2_path), "causal", device=device, dtype="float32")
        assert model.config._attn_implementation == GQA_ATTENTION
    reward_model, _ = model_loader.load_model(str(smollm2_path), "reward", device="cpu",
                                              dtype="float32")
    assert reward_model.config._attn_implementation == GQA_ATTENTION
    monkeypatch.setattr(model_loader, "grouped_cpu_attention", False)
    model, _ = model_loader.load_model(str(smollm2_path), "causal", device="cpu", dtype="float32")
    assert model.config._attn_implementation == "sdpa"


def test_grouped_attention_trains_as_sdpa_does():
    """A policy on the CPU trains through grouped-query SDPA: on a left-padded batch its loss and every gradient are
    SDPA's up to float rounding."""
    from tiny_models import tiny_gqa_model

    from judgerl.judges.attention import use_grouped_attention

    ids = torch.randint(0, 101, (3, 11), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    mask[2, :2] = 0
    grads = []
    for grouped in (False, True):
        model = tiny_gqa_model(7).train()
        if grouped:
            assert use_grouped_attention(model)
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = (logits.log_softmax(-1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0] * mask[:, 1:]).sum()
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (l0, g0), (l1, g1) = grads
    assert torch.allclose(l0, l1, rtol=1e-5)
    assert all(g0[n].abs().sum() > 0 for n in ("model.layers.0.self_attn.k_proj.weight",
                                                 "model.layers.1.self_attn.q_proj.weight"))
    for n in g0:
        assert torch.allclose(g0[n], g1[n], atol=1e-5, rtol=1e-4), n


TRIM_SCRIPT = """
import os, threading, torch
from judgerl import model_loader

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

pin = []

def work():
    blocks = [torch.ones(25_000) for _ in range(4000)]  # 400 MB in 100 kB tensors
    pin.append(torch.ones(10))  # allocated above them: the arena's top cannot shrink on its own
    del blocks

base = rss_mb()
t = threading.Thread(target=work)
t.start()
t.join()
before = rss_mb()
trimmed = model_loader.trim_heap()
print(base, before, rss_mb(), trimmed)
"""


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_trim_heap_gives_a_threads_freed_tensors_back():
    """Tensors freed on another thread (as a judge's activations on its model thread) stay in the RSS until the
    allocator is trimmed. In a fresh process: in the test process the allocator's state depends on every earlier
    test (a thread may get an arena whose pages were already resident, or the main one, which trims itself)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", TRIM_SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    base, before, after, trimmed = out.stdout.split()
    assert float(before) - float(base) > 200  # freed on the thread, still resident
    assert trimmed == "True"
    assert float(before) - float(after) > 200


def test_release_unused_keeps_the_models_another_stage_still_holds():
    """The quickstart's lanes: a stage's clean-up forgets the shared models nobody holds, while one the other lane
    is using stays shared (a later caller gets the same weights, not a second copy)."""
    import gc

    held = torch.nn.Linear(4, 4)
    model_loader.clear()
    model_loader.register("held", "causal", "cpu", "float32", held, "tok-a")
    model_loader.register("dropped", "causal", "cpu", "float32", torch.nn.Linear(4, 4), "tok-b")
    model_loader.register("plain", "causal", "cpu", "float32", object(), None)  # not weak-referenceable: forgotten
    gc.disable()  # the release must collect on its own
    try:
        model_loader.release_unused()
    finally:
        gc.enable()
    assert list(model_loader._REGISTRY.values()) == [(held, "tok-a")]
    assert model_loader.shared_model("held", "causal", "cpu", "float32")[0] is held
    model_loader.clear()


def test_share_frozen_lends_a_same_checkpoint_models_weights_to_the_frozen_blocks():
    """A policy whose lower blocks are frozen reads a judge's tensors for them when both come from one checkpoint:
    same outputs, the trained blocks stay the policy's own, the judge does not change when the policy trains;
    models that differ are left alone."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from judgerl.training.policy_grpo import freeze_below

    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=4,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    torch.manual_seed(0)
    judge = LlamaForCausalLM(cfg).eval()
    policy = LlamaForCausalLM(cfg)
    policy.load_state_dict(judge.state_dict())
    freeze_below(policy, 1)
    ids = torch.randint(0, 64, (2, 5))
    before = policy(ids).logits.detach()
    judged = judge(ids).logits.detach()
    n = model_loader.share_frozen(policy, judge)
    frozen = [n for n, p in policy.named_parameters() if not p.requires_grad]
    assert n == sum(p.numel() * 4 for p in policy.parameters() if not p.requires_grad) > 0
    theirs = dict(judge.named_parameters())
    assert all(dict(policy.named_parameters())[k].data_ptr() == theirs[k].data_ptr() for k in frozen)
    assert all(p.data_ptr() != theirs[k].data_ptr() for k, p in policy.named_parameters() if p.requires_grad)
    assert torch.equal(policy(ids).logits, before)
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=1.0)
    policy(ids, labels=ids).loss.backward()
    opt.step()
    assert not torch.equal(policy(ids).logits, before) and torch.equal(judge(ids).logits, judged)
    other = LlamaForCausalLM(cfg)  # another checkpoint: its norms differ, nothing is shared
    with torch.no_grad():
        other.model.norm.weight.mul_(2)
    assert model_loader.share_frozen(LlamaForCausalLM(cfg), other) == 0


@pytest.mark.slow
def test_policies_trained_at_once_hold_their_frozen_blocks_once(smollm2_path):
    """Two real SmolLM2 policies with the same frozen layout: the first lends its frozen tensors to the second (0.43
    GB of 0.54), the second's outputs do not change, training one leaves the other alone; once the donor is freed
    the next policy becomes the donor; another layout shares nothing."""
    from judgerl.training.policy_grpo import freeze_below

    key = (str(smollm2_path), "torch.float32", 6)
    first, _ = model_loader.load_model(str(smollm2_path), "causal", device="cpu", dtype="float32")
    second, _ = model_loader.load_model(str(smollm2_path), "causal", device="cpu", dtype="float32")
    freeze_below(first, 6), freeze_below(second, 6)
    ids = torch.randint(100, 40000, (2, 12))
    with torch.no_grad():
        before = second(ids).logits
    assert model_loader.share_frozen_with_peers(first, key) == 0  # the donor
    n = model_loader.share_frozen_with_peers(second, key)
    assert n == sum(p.numel() * 4 for p in second.parameters() if not p.requires_grad) > 0.4e9
    mine, theirs = dict(second.named_parameters()), dict(first.named_parameters())
    assert all(p.data_ptr() == theirs[k].data_ptr() for k, p in mine.items() if not p.requires_grad)
    assert all(p.data_ptr() != theirs[k].data_ptr() for k, p in mine.items() if p.requires_grad)
    with torch.no_grad():
        assert torch.equal(second(ids).logits, before)
        for p in first.parameters():
            if p.requires_grad:
                p.add_(0.01)  # the donor trains
        assert torch.equal(second(ids).logits, before)
    del first
    import gc

    gc.collect()
    third, _ = model_loader.load_model(str(smollm2_path), "causal", device="cpu", dtype="float32")
    freeze_below(third, 6)
    assert model_loader.share_frozen_with_peers(third, key) == 0  # the donor was freed: the third lends from now on
    assert model_loader.share_frozen_with_peers(second, (str(smollm2_path), "torch.float32", 8)) == 0
    model_loader._FROZEN_DONORS.clear()
