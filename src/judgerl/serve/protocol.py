"""Request/response shapes: judgerl's JSON endpoint, and OpenRLHF's remote reward-model protocol.

OpenRLHF (matched: v0.11.0, `openrlhf/utils/agent.py` SingleTurnAgentExecutor._fetch_rewards_via_http
and `openrlhf/cli/serve_rm.py`): the trainer POSTs `{"query": [...], "prompts": [...], "labels": [...]}`
to the `--reward.remote_url` (formerly `--remote_rm_url`) URL, one sample per request, where `query` is
prompt + response decoded with special tokens; it reads `rewards`, `scores` and `extra_logs` (a dict of
per-sample lists) from the JSON answer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judgerl.serve.chat_template import instruction_of
from judgerl.serve.config import ServeConfig
from judgerl.serve.scoring import Group


class RequestError(Exception):
    """A bad request: answered with `status` and a one-line JSON error message."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers


Text = str | list[dict]
ROLES = ("system", "user", "assistant", "developer", "tool")


def check_messages(value, what: str, want_user: bool):
    """Chat messages must each have a known `role` and a string `content` (refused otherwise: 422)."""
    if isinstance(value, str):
        return value
    if not value:
        raise ValueError(f"{what}: empty message list")
    for k, m in enumerate(value):
        if not isinstance(m.get("role"), str) or m["role"] not in ROLES:
            raise ValueError(f"{what}[{k}]: `role` must be one of {', '.join(ROLES)}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"{what}[{k}]: `content` must be a string")
        if set(m) - {"role", "content", "name"}:
            raise ValueError(f"{what}[{k}]: unknown keys {sorted(set(m) - {'role', 'content', 'name'})}")
    if want_user and not any(m["role"] == "user" and m["content"].strip() for m in value):
        raise ValueError(f"{what}: no non-empty user message (the instruction)")
    return value


class Item(BaseModel):
    """One prompt with one response, or with several `responses` that form a group."""

    model_config = ConfigDict(extra="forbid")
    prompt: Text = Field(..., description="Instruction text, or chat messages [{role, content}, ...].")
    response: Text | None = Field(None, description="One completion (text, or assistant messages).")
    responses: list[Text] | None = Field(None, description="Several completions of this prompt: one group.")
    group: str | None = Field(None, max_length=512, description=(
        "Group id: completions with the same id are rewarded together (pairwise win rate, group_mean) and "
        "must all arrive in one request."))

    @model_validator(mode="after")
    def _one_form(self) -> "Item":
        if (self.response is None) == (self.responses is None):
            raise ValueError("give exactly one of `response` or `responses`")
        if self.responses is not None and not self.responses:
            raise ValueError("`responses` is empty")
        if isinstance(self.prompt, str) and not self.prompt.strip():
            raise ValueError("empty prompt")
        check_messages(self.prompt, "prompt", want_user=True)
        for k, r in enumerate([self.response] if self.responses is None else self.responses):
            check_messages(r, "response" if self.responses is None else f"responses[{k}]", want_user=False)
        return self


class RewardsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Item] = Field(..., min_length=1, description="What to reward, in order.")


class OpenRLHFRequest(BaseModel):
    """OpenRLHF's remote RM payload (extra fields are ignored, as OpenRLHF's own serve_rm does)."""

    model_config = ConfigDict(extra="ignore")
    query: list[str] = Field(..., description="prompt + response, decoded with special tokens (may be empty: "
                             "OpenRLHF with several URLs sends some of them an empty shard).")
    prompts: list[str] | None = Field(None, description="The prompt string of each query.")
    labels: list | None = Field(None, description="The dataset's --label_key value of each query.")


def groups_from_items(items: list[Item]) -> tuple[list[Group], list[tuple[int, int]]]:
    """Whole groups from the items, plus, per completion in request order, (group index, position)."""
    groups: list[Group] = []
    named: dict[str, int] = {}
    where: list[tuple[int, int]] = []
    for n, it in enumerate(items):
        completions = [it.response] if it.responses is None else list(it.responses)
        if it.group is not None and it.group in named:
            gi = named[it.group]
            if groups[gi].prompt != it.prompt:
                raise RequestError(422, f"items[{n}]: group {it.group!r} has items with different prompts")
        else:
            gi = len(groups)
            groups.append(Group(prompt=it.prompt, completions=[], group_id=it.group,
                                named=it.group is not None or it.responses is not None))
            if it.group is not None:
                named[it.group] = gi
        for c in completions:
            where.append((gi, len(groups[gi].completions)))
            groups[gi].completions.append(c)
    return groups, where


def strip_response(text: str, suffixes: list[str]) -> str:
    changed = True
    while changed:
        changed = False
        text = text.rstrip()
        for s in suffixes:
            if s and text.endswith(s):
                text, changed = text[: -len(s)], True
    return text


def openrlhf_groups(req: OpenRLHFRequest, cfg: ServeConfig, pairwise: bool) -> tuple[list[Group], list[tuple[int, int]]]:
    """OpenRLHF samples -> groups: one per sample (pointwise), or one per distinct prompt (pairwise)."""
    n = len(req.query)
    if n == 0:
        return [], []  # an empty shard: answered with empty lists
    if req.prompts is None or len(req.prompts) != n:
        raise RequestError(422, f"`prompts` must list the prompt of each of the {n} queries")
    use_label = cfg.openrlhf.instruction_from == "label"
    if use_label and (req.labels is None or len(req.labels) != n or
                      not all(isinstance(x, str) and x.strip() for x in req.labels)):
        raise RequestError(422, "openrlhf.instruction_from is `label`: every query needs a non-empty string label "
                                "(set OpenRLHF's --label_key to the raw instruction column)")
    items = []
    for i, (q, p) in enumerate(zip(req.query, req.prompts)):
        k = 0
        while k < min(len(q), len(p)) and q[k] == p[k]:
            k += 1  # the decoded query starts with the prompt (up to tokenizer round-trip differences)
        instruction = req.labels[i] if use_label else (instruction_of(p) if cfg.openrlhf.strip_chat_template else p)
        try:
            items.append(Item(prompt=instruction, response=strip_response(q[k:], cfg.openrlhf.strip_suffixes),
                              group=f"openrlhf:{p}" if pairwise else None))
        except ValueError as e:
            raise RequestError(422, f"query {i}: {str(e).splitlines()[-1].strip()}") from None
    groups, where = groups_from_items(items)
    for g in groups:
        g.group_id = None  # request-local: not remembered across requests
    return groups, where
