"""What a judge is (JudgeSpec), what it is asked (JudgeRequest) and what it answers (Verdict).

A judge = backend + format + mode + prompt template + sampling settings. The same spec is used by
annotation, judge evaluation, policy rewards, the gold monitor, arena and probes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judgerl.judges.templates import check_template, read_template

Backend = Literal["hf", "openai", "rm"]
Format = Literal["pointwise", "pairwise"]
Mode = Literal["reasoning", "direct"]


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt")
_WEIGHT_DIGESTS: dict[tuple, str] = {}  # (file, size, mtime_ns) -> sha256: each weight file is read once a process


SAMPLED_ABOVE = 256 << 20  # larger weight files are hashed from 32 spread 1 MiB blocks and their size (a 70B
                           # model's 140 GB would take minutes to read whole; new weights differ in every block)


def _weights_digest(f: Path, size: int) -> str:
    from judgerl.models import sha256_file

    if size <= SAMPLED_ABOVE:
        return sha256_file(f)
    h = hashlib.sha256(str(size).encode())
    with open(f, "rb") as fh:
        for i in range(32):
            fh.seek((size - (1 << 20)) * i // 31)
            h.update(fh.read(1 << 20))
    return h.hexdigest()


def weights_identity(model: str) -> str | None:
    """Hash of the contents of a local model's weight files (the folder's top-level *.safetensors / *.bin / *.gguf /
    *.pt, or the file itself; large files sampled, SAMPLED_ABOVE); None for a model named by a registry or a server.
    Part of the fingerprint: a judge trained again into the same folder is another judge, whose verdicts the cache
    must not serve from the old one's."""
    p = Path(model)
    files = sorted(f for f in (p.iterdir() if p.is_dir() else [p] if p.is_file() else [])
                   if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _WEIGHT_DIGESTS:
            _WEIGHT_DIGESTS[key] = _weights_digest(f, st.st_size)
        h.update(f"{f.name}:{_WEIGHT_DIGESTS[key]}\n".encode())
    return h.hexdigest()[:16]


class Sampling(BaseModel):
    """Decoding settings of the judge. temperature 0 means greedy."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(0.0, ge=0.0, le=5.0, description="0 = greedy decoding.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int = Field(0, ge=0, description="Top-k sampling; 0 disables it.")
    max_new_tokens: int = Field(256, ge=1, le=65536, description="Budget for reasoning + verdict.")
    seed: int = Field(0, description="Sampling seed (part of the cache key).")


# What each backend is, stated once: every stage asks the spec instead of testing backend names.
BACKEND_TRAITS = {
    #          model class  weights here  remote server  scores bounded  native reasoning effort
    "hf":     ("causal",    True,         False,         True,           False),
    "rm":     ("reward",    True,         False,         False,          False),
    "openai": (None,        False,        True,          True,           True),
}


class JudgeSpec(BaseModel):
    """Everything that determines a judge's verdicts. Its fingerprint keys the cache."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("judge", description="Label used in ledgers and reports.")
    backend: Backend = Field("hf", description="hf (in-process transformers), openai (any "
                             "OpenAI-compatible server) or rm (scalar reward model).")
    model: str = Field("smollm2-135m-instruct", description="Embedded model name, local folder, "
                       "Hugging Face id, or the model name served by the endpoint.")
    format: Format = Field("pointwise", description="pointwise: score 0-9; pairwise: 1 or 2.")
    mode: Mode = Field("direct", description="reasoning: think, then the verdict; direct: verdict only.")
    template: str | None = Field(None, description="Path of a prompt template file overriding the default.")
    rubric: bool = Field(False, description="Put the item's rubric into the prompt (rubric-conditioned judge).")
    score_min: int = Field(0, ge=0, le=9, description="Lowest pointwise score.")
    score_max: int = Field(9, ge=0, le=9, description="Highest pointwise score.")
    force_verdict: bool = Field(True, description="Append the verdict prefix ('Score: ') after the "
                                "reasoning and read the next-token distribution (hf; openai with prefill).")
    sampling: Sampling = Field(default_factory=Sampling, description="Decoding settings (temperature 0 = greedy).")
    # hf / rm backends
    device: str = Field("auto", description="torch device: auto, cpu, cuda, cuda:1 ...")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="Weight dtype of in-process judges; auto = bfloat16 on a GPU, float32 on the CPU.")
    batch_size: int = Field(8, ge=1, le=4096, description="Requests per forward batch (in-process backends).")
    reuse_prefix: bool = Field(True, description="Compute the prompt head shared by a batch once "
                               "(judge template, group question); same outputs, less prefill.")
    prefill_buckets: int = Field(1, ge=1, le=16, description="Graph engine (hf): prefill a batch of ragged "
                                 "prompts in up to this many length buckets, each padded only to its own longest "
                                 "prompt; 1 = one forward padded to the longest. Refused on CUDA: its GPU guard gave other verdicts and no "
                                 "speed-up (bench/RESULTS.md 3g).")
    # openai backend
    base_urls: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000/v1"],
                                 description="One or more OpenAI-compatible endpoints; requests spread across them.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (never stored).")
    reasoning_effort: Literal["low", "medium", "high"] | None = Field(None, description="Server-side reasoning effort (openai backend; e.g. gpt-oss).")
    logprobs: bool = Field(True, description="Ask the server for top logprobs to compute the expected score.")
    prefill: bool = Field(False, description="Send the verdict prefix as an assistant prefill "
                          "(vLLM continue_final_message) to force a parseable verdict.")
    extra_body: dict = Field(default_factory=dict, description="Extra request fields passed through to the "
                             "server, e.g. llama.cpp `grammar` or vLLM `chat_template_kwargs` (part of the cache key).")
    concurrency: int = Field(8, ge=1, le=1024, description="Requests in flight (openai backend).")
    timeout_s: float = Field(120.0, gt=0, description="Seconds before one request is abandoned and retried.")
    max_retries: int = Field(3, ge=0, le=20, description="Retries of a failed request (errors, 5xx, 429, timeouts).")
    cache: bool = Field(True, description="Serve repeated identical requests from the SQLite cache.")
    # input caps: an item over a cap is not sent to the backend; it gets an invalid verdict with a
    # `too_long: ...` error of its own (the rest of its batch is judged); see judges/limits.py
    max_prompt_chars: int = Field(32000, ge=1, description="Longest instruction (characters; chat prompts: all "
                                  "contents together) judged; longer items get a per-item too_long verdict.")
    max_response_chars: int = Field(32000, ge=1, description="Longest candidate response (characters) judged; longer "
                                    "items get a per-item too_long verdict.")
    max_input_tokens: int = Field(8192, ge=16, description="Longest rendered judge prompt (tokens, in-process "
                                  "backends; a server enforces its own context) judged; longer: too_long.")

    @field_validator("base_urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("base_urls needs at least one URL")
        for u in v:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"base_urls entry {u!r} must start with http:// or https://")
        return v

    @model_validator(mode="after")
    def _check(self) -> "JudgeSpec":
        if self.score_min >= self.score_max:
            raise ValueError(f"score_min ({self.score_min}) must be below score_max ({self.score_max})")
        if self.backend == "rm" and self.format != "pointwise":
            raise ValueError("backend 'rm' gives a scalar reward: use format 'pointwise'")
        if self.template:
            if not Path(self.template).is_file():
                raise ValueError(f"template file not found: {self.template}")
            problem = check_template(Path(self.template).read_text(encoding="utf-8"))
            if problem:
                raise ValueError(f"template {self.template}: {problem}")
        return self

    # ---- backend traits (see BACKEND_TRAITS) --------------------------------------------------
    @property
    def model_kind(self) -> str | None:
        """Class of weights loaded in this process: causal | reward | None (a remote server)."""
        return BACKEND_TRAITS[self.backend][0]

    @property
    def in_process(self) -> bool:
        """The judge's weights live in this process."""
        return BACKEND_TRAITS[self.backend][1]

    @property
    def remote(self) -> bool:
        """The judge is called over HTTP (base_urls, API key)."""
        return BACKEND_TRAITS[self.backend][2]

    @property
    def bounded_scores(self) -> bool:
        """Scores lie on score_min..score_max (an rm reward is an unbounded scalar)."""
        return BACKEND_TRAITS[self.backend][3]

    @property
    def native_effort(self) -> bool:
        """The server takes reasoning_effort (otherwise effort is a thinking-token budget)."""
        return BACKEND_TRAITS[self.backend][4]

    @property
    def deterministic(self) -> bool:
        """Same request, same verdict (greedy in-process decoding)."""
        return self.in_process and self.sampling.temperature == 0

    def fingerprint(self) -> str:
        """Hash of every field that changes verdicts (not concurrency, timeouts or the name)."""
        keep = self.model_dump(exclude={"name", "concurrency", "timeout_s", "max_retries", "cache",
                                        "base_urls", "api_key_env", "batch_size", "device",
                                        "reuse_prefix", "prefill_buckets", "max_prompt_chars", "max_response_chars",
                                        "max_input_tokens"})
        if not keep["extra_body"]:
            del keep["extra_body"]  # keeps fingerprints of specs made before the field existed
        keep["template_text"] = read_template(self.template, self.format)
        weights = weights_identity(self.model) if self.in_process else None
        if weights is not None:  # a local folder's weights (named models keep the fingerprints they had)
            keep["weights"] = weights
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


