"""The fused decode step through `torch.compile` (inductor): a layer's element-wise work in a few generated kernels.

An H100 profile of the fused step (bench/RESULTS.md 3c) put ~50% of a decode step's GPU time in ~12 small
element-wise / index / norm kernels a layer (RMSNorm, rotary, the cache writes, silu * mul, the mask), 1-4 us each and
launch-bound; the GEMMs took 21% and SDPA 26%. Inductor fuses such chains into a few Triton kernels (C++ loops on the
CPU) and leaves the GEMMs as library calls. `CompiledStep` is `FusedStep` whose `layer_forward` runs through
`torch.compile`; nothing else in the engine changes: static_decode.py captures the step's forward into its own CUDA
graph per (row bucket, attended length) and replays it.

How it fits the engine:
  no inductor cudagraphs   default mode, `triton.cudagraphs` off: the engine captures the graph itself
                           (static_decode._capture_now); inductor's own graphs inside a capture would fail.
  compile outside capture  dynamo compiles on the first call at a new signature. The engine runs WARM eager steps at
                           the exact shapes before every capture, so compiles, recompiles and Triton autotuning all
                           happen in those warm-up steps, never while a graph is being captured.
  one graph for all shapes the rows (dim 0 of every per-row input), the attended length (mask dim 3) and the cache
                           length (K/V dim 2) are marked dynamic (`maybe_mark_dynamic`: a size-1 dim
                           stays specialised rather than erroring), so every row bucket, chunk and cache entry reuses
                           one compiled graph instead of a recompile per (rows, length). Recompiles can still happen
                           (a batch of 1, two sizes first seen equal and duck-sized into one symbol, a stride first seen
                           static): dynamo's recompile limit (8, after which it silently runs eager) is raised to
                           RECOMPILE_LIMIT for this step's calls only (a config patch around each step), so it never
                           falls back.
  live weights             parameters and the concatenated copies are graph inputs, read on every call (inductor's
                           freezing is off): `refresh()` copying in place and optimizer steps are seen by the next
                           replay, as with the eager step.
  failure                  no C++ compiler, no triton, a graph break (fullgraph): one warning line, then the eager
                           fused step for the rest of this instance's life; never a crash.

On by default on CUDA, off on the CPU (`ON_BY_DEFAULT`); `JUDGERL_COMPILED_STEP=1` / `=0` turns it on / off (read
when the engine is built and at every `generate`, so a bench arm can flip it between calls).
The attention is computed as plain matmuls inside the compiled graph (fused_step.math_attention; 5% faster rollouts
than SDPA's memory-efficient kernel on an H100, bench/RESULTS.md 3i); `JUDGERL_COMPILED_ATTN=sdpa` (read when the step
is built) keeps SDPA, `=flex` uses flex attention (inductor's flex-decoding template: one split-KV kernel for q k^T,
mask, softmax and v; fused_step.flex_decode_attention). `JUDGERL_COMPILED_MODE` sets torch.compile's mode (e.g.
`max-autotune-no-cudagraphs`: Triton GEMM templates autotuned against cuBLAS at the step's shapes);
`JUDGERL_COMPILED_RESIDUAL=deferred` leaves the residual adds to the next RMSNorm kernel (RESIDUALS).
One layer is compiled, not the model: every decoder layer has the same shapes, so the layer's graph is traced, lowered
and compiled once and serves all of them (a cold compile of SmolLM2 on 2 CPU cores: 15 s instead of 100 s).
"""

from __future__ import annotations

import os
import time
import warnings

from judgerl.judges.fused_step import ATTENTIONS, FusedStep, fused_step_for

# Where the compiled step is the default: CUDA, since its GPU guards (tests/judges/test_compiled_step.py: greedy
# rollouts through captured graphs of the compiled step == plain generate, both attentions; test_static_decode.py's and
# test_rollout.py's guards through it) passed on one H100 (bench/issue25_h100_part5, part6) and it made the GRPO step
# faster (bench/RESULTS.md 3i). Not the CPU: no launch overhead to remove there, and a compile of ~15 s a process.
ON_BY_DEFAULT = {"cpu": False, "cuda": True}
RECOMPILE_LIMIT = 64  # dynamo's per-function limit within this step's calls (default 8, then eager)


