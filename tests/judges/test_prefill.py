"""Length-bucketed prefill of the graph engine (judges/prefill.py) against its one-forward prefill.

CPU: the plan is the cheapest cut into groups of consecutive lengths (brute force); on tiny random models (fused and
unfused engines, eager) bucketed prefill gives the one-forward prefill's tokens, log-probabilities and KV, with rows
shared by several outputs, padding rows and a shared prefix; a batch of uniform lengths takes the one-forward path
itself. Real SmolLM2 on CPU (the engine run eagerly, the path CUDA runs): a reasoning judge on ragged prompts gives the
same greedy thinking and scores within 1e-3 with buckets on, and prefills fewer tokens. GPU (skipped on CPU): the same
judge through captured graphs, bucketed vs one forward vs plain generate.
"""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from test_static_decode import CUDA, _smollm2_cuda, engine, tiny

from judgerl.judges import JudgeRequest, JudgeSpec, phases
from judgerl.judges import prefill as prefill_mod
from judgerl.judges.prefill import plan


def cost(lengths, groups, min_saving):
    return sum(len(g) * max(lengths[i] for i in g) for g in groups) + min_saving * (len(groups) - 1)


def brute_force(lengths, buckets, min_saving):
    srt = sorted(lengths)
    n, best = len(srt), None
    for k in range(buckets):
        for cut in itertools.combinations(range(1, n), k):
            edges = [0, *cut, n]
            c = sum((b - a) * srt[b - 1] for a, b in zip(edges, edges[1:])) + min_saving * k
            best = c if best is None else min(best, c)
    return best


def test_plan_is_the_cheapest_cut_into_groups_of_consecutive_lengths():
    rng = random.Random(0)
    for trial in range(60):
        lengths = [rng.randint(1, 60) for _ in range(rng.randint(1, 9))]
        buckets, saving = rng.randint(1, 4), rng.choice([0, 10, 200])
        groups = plan(lengths, buckets, saving)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        assert 1 <= len(groups) <= buckets
        flat = [lengths[i] for g in groups for i in g]
        assert flat == sorted(flat)  # consecutive in length
        assert cost(lengths, groups, saving) == brute_force(lengths, buckets, saving), (lengths, buckets, saving)
    assert plan([5, 100, 3, 50, 52, 99, 4], 3, 0) == [[2, 6, 0], [3, 4], [5, 1]]
    assert len(plan([40] * 7, 4, 0)) == 1 and len(plan([3, 90], 1, 0)) == 1
    assert len(plan([3, 90], 2, 100)) == 1  # saves 87 padded tokens: not worth a forward costed at 100


def ragged(lengths, vocab, seed=0, head=0):
    """Left-padded rows of the given lengths (a shared head of `head` tokens first in each row's content)."""
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(5, vocab, (len(lengths), width), generator=g)
    if head:
        ids[:, :head] = torch.randint(5, vocab, (1, head), generator=g)
    mask = torch.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, width - n:] = ids[i, :n].clone()
        mask[i, width - n:] = 1
    return ids, mask


