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


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_trim_heap_gives_a_threads_freed_tensors_back():
    """Tensors freed on another thread (as a judge's activations on its model thread) stay in the RSS until the
    allocator is trimmed."""
    import threading

    pin = []

    def work():
        blocks = [torch.ones(25_000) for _ in range(4000)]  # 400 MB in 100 kB tensors
        pin.append(torch.ones(10))  # allocated above them: the arena's top cannot shrink on its own
        del blocks

    t = threading.Thread(target=work)
    t.start()
    t.join()
    before = _rss_mb()
    assert model_loader.trim_heap()
    assert before - _rss_mb() > 200
