"""Chat messages -> token ids with every message's content tokenised as plain text.

A candidate (or a prompt) that contains a control-token string such as `<|im_end|>` must not close
the user turn: only the chat template's own structure may produce control tokens. `chat_ids` renders
the template with a sentinel in place of each content, tokenises the template pieces normally and
the contents with `split_special_tokens=True`. When no content holds a special-token string, the ids
are exactly the tokenisation of the rendered text (so ordinary prompts are unchanged).

For servers (openai backend) the tokenizer is not ours: `neutralise_control_tokens` breaks the
common control-token spellings (ChatML, Llama 3, Gemma, DeepSeek, Llama 2, `<s>`) with a space so
that the server's tokenizer reads them as text.
"""

from __future__ import annotations

import re

_SENTINEL = "\ue000{}\ue001"  # private-use characters: no template or tokenizer gives them meaning
_CONTROL = re.compile(
    r"<\|[^<>|\s]{1,48}\|>"              # <|im_end|>, <|eot_id|>, <|start_header_id|>, <|endoftext|>
    r"|<｜[^<>｜\s]{1,48}｜>"             # DeepSeek <｜end▁of▁sentence｜>
    r"|</?(?:start_of_turn|end_of_turn|s|eos|bos|pad|unk)>"
    r"|\[/?INST\]|<</?SYS>>")


def chat_text(tok, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """Apply the chat template; base models (no template) get a plain role-tagged transcript."""
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
    return text + ("\n\nAssistant:" if add_generation_prompt else "")


_SPECIAL: dict[int, tuple] = {}  # id(tok) -> (tok, added-token count, special strings): computed once per tokenizer


def special_strings(tok) -> list[str]:
    """The text of every special (control) token of `tok`, longest first."""
    added = getattr(tok, "added_tokens_decoder", {})
    memo = _SPECIAL.get(id(tok))
    if memo is not None and memo[0] is tok and memo[1] == len(added):
        return memo[2]
    found = {t.content for t in added.values() if getattr(t, "special", False)}
    found |= set(getattr(tok, "all_special_tokens", []) or [])
    out = sorted((s for s in found if s), key=len, reverse=True)
    _SPECIAL[id(tok)] = (tok, len(added), out)
    return out


def has_control_text(tok, text: str) -> bool:
    return any(s in text for s in special_strings(tok))


def plain_ids(tok, text: str) -> list[int]:
    """`text` as plain-text token ids: control-token strings inside it are spelled out, not matched."""
    if not text:
        return []
    if not has_control_text(tok, text):
        return tok(text, add_special_tokens=False)["input_ids"]
    return tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]


def chat_ids(tok, messages: list[dict], add_generation_prompt: bool = True, suffix: str = "") -> list[int]:
    """Token ids of the chat (template + messages) followed by `suffix` (plain text, e.g. reasoning and a
    verdict prefix). Message contents and the suffix never yield control tokens."""
    contents = [str(m.get("content", "")) for m in messages]
    real = chat_text(tok, messages, add_generation_prompt)
    if not any(has_control_text(tok, c) for c in contents) and not has_control_text(tok, suffix):
        return tok(real + suffix, add_special_tokens=False)["input_ids"]
    marked = [{**m, "content": _SENTINEL.format(i)} for i, m in enumerate(messages)]
    text = chat_text(tok, marked, add_generation_prompt)
    pieces, order = [], []
    rest = text
    for i in range(len(messages)):
        mark = _SENTINEL.format(i)
        if rest.count(mark) != 1:
            break
        head, rest = rest.split(mark, 1)
        pieces.append(head)
        order.append(i)
    for strip in (False, True):  # templates that trim contents
        body = [contents[i].strip() if strip else contents[i] for i in order]
        if len(order) == len(messages) and "".join(p + c for p, c in zip(pieces, body)) + rest == real:
            ids: list[int] = []
            for p, c in zip(pieces, body):
                ids += tok(p, add_special_tokens=False)["input_ids"] + plain_ids(tok, c)
            return ids + tok(rest, add_special_tokens=False)["input_ids"] + plain_ids(tok, suffix)
    # a template that rewrites contents: fall back to breaking the control strings in the text itself
    safe = [{**m, "content": neutralise_control_tokens(c, tok)} for m, c in zip(messages, contents)]
    return tok(chat_text(tok, safe, add_generation_prompt), add_special_tokens=False)["input_ids"] + plain_ids(tok, suffix)


def encode_many(tok, texts: list[str], threads: int = 0) -> list[list[int]]:
    """Token ids of plain texts (no special tokens added), as `tok(text)` gives each: one batched call, or
    `threads` > 1 batched calls on a thread pool (the Rust tokenizer releases the GIL; TOKENIZERS_PARALLELISM=false,
    which training scripts set, keeps a single batched call on one core)."""
    if not texts:
        return []
    if threads <= 1 or len(texts) < 2 * threads:
        return tok(texts, add_special_tokens=False)["input_ids"]
    n = -(-len(texts) // threads)
    parts = _pool(threads).map(lambda c: tok(c, add_special_tokens=False)["input_ids"],
                               [texts[i:i + n] for i in range(0, len(texts), n)])
    return [ids for part in parts for ids in part]


_POOLS: dict = {}


def _pool(threads: int):
    from concurrent.futures import ThreadPoolExecutor

    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="judgerl-tokenize")
    return _POOLS[threads]


def chat_ids_many(tok, convs: list[list[dict]], suffixes: list[str] | None = None, threads: int = 0) -> list[list[int]]:
    """`chat_ids(tok, conv, suffix=suffix)` of many chats, the same ids: the chats whose contents and suffix hold no
    control-token string (the common case) are tokenised together (`encode_many`), the others one by one."""
    suffixes = suffixes if suffixes is not None else [""] * len(convs)
    out: list = [None] * len(convs)
    plain, texts = [], []
    for i, (m, suffix) in enumerate(zip(convs, suffixes)):
        if any(has_control_text(tok, str(x.get("content", ""))) for x in m) or has_control_text(tok, suffix):
            out[i] = chat_ids(tok, m, suffix=suffix)
        else:
            plain.append(i)
            texts.append(chat_text(tok, m) + suffix)
    for i, ids in zip(plain, encode_many(tok, texts, threads)):
        out[i] = ids
    return out


def neutralise_control_tokens(text: str, tok=None) -> str:
    """Break control-token spellings with a space after the first character ('<|im_end|>' -> '< |im_end|>');
    with `tok`, also that tokenizer's own special tokens. Other text is unchanged."""
    def brk(m: re.Match) -> str:
        s = m.group(0)
        return s[0] + " " + s[1:]

    text = _CONTROL.sub(brk, text)
    if tok is not None:
        for s in special_strings(tok):
            if len(s) > 1 and s in text:
                text = text.replace(s, s[0] + " " + s[1:])
    return text