LENGTHS = [3, 41, 6, 37, 12, 60, 57, 4, 22]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_bucketed_prefill_gives_the_one_forward_tokens_logprobs_and_kv(fused, monkeypatch):
    """9 ragged rows, output rows sharing input rows (rows=...) and padded to 12 (pad_rows_to), greedy and sampled:
    the tokens of the one-forward prefill (and of `generate`, greedy), log-probs and every real KV column within
    1e-5 (prompt columns and the tokens fed up to each row's EOS); three forwards ran, over fewer tokens."""
    monkeypatch.setattr(prefill_mod, "MIN_SAVING", 0)
    model = tiny("llama", vocab=40)
    ids, mask = ragged(LENGTHS, 40)
    dec = engine(model, fused, monkeypatch)
    rows = torch.tensor([0, 1, 1, 2, 3, 4, 5, 5, 6, 7, 8])
    for kw in (dict(), dict(temperature=0.9, top_k=12, top_p=0.9)):
        kw.update(max_new_tokens=30, eos_token_ids=[7], pad_token_id=0, rows=rows, pad_rows_to=12, keep_cache=True)
        one = dec.generate(ids, mask, generator=torch.Generator().manual_seed(3), **kw)
        with phases.recording() as rec:
            got = dec.generate(ids, mask, generator=torch.Generator().manual_seed(3), prefill_buckets=3, **kw)
        assert rec.counts["prefill_forwards"] == 3
        assert rec.counts["prompt_tokens"] <= rec.counts["prefill_tokens"] < rec.counts["prefill_tokens_one_forward"]
        assert torch.equal(got.tokens, one.tokens) and got.lengths == one.lengths
        assert (got.logprobs - one.logprobs).abs().max() < 1e-5
        fed = one.cache.get_seq_length() - ids.shape[1]
        real = torch.cat([mask.bool().index_select(0, rows), torch.zeros(len(rows), fed, dtype=torch.bool)], 1)
        for i, n in enumerate(one.lengths):  # the prompt's columns, then the tokens fed up to the row's EOS
            real[i, ids.shape[1]:ids.shape[1] + min(n - 1, fed)] = True
        for a, b in zip(got.cache.layers, one.cache.layers):
            for x, y in ((a.keys, b.keys), (a.values, b.values)):
                assert (x - y).abs().amax((1, 3))[real].max() < 1e-5
    ref = model.generate(input_ids=ids.index_select(0, rows), attention_mask=mask.index_select(0, rows),
                         max_new_tokens=30, do_sample=False, pad_token_id=0, eos_token_id=[7])[:, ids.shape[1]:]
    greedy = dec.generate(ids, mask, max_new_tokens=30, eos_token_ids=[7], pad_token_id=0, rows=rows,
                          prefill_buckets=3)
    assert torch.equal(greedy.tokens, ref)


def test_bucketed_prefill_with_a_shared_prefix_and_the_one_forward_path_for_uniform_lengths(monkeypatch):
    """generate_ids with prefix reuse (the judge's layout [prefix][pad][suffix]): buckets give plain generate's
    greedy tokens; a batch of equal lengths runs one forward and is bit for bit the one-forward call."""
    from judgerl.judges.decode import generate_ids

    monkeypatch.setattr(prefill_mod, "MIN_SAVING", 0)
    model = tiny("qwen3", vocab=40, head_dim=32)
    ids, mask = ragged([v + 70 for v in LENGTHS], 40, seed=1, head=70)
    kw = dict(max_new_tokens=24, pad_token_id=0, eos_token_id=7)
    plain = generate_ids(model, ids, mask, fast=False, **kw)
    with phases.recording() as rec:
        got = generate_ids(model, ids, mask, fast=True, reuse_prefix=True, prefill_buckets=4, **kw)
    assert rec.counts["prefill_forwards"] == 4 and torch.equal(got, plain)
    assert rec.counts["prefill_tokens"] < rec.counts["prefill_tokens_one_forward"]
    uniform, umask = ragged([30] * 5, 40, seed=2)
    kw.update(temperature=1.0, seed=5)
    with phases.recording() as rec:
        a = generate_ids(model, uniform, umask, fast=True, prefill_buckets=4, **kw)
    assert rec.counts["prefill_forwards"] == 1
    assert torch.equal(a, generate_ids(model, uniform, umask, fast=True, **kw))


def test_the_option_is_off_by_default_and_keeps_the_cache_key():
    assert JudgeSpec().prefill_buckets == 1
    assert JudgeSpec(prefill_buckets=4).fingerprint() == JudgeSpec().fingerprint()  # same verdicts: same cache entries


# ---- a reasoning judge on the real SmolLM2, ragged prompts --------------------------------------------------------
REQS = [JudgeRequest(prompt="What is the capital of France?", responses=["Paris."]),
        JudgeRequest(prompt="Explain in detail how tides work and why there are two a day.",
                     responses=["The Moon's gravity pulls the ocean toward it, and the Earth's rotation " * 4]),
        JudgeRequest(prompt="Say hi.", responses=["hi"]),
        JudgeRequest(prompt="Write a haiku about rain.",
                     responses=["Grey clouds gather low / drops tap on the tin roof / the garden drinks deep"]),
        JudgeRequest(prompt="Name a prime number.", responses=["Seven is prime, and so is eleven, and thirteen too."]),
        JudgeRequest(prompt="Describe the water cycle for a child.",
                     responses=["Water warms up and floats into the sky as vapour. " * 3])]


