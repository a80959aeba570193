"""Start a local llama.cpp OpenAI-compatible server (llama-cpp-python[server]) on loopback.

Used by the tests and the client benchmark; users can do the same by hand:
    python -m llama_cpp.server --model ~/.cache/judgerl/gguf/SmolLM2-135M-Instruct.Q4_1.gguf \
        --model_alias smollm2-135m-instruct --host 127.0.0.1 --port 8000 --logits_all true
It serves one request at a time.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

from judgerl import JudgerlError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(gguf: str | Path, alias: str, threads: int = 2, n_ctx: int = 4096, log: str | Path | None = None,
                 timeout_s: float = 120.0):
    """Yield the base URL (".../v1") of a llama.cpp server on 127.0.0.1; stopped on exit."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
           "--logits_all", "true"]
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                tail = Path(log).read_text()[-2000:] if log else ""
                raise JudgerlError(f"llama.cpp server exited early (code {proc.returncode}) {tail}")
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise JudgerlError(f"llama.cpp server did not come up in {timeout_s:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()
