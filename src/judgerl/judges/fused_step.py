"""One decode step of a Llama-family model, written for the graph engine with as few kernels as it can.

transformers' eager decoder layer launches about 43 kernels per layer for one token a row: RMSNorm as 7
element-wise ops, rotary embeddings as 10, separate q / k / v and gate / up projections, a residual add after
each projection, and in SDPA a boolean-to-additive mask conversion and a mask expansion per layer. On a small
model each is a 1-4 us launch-bound kernel, so a captured step of SmolLM2-135M (30 layers) took ~2.5 ms on an
H200 whatever the batch (bench 3 profile, RESULTS 3b): 1-2% of the decode roofline. This step computes the
same function with ~15 kernels a layer:

  RMSNorm         one fused `F.rms_norm` (weight applied in it)
  q, k, v         one GEMM against a concatenated [q; k; v] weight (bias concatenated too: Qwen2)
  rotary          on q and k together: x*cos + swap(x)*sin', swap = the two halves exchanged, sin' = [-sin; sin]
                  (so swap(x)*sin' = rotate_half(x)*sin);
                  cos / sin looked up in a per-cache table once a step, not recomputed per layer
  K/V cache       written in place at the step's slot (`index_copy_`)
  attention       SDPA of the KV-head-grouped query over the static cache with an additive mask shared by all
                  layers (kept in the engine, updated once a step), no K/V repetition
  o_proj          one GEMM with the residual add fused (`addmm`); the same for down_proj
  gate, up        one GEMM against [gate; up], then silu(g) * u

The concatenated weights are copies: `refresh()` re-copies them from the live parameters before every
`generate` call (optimizer steps change parameters in place; ~0.2 ms for 135M), so a rollout always reads the
current policy. Other parameters (embeddings, norms, o/down projections, lm_head) are read in place.
Numerics: the same operations in the same dtype; rounding differs from transformers only where an op is fused
(addmm adds the residual before rounding, addcmul rounds once), i.e. within one bf16 ulp per op.
"""

from __future__ import annotations

FUSED_TYPES = ("llama", "mistral", "qwen2", "qwen3")
MAX_EXTRA_BYTES = 1 << 30  # weight copies up to this size always; larger ones only within a quarter of free memory
# Where the fused step is the default: the CPU (tests/judges/test_static_decode.py, tests/training/test_rollout.py)
# and CUDA, whose GPU guards (greedy rollouts == generate through captured graphs, sampled chi-square, judge scores
# == the plain-generate judge within 1e-3, replays read in-place weight updates) passed on one H100 on 2026-12-06
# (bench/issue25_h100/gpu_guards.log: 5 passed). JUDGERL_FUSED_STEP=0 turns it off (the issue-14 engine).
ON_BY_DEFAULT = {"cpu": True, "cuda": True}


def _text_config(model):
    return model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config