def bucketed_vs_one_forward(model, tok, buckets: int, **spec):
    from judgerl.judges.hf import HFBackend

    out = []
    for b in (1, buckets):
        backend = HFBackend(JudgeSpec(mode="reasoning", cache=False, prefill_buckets=b, **spec), model=model,
                            tokenizer=tok)
        backend.fast = True
        with phases.recording() as rec:
            out.append((backend._verdicts(REQS), rec.counts))
    return out


def assert_same_verdicts(a, b, tol: float):
    assert [v.reasoning for v in a] == [v.reasoning for v in b]  # the same greedy thinking tokens
    assert [v.tokens_out for v in a] == [v.tokens_out for v in b] and [v.label for v in a] == [v.label for v in b]
    assert max(abs(x.expected - y.expected) for x, y in zip(a, b)) < tol


@pytest.mark.slow
@pytest.mark.parametrize("reuse_prefix", [True, False], ids=["prefix-reuse", "left-padded"])
def test_judge_scores_and_thinking_equal_with_bucketed_prefill(smollm2, monkeypatch, reuse_prefix):
    monkeypatch.setattr(prefill_mod, "MIN_SAVING", 0)
    model, tok = smollm2
    (one, c1), (got, cb) = bucketed_vs_one_forward(model, tok, 4, batch_size=8, reuse_prefix=reuse_prefix,
                                                   sampling={"max_new_tokens": 24})
    assert_same_verdicts(got, one, 1e-3)
    assert c1["prefill_forwards"] == 1 and cb["prefill_forwards"] > 1
    assert cb["prompt_tokens"] == c1["prompt_tokens"] <= cb["prefill_tokens"] < c1["prefill_tokens"]
    assert len({round(v.expected, 3) for v in got}) > 1


def test_bucketed_prefill_is_refused_on_cuda_only():
    from judgerl import JudgerlError
    from judgerl.judges.hf import check_prefill_buckets

    check_prefill_buckets(4, "cpu")
    check_prefill_buckets(1, "cuda:0")
    check_prefill_buckets(4, "cuda:0", allow_cuda=True)
    with pytest.raises(JudgerlError, match="prefill_buckets 4 is refused on CUDA"):
        check_prefill_buckets(4, "cuda:0")


@pytest.mark.slow
@pytest.mark.skipif(not CUDA, reason="CUDA graphs need a GPU")
@pytest.mark.xfail(strict=True, reason="H100, 2026-12-07: one of six verdicts took other thinking tokens "
                   "(bench/RESULTS.md 3g); refused on CUDA until this passes")
def test_gpu_judge_scores_equal_with_bucketed_prefill(smollm2_path, monkeypatch):
    """On CUDA (captured graphs, fp32): bucketed prefill vs one forward vs the plain-generate judge."""
    from judgerl.judges.hf import HFBackend

    monkeypatch.setattr(HFBackend, "allow_cuda_buckets", True)
    monkeypatch.setenv("JUDGERL_FUSED_STEP", "1")
    monkeypatch.setattr(prefill_mod, "MIN_SAVING", 0)
    model, tok = _smollm2_cuda(smollm2_path)
    spec = dict(batch_size=16, sampling={"max_new_tokens": 48})
    (one, c1), (got, cb) = bucketed_vs_one_forward(model, tok, 4, **spec)
    plain = HFBackend(JudgeSpec(mode="reasoning", cache=False, **spec), model=model, tokenizer=tok)
    plain.fast = False
    assert_same_verdicts(got, one, 1e-3)
    assert_same_verdicts(got, plain._verdicts(REQS), 1e-3)
    assert cb["prefill_forwards"] > 1 and cb["prefill_tokens"] < c1["prefill_tokens"]