def _recompile_limit_patch():
    """dynamo's recompile limit raised to RECOMPILE_LIMIT while the patch is entered (its name differs by torch)."""
    import torch

    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    return cfg.patch(**{name: max(RECOMPILE_LIMIT, getattr(cfg, name))})


def compiled_on(device_type: str) -> bool:
    """Whether the fused step should be compiled on this device: `JUDGERL_COMPILED_STEP=1` / `=0`, else
    `ON_BY_DEFAULT`."""
    flag = os.environ.get("JUDGERL_COMPILED_STEP")
    return flag == "1" or (flag != "0" and ON_BY_DEFAULT.get(device_type, False))


def decode_step_for(model, device_free_bytes: int | None = None) -> FusedStep | None:
    """The engine's step: the fused step (fused_step.fused_step_for decides whether there is one), compiled where
    `compiled_on` says so."""
    on = compiled_on(next(model.parameters()).device.type)
    return fused_step_for(model, device_free_bytes, CompiledStep if on else FusedStep)


def attention_asked() -> str:
    """The compiled step's attention (JUDGERL_COMPILED_ATTN): `math` (plain matmuls, the default), `sdpa` or `flex`
    (fused_step.ATTENTIONS)."""
    kind = os.environ.get("JUDGERL_COMPILED_ATTN", "math")
    if kind not in ATTENTIONS:
        raise ValueError(f"JUDGERL_COMPILED_ATTN={kind!r}: expected one of {', '.join(ATTENTIONS)}")
    return kind


# torch.compile modes without inductor's own CUDA graphs (the engine captures the step itself)
MODES = ("default", "max-autotune-no-cudagraphs")


def mode_asked() -> str | None:
    """torch.compile's mode for the step (JUDGERL_COMPILED_MODE, one of MODES); None when unset."""
    mode = os.environ.get("JUDGERL_COMPILED_MODE") or None
    if mode is not None and mode not in MODES:
        raise ValueError(f"JUDGERL_COMPILED_MODE={mode!r}: the engine captures its own graphs; expected one of "
                         f"{', '.join(MODES)}")
    return mode


# How the compiled layer adds its residuals: "addmm" (fused into the o / down GEMMs, as the eager step does; on CUDA
# addmm copies the residual into its output first: a device memcpy twice a layer) or "deferred" (the layer returns
# (x, mlp out) and the next layer's first RMSNorm kernel does the add; fused_step.layer_forward_deferred)
RESIDUALS = ("addmm", "deferred")


def residual_asked() -> str:
    """The compiled layer's residual form (JUDGERL_COMPILED_RESIDUAL, one of RESIDUALS; default `addmm`)."""
    kind = os.environ.get("JUDGERL_COMPILED_RESIDUAL", "addmm")
    if kind not in RESIDUALS:
        raise ValueError(f"JUDGERL_COMPILED_RESIDUAL={kind!r}: expected one of {', '.join(RESIDUALS)}")
    return kind


def _asked() -> tuple:
    return attention_asked(), mode_asked(), residual_asked()


def kind_changed(step, model) -> bool:
    """True when `step` (a FusedStep) is compiled and the switch now says eager, or the other way round, or its
    attention (JUDGERL_COMPILED_ATTN), compile mode (JUDGERL_COMPILED_MODE) or residual form
    (JUDGERL_COMPILED_RESIDUAL) is not the one asked for now."""
    on = compiled_on(next(model.parameters()).device.type)
    return isinstance(step, CompiledStep) != on or (on and step.asked != _asked())


