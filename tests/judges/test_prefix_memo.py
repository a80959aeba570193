"""PrefixMemo: batches that start with the head of an earlier batch skip it, with the plain logits; a weight
change (an optimizer step) or a different head is never served from a stale memo."""

import pytest
import torch

from judgerl.judges.decode import PREFIX_MIN, last_token_logits
from judgerl.judges.prefix_memo import PrefixMemo

from tiny_models import tiny_gqa_model


def left_padded(rows: list[list[int]]):
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r):], mask[i, width - len(r):] = torch.tensor(r), 1
    return ids, mask


def prompts(head: list[int], tails: list[int], seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [head + torch.randint(1, 101, (n,), generator=g).tolist() for n in tails]


def same_as_plain(memo, model, rows, atol=1e-5) -> bool:
    ids, mask = left_padded(rows)
    return torch.allclose(memo.logits(model, ids, mask), last_token_logits(model, ids, mask), atol=atol, rtol=1e-4)


def test_lone_rows_and_batches_reuse_the_head_with_the_plain_logits():
    model = tiny_gqa_model(3)
    head = torch.randint(1, 101, (80,), generator=torch.Generator().manual_seed(0)).tolist()
    memo = PrefixMemo()
    first, second, third = prompts(head, [7], 1), prompts(head, [4], 2), prompts(head, [5, 9, 2], 3)
    assert same_as_plain(memo, model, first) and memo.tokens_reused == 0  # nothing to reuse yet
    assert memo.ids == first[0]  # a lone row: its whole prompt is kept
    assert same_as_plain(memo, model, second) and memo.tokens_reused >= 80  # the shared head was not recomputed
    before = memo.tokens_reused
    assert same_as_plain(memo, model, third) and memo.tokens_reused - before >= 80
    assert same_as_plain(memo, model, prompts(head, [3, 6], 4))  # a head shorter than the memo: kept
    before = memo.tokens_reused
    assert same_as_plain(memo, model, first) and memo.tokens_reused - before >= 80  # the same prompt again
    before = memo.tokens_reused
    longer = prompts(head + [7] * 12, [4, 6], 5)  # shares more than the memo holds: the rest goes with the suffixes
    assert same_as_plain(memo, model, longer) and memo.tokens_reused - before >= 80


def test_a_weight_update_or_another_head_is_recomputed():
    model = tiny_gqa_model(4)
    gen = torch.Generator().manual_seed(5)
    head = torch.randint(1, 101, (70,), generator=gen).tolist()
    memo = PrefixMemo()
    assert same_as_plain(memo, model, prompts(head, [5], 6))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ids, mask = left_padded(prompts(head, [6], 7))
    model(input_ids=ids, attention_mask=mask).logits.sum().backward()
    opt.step()  # the weights move in place: the memo's keys and values are stale
    reused = memo.tokens_reused
    assert same_as_plain(memo, model, prompts(head, [5], 8)) and memo.tokens_reused == reused
    other = torch.randint(1, 101, (PREFIX_MIN + 10,), generator=gen).tolist()
    assert same_as_plain(memo, model, prompts(other, [3], 9)) and memo.tokens_reused == reused


def test_short_shared_heads_take_the_plain_path():
    model = tiny_gqa_model(5)
    memo = PrefixMemo()
    rows = prompts([1, 2, 3], [PREFIX_MIN + 5, PREFIX_MIN + 2], 10)  # 3 shared tokens: too few to reuse
    assert same_as_plain(memo, model, rows) and memo.ids == [] and memo.tokens_reused == 0


@pytest.mark.slow
def test_quickstart_flag_gives_each_hf_judge_a_memo_with_the_same_verdicts(smollm2, monkeypatch):
    """model_loader.memo_judge_heads (on while the quickstart runs): a new hf judge keeps its template head across
    calls; its verdicts on real SmolLM2 are the ones without the memo."""
    from judgerl import model_loader
    from judgerl.judges import Judge, JudgeRequest, JudgeSpec

    model, tok = smollm2
    calls = [[JudgeRequest(prompt="Say hi.", responses=["hi"]), JudgeRequest(prompt="Name a prime.", responses=["7"])],
             [JudgeRequest(prompt="What is 2+2?", responses=["4"])]]
    plain = Judge(JudgeSpec(cache=False), model=model, tokenizer=tok)
    want = [plain.judge(c) for c in calls]
    assert plain.backend.prefix_memo is None  # off by default
    monkeypatch.setattr(model_loader, "memo_judge_heads", True)
    memo = Judge(JudgeSpec(cache=False), model=model, tokenizer=tok)
    got = [memo.judge(c) for c in calls]
    assert memo.backend.prefix_memo.tokens_reused >= 200  # the second call's template head came from the memo
    for a, b in zip(sum(got, []), sum(want, [])):
        assert max(abs(x - y) for x, y in zip(a.probs, b.probs)) < 1e-4 and a.label == b.label


@pytest.mark.slow
def test_one_request_a_call_groups_a_questions_answers_for_the_memo(smollm2, monkeypatch):
    """An hf judge at batch_size 1 (the quickstart's direct judges): the Judge sends requests to the same question one
    after another, so that each answer after the first computes only what follows the question; the verdicts are
    the batched judge's, in the callers' order."""
    from judgerl import model_loader
    from judgerl.judges import Judge, JudgeRequest, JudgeSpec
    from judgerl.judges.kv_reuse import common_prefix
    from judgerl.judges.plain_chat import chat_ids_many
    from judgerl.judges.prompts import render

    model, tok = smollm2
    questions = ["Explain in two sentences why the sky looks blue during the day and red at sunset, for a child.",
                 "List three practical ways a small team can keep its code review turnaround under one working day."]
    answers = ["Sunlight scatters.", "Because of Rayleigh scattering of short wavelengths.", "No idea.",
               "Review daily.", "Small pull requests, a rota and a shared checklist."]
    reqs = [JudgeRequest(prompt=questions[i % 2], responses=[answers[i % 5]]) for i in range(8)]  # interleaved
    monkeypatch.setattr(model_loader, "memo_judge_heads", True)
    batched = Judge(JudgeSpec(cache=False, batch_size=4), model=model, tokenizer=tok)
    lone = Judge(JudgeSpec(cache=False, batch_size=1), model=model, tokenizer=tok)
    want, got = batched.judge(reqs), lone.judge(reqs)
    b = lone.backend
    grouped = sorted(reqs, key=lambda r: questions.index(r.prompt))  # stable: each question's answers in call order
    rows = chat_ids_many(tok, [render(lone.spec, r) for r in grouped], [b.prefix] * len(grouped))
    shared = [common_prefix(p, q) for p, q in zip(rows, rows[1:])]
    head = min(shared)  # the template head every prompt starts with
    assert sum(k > head + 10 for k in shared) == 6  # 6 of 8 rows follow an answer to the same question
    assert b.prefix_memo.tokens_reused == sum(shared)  # each computed only what follows the row before it
    for a, c in zip(got, want):
        assert max(abs(x - y) for x, y in zip(a.probs, c.probs)) < 1e-4 and a.label == c.label
