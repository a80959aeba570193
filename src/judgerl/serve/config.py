"""`judgerl serve` settings: which judge, how verdicts become rewards, and how the server batches."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from judgerl.judges.spec import JudgeSpec
from judgerl.training.rewards import JudgeRewardConfig

# End-of-turn markers OpenRLHF leaves at the end of its decoded query (skip_special_tokens=False).
EOS_MARKERS = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "</s>", "<end_of_turn>",
               "<|end|>", "<|return|>"]


class OpenRLHFSettings(BaseModel):
    """How the OpenRLHF remote-RM payload (query = prompt + response as one decoded string) is read."""

    model_config = ConfigDict(extra="forbid")
    instruction_from: str = Field("prompt", pattern="^(prompt|label)$", description=(
        "What the judge sees as the instruction: `prompt` (the prompt string OpenRLHF sends; a chat template in "
        "it is removed, see strip_chat_template) or `label` (the dataset's --label_key column, e.g. the raw "
        "instruction text)."))
    strip_chat_template: bool = Field(True, description=(
        "When the prompt string is chat-templated (OpenRLHF --apply_chat_template; ChatML, Llama 3, Gemma, "
        "[INST] formats are recognised), the judge's instruction is its user turn (several turns: the "
        "user/assistant messages), without the template and the policy's system prompt. False: the string as sent."))
    strip_suffixes: list[str] = Field(default_factory=lambda: list(EOS_MARKERS), description=(
        "End-of-turn markers removed from the end of the response (OpenRLHF decodes with special tokens)."))


class ServeConfig(BaseModel):
    """`judgerl serve --config serve.yaml`: one judge behind an HTTP reward endpoint."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field("serve", pattern="^serve$", description="Config kind marker (always `serve`).")
    judge: JudgeSpec | str = Field(..., description="The judge: inline spec, judge YAML path, or model name.")
    reward: JudgeRewardConfig = Field(default_factory=JudgeRewardConfig, description=(
        "How verdicts become rewards: the same settings (failure policy, pairwise scheme) as train-policy's `reward:`."))
    run_dir: str = Field("runs/serve", description="Where the judge's cache.sqlite and ledger.sqlite live.")
    host: str = Field("127.0.0.1", description="Bind address; loopback by default. A non-loopback address needs "
                      "an API key (env JUDGERL_API_KEY or --api-key) unless allow_unauthenticated is set.")
    allow_unauthenticated: bool = Field(False, description=(
        "Serve a non-loopback address without an API key (only on a network where every host is trusted)."))
    port: int = Field(8100, ge=0, le=65535, description="TCP port (0 = pick a free one).")
    group_size: int | None = Field(None, ge=1, description=(
        "Every group must have exactly this many items (e.g. the engine's samples per prompt); None = any size "
        "(at least 2 for a pairwise judge)."))
    max_batch_items: int = Field(64, ge=1, le=65536, description=(
        "Items judged together across concurrent requests (a request's groups are never split; one larger "
        "request is judged alone). The backend still chunks by the judge's batch_size."))
    max_wait_ms: float = Field(5.0, ge=0.0, le=10000.0, description=(
        "How long the first request of a batch waits for others to join it."))
    prefix_memo: bool = Field(True, description=(
        "In-process judges (direct mode): keep the judge prompt's head (template, shared text) computed by one "
        "batch and reuse it in the next, so small batches (few clients, one item each) skip most of each "
        "prompt. Rewards equal the plain forward up to float rounding."))
    max_in_flight: int = Field(256, ge=1, le=100000, description=(
        "Requests accepted at once; more get HTTP 503 with Retry-After (back-pressure)."))
    max_items_per_request: int = Field(1024, ge=1, description="Larger requests get HTTP 413.")
    max_body_mb: float = Field(16.0, gt=0, le=4096, description=(
        "Largest request body (MB); larger ones get HTTP 413 before they are parsed. The judge's own caps "
        "(judge.max_prompt_chars, max_response_chars, max_input_tokens) give a per-item `too_long` status."))
    max_queued_items: int = Field(4096, ge=1, description=(
        "Items accepted but not yet judged, over all requests; a request that would pass it gets HTTP 429 "
        "with Retry-After."))
    request_timeout_s: float = Field(900.0, gt=0, description=(
        "A request not answered within this time gets HTTP 504 with Retry-After (its items may still be "
        "judged and cached, so a retry is cheap)."))
    batch_timeout_s: float = Field(600.0, gt=0, description=(
        "A judge batch that takes longer (a hung backend) is abandoned: each of its items gets status "
        "`failed` (judge timed out), and the next batch starts."))
    failure_reward: float = Field(0.0, description=(
        "Reward sent to protocols that cannot carry null (OpenRLHF, verl) when the failure policy leaves an "
        "item unscored; the JSON endpoint returns null instead. Always flagged in extra logs as judge_failed."))
    remember_groups: int = Field(100000, ge=0, description=(
        "How many group ids are remembered to refuse a group split across requests (HTTP 409)."))
    shutdown_grace_s: float = Field(60.0, ge=0.0, description=(
        "On SIGTERM/SIGINT: stop accepting, then wait this long for in-flight requests before closing them."))
    openrlhf: OpenRLHFSettings = Field(default_factory=OpenRLHFSettings, description="OpenRLHF payload reading.")
    log_level: str = Field("info", pattern="^(critical|error|warning|info|debug)$", description="uvicorn log level.")


def load_serve_config(config=None, judge: str | None = None, overrides: list[str] | None = None) -> ServeConfig:
    """A serve YAML; or a policy YAML (its judge, `reward:` settings, and grpo.num_generations as group_size,
    so the server rewards exactly as that train-policy run would); or just a judge YAML / model name."""
    from judgerl import JudgerlError
    from judgerl.config import deep_merge, load_config, parse_overrides, read_yaml

    if (config is None) == (judge is None):
        raise JudgerlError("give --config (a serve or policy YAML) or --judge (a judge YAML or model name)")
    if judge is not None:
        return load_config(ServeConfig, overrides=deep_merge({"judge": str(judge)}, parse_overrides(overrides)),
                           source="serve")
    data = read_yaml(config)
    if data.get("kind") == "policy" or "grpo" in data or "policy" in data:
        from judgerl.training.policy_config import PolicyConfig

        policy = load_config(PolicyConfig, config)
        base = {"judge": policy.judge if isinstance(policy.judge, str) else policy.judge.model_dump(mode="json"),
                "reward": policy.reward.model_dump(mode="json"), "group_size": policy.grpo.num_generations,
                "run_dir": f"{policy.run_dir}/serve"}
        return load_config(ServeConfig, overrides=deep_merge(base, parse_overrides(overrides)), source=str(config))
    return load_config(ServeConfig, config, overrides)