def fusable(model) -> str | None:
    """Why the fused step cannot run this model, or None when it can."""
    import torch

    cfg = _text_config(model)
    if getattr(cfg, "model_type", None) not in FUSED_TYPES:
        return f"model type {getattr(cfg, 'model_type', None)!r}"
    if getattr(cfg, "hidden_act", None) != "silu" or getattr(cfg, "pretraining_tp", 1) != 1:
        return "activation / tensor-parallel layout"
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    if "dynamic" in str(rope.get("rope_type", rope.get("type", ""))):
        return "dynamic RoPE (frequencies depend on the length)"
    inner = getattr(model, "model", None)
    if inner is None or not all(hasattr(inner, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return "module layout"
    if not isinstance(getattr(model, "lm_head", None), torch.nn.Linear) or model.lm_head.bias is not None:
        return "lm_head"
    for layer in inner.layers:
        att, mlp = layer.self_attn, layer.mlp
        lin = [getattr(att, n, None) for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        lin += [getattr(mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj")]
        if not all(type(m) is torch.nn.Linear for m in lin):  # PEFT / quantised layers wrap or replace them
            return "projection layers are not plain nn.Linear"
        if lin[3].bias is not None or any(m.bias is not None for m in lin[4:]):
            return "o_proj / MLP bias"
        if (lin[0].bias is None) != (lin[1].bias is None) or (lin[0].bias is None) != (lin[2].bias is None):
            return "mixed q/k/v bias"
    return None


class _Layer:
    """Live parameters of one decoder layer plus the concatenated q/k/v and gate/up copies."""

    def __init__(self, layer, torch):
        att, mlp = layer.self_attn, layer.mlp
        self.src_qkv = [att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]
        self.src_b = [att.q_proj.bias, att.k_proj.bias, att.v_proj.bias] if att.q_proj.bias is not None else None
        self.src_gu = [mlp.gate_proj.weight, mlp.up_proj.weight]
        self.w_qkv = torch.empty((sum(w.shape[0] for w in self.src_qkv), self.src_qkv[0].shape[1]),
                                 dtype=self.src_qkv[0].dtype, device=self.src_qkv[0].device)
        self.b_qkv = None if self.src_b is None else torch.empty(self.w_qkv.shape[0], dtype=self.src_b[0].dtype,
                                                                  device=self.src_b[0].device)
        self.w_gu = torch.empty((2 * self.src_gu[0].shape[0], self.src_gu[0].shape[1]), dtype=self.src_gu[0].dtype,
                                device=self.src_gu[0].device)
        self.w_o, self.w_down = att.o_proj.weight, mlp.down_proj.weight
        self.n_in, self.eps_in = layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon
        self.n_post, self.eps_post = layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon
        qn, kn = getattr(att, "q_norm", None), getattr(att, "k_norm", None)
        self.qk_norm = None if qn is None else (qn.weight, qn.variance_epsilon, kn.weight, kn.variance_epsilon)
        self.scaling = att.scaling

    def refresh(self, torch):
        torch.cat(self.src_qkv, 0, out=self.w_qkv)
        torch.cat(self.src_gu, 0, out=self.w_gu)
        if self.b_qkv is not None:
            torch.cat(self.src_b, 0, out=self.b_qkv)


def math_attention(q, k, v, mask, scale: float):
    """softmax(q k^T * scale + mask) v as plain matmuls (what SDPA's math backend computes; softmax in float32):
    under torch.compile the mask add and the softmax become one generated kernel beside two batched GEMMs, instead of
    the memory-efficient attention kernel (20 us a layer at 64 rows x 384 columns on an H100, bench/RESULTS.md 3c)."""
    import torch

    s = torch.matmul(q, k.transpose(-1, -2)).float() * scale + mask
    return torch.matmul(torch.softmax(s, dim=-1).to(v.dtype), v)


def flex_decode_attention(q, k, v, mask, scale: float):
    """The same attention through `flex_attention` with the additive mask as a score_mod: under torch.compile on CUDA
    inductor lowers it to its flex-decoding Triton template (q k^T, mask, online softmax and v in one split-KV kernel
    plus a small reduction) instead of two batched GEMMs and a softmax kernel. q [r, kvh, rep, d] (the rep query heads
    of each KV head), k / v [r, kvh, n, d], mask [r, kvh, rep, n] (one [r, n] mask expanded)."""
    from torch.nn.attention.flex_attention import flex_attention

    r, kvh, rep, d = q.shape
    row_mask = mask[:, 0, 0]  # [r, n]

    def add_mask(score, b, h, q_idx, kv_idx):
        return score + row_mask[b, kv_idx]

    q = q.reshape(r, kvh * rep, 1, d).contiguous()  # a 4-D buffer: inductor's CPU lowering reads the query's layout
    out = flex_attention(q, k, v, score_mod=add_mask, scale=scale, enable_gqa=True)
    return out.view(r, kvh, rep, d)


def _sdpa(q, k, v, mask, scale: float):
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(q, k, v, mask, scale=scale)


# The decode step's attention kinds (FusedStep.attention): SDPA (the eager default), plain matmuls, flex attention
ATTENTIONS = {"sdpa": _sdpa, "math": math_attention, "flex": flex_decode_attention}


class FusedStep:
    """The fused one-token forward of a fusable model (see `fusable`). `attention`: a key of ATTENTIONS (SDPA here;
    compiled_step.CompiledStep sets it from JUDGERL_COMPILED_ATTN)."""

    attention = "sdpa"

    def __init__(self, model):
        import torch

        cfg = _text_config(model)
        self.model = model
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.inter = cfg.intermediate_size
        inner = model.model
        with torch.no_grad():
            self.layers = [_Layer(layer, torch) for layer in inner.layers]
        self.embed, self.norm = inner.embed_tokens.weight, inner.norm
        self.lm_head = model.lm_head.weight
        self.rotary = inner.rotary_emb

    @staticmethod
    def extra_bytes(model) -> int:
        """Bytes the concatenated weight copies take."""
        n = 0
        for layer in model.model.layers:
            att, mlp = layer.self_attn, layer.mlp
            for m in (att.q_proj, att.k_proj, att.v_proj, mlp.gate_proj, mlp.up_proj):
                n += m.weight.numel() * m.weight.element_size()
        return n

    def refresh(self):
        """Copy the live q/k/v and gate/up parameters into the concatenated weights (before each generate)."""
        import torch

        with torch.no_grad():
            for layer in self.layers:
                layer.refresh(torch)

    def rope_tables(self, length: int, like):
        """cos and signed-sin tables [length, head_dim] for positions 0..length-1 (the model's own rotary)."""
        import torch

        pos = torch.arange(length, device=like.device)[None]
        cos, sin = self.rotary(like, pos)
        half = self.head_dim // 2
        sin = sin[0].clone()
        sin[:, :half] = -sin[:, :half]
        return cos[0].contiguous(), sin

    def forward(self, tok, pos, cos_tab, sin_tab, mask, keys, values, slot, length: int):
        """Logits (float32) [r, vocab] of one new token per row. tok, pos: [r] long; keys / values: per layer
        [r, kv_heads, L, head_dim], written at `slot` (a [1] long tensor < length); attention reads their first
        `length` columns, under the additive mask [r, length]."""
        import torch.nn.functional as F

        r = tok.shape[0]
        x = F.embedding(tok, self.embed)
        cos = cos_tab.index_select(0, pos)[:, None]  # [r, 1, d]
        sin = sin_tab.index_select(0, pos)[:, None]
        m4 = mask[:, None, None, :length].expand(r, self.kv_heads, self.heads // self.kv_heads, length)
        x = self.run_layers(x, cos, sin, m4, keys, values, slot)
        x = F.rms_norm(x, (x.shape[-1],), self.norm.weight, self.norm.variance_epsilon)
        return (x @ self.lm_head.t()).float()

    def run_layers(self, x, cos, sin, m4, keys, values, slot):
        """The hidden state after every decoder layer (each through `layer_forward`)."""
        for i, L in enumerate(self.layers):
            x = self.layer_forward(L, x, cos, sin, m4, keys[i], values[i], slot)
        return x

    def layer_forward(self, L, x, cos, sin, m4, k_cache, v_cache, slot):
        """One decoder layer: the hidden state x [r, hidden] after it; the layer's K/V written into its cache at
        `slot`; attention over the cache's first m4.shape[-1] columns (the same function for every layer, so
        compiled_step compiles it once and reuses it 30 times). The residual adds are fused into the GEMMs (addmm)."""
        import torch
        import torch.nn.functional as F

        o = self.attention_out(L, F.rms_norm(x, (x.shape[-1],), L.n_in, L.eps_in), cos, sin, m4, k_cache, v_cache, slot)
        x = torch.addmm(x, o, L.w_o.t())
        return torch.addmm(x, self.mlp_in(L, x), L.w_down.t())

    def layer_forward_deferred(self, L, h, d, cos, sin, m4, k_cache, v_cache, slot):
        """The same layer with the residual stream given as h + d and returned as (x, mlp out): the adds are left to
        the RMSNorm that follows them, where inductor fuses them into its kernel, instead of addmm, which on CUDA
        copies the residual into its output before the GEMM (a device memcpy twice a layer; compiled_step)."""
        import torch.nn.functional as F

        x = h + d
        o = self.attention_out(L, F.rms_norm(x, (x.shape[-1],), L.n_in, L.eps_in), cos, sin, m4, k_cache, v_cache, slot)
        x = x + o @ L.w_o.t()
        return x, self.mlp_in(L, x) @ L.w_down.t()

    def attention_out(self, L, a, cos, sin, m4, k_cache, v_cache, slot):
        """The attention block of one layer on its normed input a [r, hidden], before o_proj: [r, heads * head_dim];
        the layer's K/V written into its cache at `slot`."""
        import torch
        import torch.nn.functional as F

        r, h, kvh, d = a.shape[0], self.heads, self.kv_heads, self.head_dim
        rep, hd, kd, n = h // kvh, h * d, kvh * d, m4.shape[-1]

        def rope(t):  # t * cos + rotate_half(t) * sin; the half swap as a flip (one kernel on a strided view)
            c = t.shape[1]
            return torch.addcmul(t * cos, t.view(r, c, 2, d // 2).flip(2).view(r, c, d), sin)

        qkv = torch.addmm(L.b_qkv, a, L.w_qkv.t()) if L.b_qkv is not None else a @ L.w_qkv.t()
        if L.qk_norm is None:
            qk = rope(qkv[:, :hd + kd].view(r, h + kvh, d))
            q, k = qk[:, :h], qk[:, h:]
        else:
            qw, qe, kw, ke = L.qk_norm
            q = rope(F.rms_norm(qkv[:, :hd].view(r, h, d), (d,), qw, qe))
            k = rope(F.rms_norm(qkv[:, hd:hd + kd].view(r, kvh, d), (d,), kw, ke))
        v = qkv[:, hd + kd:].view(r, kvh, d)
        k_cache.index_copy_(2, slot, k[:, :, None])
        v_cache.index_copy_(2, slot, v[:, :, None])
        attend = ATTENTIONS[self.attention]
        o = attend(q.reshape(r, kvh, rep, d), k_cache[:, :, :n], v_cache[:, :, :n], m4, scale=L.scaling)
        return o.reshape(r, hd)

    def mlp_in(self, L, x):
        """silu(gate) * up of the post-attention RMSNorm of x: the down projection's input [r, intermediate]."""
        import torch.nn.functional as F

        a = F.rms_norm(x, (x.shape[-1],), L.n_post, L.eps_post)
        gu = a @ L.w_gu.t()
        return F.silu(gu[:, :self.inter]) * gu[:, self.inter:]


def fused_step_for(model, device_free_bytes: int | None = None, step_class=None) -> FusedStep | None:
    """A FusedStep (or `step_class`, a subclass: compiled_step.decode_step_for picks the compiled one) when the model
    is fusable, its weight copies fit (see MAX_EXTRA_BYTES) and the step is on for its device, else None.
    `JUDGERL_FUSED_STEP=1` / `=0` turns it on / off everywhere; unset, it is on where it has been verified
    (`ON_BY_DEFAULT`). Off, the engine captures transformers' own forward."""
    import os

    flag = os.environ.get("JUDGERL_FUSED_STEP")
    dev = next(model.parameters()).device.type
    if flag == "0" or (flag != "1" and not ON_BY_DEFAULT.get(dev, False)) or fusable(model) is not None:
        return None
    extra = FusedStep.extra_bytes(model)
    if extra > MAX_EXTRA_BYTES and (device_free_bytes is None or extra > device_free_bytes // 4):
        return None
    return (step_class or FusedStep)(model)