class JudgeRequest(BaseModel):
    """One thing to judge: an instruction and one (pointwise) or two (pairwise) responses."""

    model_config = ConfigDict(extra="forbid")
    prompt: str | list[dict] = Field(..., description="The instruction: text, or chat messages.")
    responses: list[str] = Field(min_length=1, max_length=2, description="One response (pointwise) or two (pairwise).")
    rubric: str | None = Field(None, description="Instruction-specific rubric for rubric-conditioned judges.")

    def key(self, spec_fingerprint: str) -> str:
        blob = json.dumps([spec_fingerprint, self.prompt, self.responses, self.rubric], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


class Verdict(BaseModel):
    """A judge's answer. `label` is the score (pointwise) or the preferred response 1|2 (pairwise);
    None when invalid. `expected` is the expected score Σ x·p(x) (pointwise) or P(response 1 is
    preferred) (pairwise), read from the verdict-token distribution when the backend exposes it
    (None otherwise). The `rm` backend has no discrete verdict: label None, valid True, `expected`
    = the raw scalar reward (unbounded). `error` is set only when the call itself failed
    (transport/server), after `retries` retries; an unparseable output is valid=False, error None.
    An invalid verdict has label and expected None on every backend (enforced here)."""

    label: int | None = Field(None, description="The verdict: a score (pointwise) or the preferred response 1|2.")
    expected: float | None = Field(None, description="Σ x·p(x) over the verdict tokens (pointwise) or P(response 1 preferred).")
    probs: list[float] | None = Field(None, description="Renormalised distribution over the verdict values.")
    reasoning: str = Field("", description="The judge's reasoning (thinking) text.")
    raw: str = Field("", description="The judge's full output text.")
    valid: bool = Field(False, description="A verdict the strict parser accepts; an invalid verdict is never a number.")
    error: str | None = Field(None, description="Why the call failed (transport error, 5xx, timeout), else None.")
    tokens_in: int = Field(0, description="Prompt tokens.")
    tokens_out: int = Field(0, description="Generated tokens.")
    seconds: float = Field(0.0, description="Wall time of the call.")
    retries: int = Field(0, description="Retries the call needed.")
    cached: bool = Field(False, description="Served from the verdict cache.")

    @model_validator(mode="after")
    def _invalid_is_no_number(self) -> "Verdict":
        """The one rule: an invalid verdict carries neither a label nor an expected value (`probs` stay,
        as a diagnostic). Readers still go through judges.values, which checks `valid` again."""
        if not self.valid:
            self.label = None
            self.expected = None
        return self

    @property
    def failed(self) -> bool:
        """True when the backend call itself failed (transport/server), not merely an invalid verdict."""
        return self.error is not None