def _layer(step, L, x, cos, sin, m4, k_cache, v_cache, slot):
    """What dynamo traces: one eager decoder layer of the fused step. Every layer has the same shapes, so one compiled
    graph serves all of them (a compile of one layer, not of the unrolled model: seconds instead of ~50 s on an H100)."""
    return FusedStep.layer_forward(step, L, x, cos, sin, m4, k_cache, v_cache, slot)


def _layer_deferred(step, L, h, d, cos, sin, m4, k_cache, v_cache, slot):
    """The same with the residual stream as h + d (RESIDUALS)."""
    return FusedStep.layer_forward_deferred(step, L, h, d, cos, sin, m4, k_cache, v_cache, slot)


class CompiledStep(FusedStep):
    """`FusedStep` with `forward` compiled by inductor (module docstring). `compiled` is False after a failure."""

    options = {"triton.cudagraphs": False}

    def __init__(self, model):
        import torch

        super().__init__(model)
        self.attention, self.mode, self.residual = self.asked = _asked()  # asked: what it was built for (kind_changed)
        opts = None if self.mode else dict(self.options)  # torch.compile takes a mode or options, not both
        traced = _layer_deferred if self.residual == "deferred" else _layer
        self._fn = torch.compile(traced, mode=self.mode, options=opts, fullgraph=True, dynamic=None)
        self.compiled = True
        self.calls = 0
        self.first_call_s = None  # seconds of the first call (the compile, and one step)

    def forward(self, tok, pos, cos_tab, sin_tab, mask, keys, values, slot, length: int):
        """As `FusedStep.forward`, each layer through the compiled function; times the first call."""
        t0 = time.perf_counter()
        with _recompile_limit_patch():  # once a step, not once a layer
            out = super().forward(tok, pos, cos_tab, sin_tab, mask, keys, values, slot, length)
        if self.calls == 0:
            self.first_call_s = time.perf_counter() - t0
        self.calls += 1
        return out

    def run_layers(self, x, cos, sin, m4, keys, values, slot):
        """As `FusedStep.run_layers`; with the deferred residual, each layer takes and returns (x, mlp out)."""
        if self.residual != "deferred":
            return super().run_layers(x, cos, sin, m4, keys, values, slot)
        import torch

        h, d = x, torch.zeros_like(x)
        for i, L in enumerate(self.layers):
            if self.compiled:
                h, d = self._call(FusedStep.layer_forward_deferred, L, h, d, cos, sin, m4, keys[i], values[i], slot)
            else:
                h, d = FusedStep.layer_forward_deferred(self, L, h, d, cos, sin, m4, keys[i], values[i], slot)
        return h + d

    def layer_forward(self, L, x, cos, sin, m4, k_cache, v_cache, slot):
        """As `FusedStep.layer_forward`, through the compiled function (the eager one after a compile failure)."""
        if not self.compiled:
            return super().layer_forward(L, x, cos, sin, m4, k_cache, v_cache, slot)
        return self._call(FusedStep.layer_forward, L, x, cos, sin, m4, k_cache, v_cache, slot)

    def _call(self, eager, L, *args):
        """The compiled layer on args (..., cos, sin, m4, k_cache, v_cache, slot), their row / length dims marked
        dynamic; after a compile failure, one warning and `eager` (the same function) from then on."""
        import torch

        *states, cos, sin, m4, k_cache, v_cache, slot = args
        mark = torch._dynamo.maybe_mark_dynamic
        for t in (*states, cos, sin, m4, k_cache, v_cache):
            mark(t, 0)
        mark(m4, 3)
        mark(k_cache, 2)
        mark(v_cache, 2)
        try:
            return self._fn(self, L, *args)
        except Exception as e:  # noqa: BLE001 - any compile failure: the eager layer computes the same function
            self.compiled = False
            self.attention = "sdpa" if self.attention == "flex" else self.attention  # eager flex is a slow reference
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            warnings.warn(f"judgerl: compiled decode step unavailable ({type(e).__name__}: {first}); "
                          "running the eager fused step", RuntimeWarning, stacklevel=2)
            return eager(self, L, *args)
