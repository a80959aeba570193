"""Undo a chat template: OpenRLHF (--apply_chat_template) sends the prompt as the policy saw it, e.g.

    <|im_start|>system\nYou are a helpful AI assistant ...<|im_end|>\n<|im_start|>user\nName a prime.<|im_end|>\n<|im_start|>assistant\n

The judge should see the user's instruction, as train-policy's reward does, not the template nor the
policy's system prompt. Recognised: ChatML (Qwen, SmolLM, ...), Llama 3, Gemma, and [INST] (Llama 2 /
Mistral). `messages_from_template` returns the user/assistant turns, or None for a plain string.
"""

from __future__ import annotations

import re

# (turn pattern with groups role, content; how a prompt starts when it uses this format)
_FORMATS = [
    (re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|\Z)", re.S), "<|im_start|>"),
    (re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)(?:<\|eot_id\|>|\Z)", re.S),
     "<|start_header_id|>"),
    (re.compile(r"<start_of_turn>(\w+)\n(.*?)(?:<end_of_turn>|\Z)", re.S), "<start_of_turn>"),
]
_INST = re.compile(r"\[INST\](.*?)\[/INST\](.*?)(?=\[INST\]|\Z)", re.S)
_BOS = ("<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>")
ROLES = {"model": "assistant", "assistant": "assistant", "user": "user"}


def messages_from_template(text: str) -> list[dict] | None:
    """User/assistant messages of a chat-templated prompt (system turns and the open generation turn
    dropped), or None when `text` is not in a recognised template."""
    head = text.lstrip()
    for bos in _BOS:
        if head.startswith(bos):
            head = head[len(bos):].lstrip()
    for turn, start in _FORMATS:
        if head.startswith(start):
            msgs = [{"role": ROLES[r], "content": c.strip()} for r, c in turn.findall(head) if r in ROLES]
            return _trimmed(msgs)
    if head.startswith("[INST]"):
        msgs = []
        for user, answer in _INST.findall(head):
            msgs.append({"role": "user", "content": re.sub(r"<<SYS>>.*?<</SYS>>", "", user, flags=re.S).strip()})
            answer = answer.replace("</s>", "").replace("<s>", "").strip()
            if answer:
                msgs.append({"role": "assistant", "content": answer})
        return _trimmed(msgs)
    return None


def _trimmed(msgs: list[dict]) -> list[dict] | None:
    while msgs and msgs[-1]["role"] == "assistant" and not msgs[-1]["content"]:
        msgs.pop()  # the open generation turn
    return msgs if any(m["role"] == "user" and m["content"] for m in msgs) else None


def instruction_of(prompt: str) -> str | list[dict]:
    """The judge's instruction for an OpenRLHF prompt string: the user turn's text when the template holds
    one user turn, the messages when it holds a conversation, the string itself when it is not templated."""
    msgs = messages_from_template(prompt)
    if msgs is None:
        return prompt
    if len(msgs) == 1:
        return msgs[0]["content"]
    return msgs
