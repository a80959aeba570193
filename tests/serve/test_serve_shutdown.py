"""Graceful shutdown of a real `python -m judgerl.serve` process (SmolLM2 judge) with requests in flight."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from judge_testdata import SHORT_POINTWISE

pytestmark = pytest.mark.slow


def start(tmp_path, grace_s: float, port: int | None = None):
    from judgerl.llama_server import free_port

    (tmp_path / "t.txt").write_text(SHORT_POINTWISE)
    port = port or free_port()
    cfg = {"kind": "serve", "judge": {"backend": "hf", "model": "smollm2-135m-instruct", "template": str(tmp_path / "t.txt"),
                                      "device": "cpu", "dtype": "float32", "batch_size": 2},
           "run_dir": str(tmp_path / "run"), "port": port, "max_batch_items": 2, "max_wait_ms": 0,
           "shutdown_grace_s": grace_s}
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(cfg))
    log = open(tmp_path / "server.log", "a")
    proc = subprocess.Popen([sys.executable, "-m", "judgerl.serve", str(tmp_path / "serve.yaml")], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while True:
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        assert time.time() < deadline, "server did not come up"
        time.sleep(0.5)


async def shut_down_during(url: str, proc, n_requests: int) -> tuple[list, object]:
    """n concurrent requests of 2 fresh items; SIGTERM once all are in flight; then one more request."""
    async def one(i, c):
        items = [{"prompt": f"Describe item {i}-{k}.", "response": f"Item {i}-{k} is a small red box."} for k in range(2)]
        try:
            return await c.post("/v1/rewards", json={"items": items})
        except httpx.HTTPError as e:
            return e

    async with httpx.AsyncClient(base_url=url, timeout=900) as c:
        tasks = [asyncio.create_task(one(i, c)) for i in range(n_requests)]
        async with httpx.AsyncClient(base_url=url, timeout=10) as probe:
            for _ in range(400):
                if (await probe.get("/metrics")).json()["in_flight"] == n_requests:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("requests never all in flight")
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as late:
                after = await late.post("/v1/rewards", json={"items": [{"prompt": "late", "response": "late"}]})
        except httpx.HTTPError as e:
            after = e
        return await asyncio.gather(*tasks), after


def served_rows(run_dir) -> list[str]:
    with sqlite3.connect(run_dir / "ledger.sqlite") as c:
        return [k for (k,) in c.execute("SELECT key FROM calls WHERE stage = 'serve' AND cached = 0")]


def test_sigterm_finishes_every_request_in_flight(tmp_path):
    proc, url, log = start(tmp_path, grace_s=900)  # generous: a shared 2-core CPU can take ~30 s per batch
    try:
        replies, after = asyncio.run(shut_down_during(url, proc, 3))
        assert proc.wait(900) == 0  # a graceful drain is a normal exit (uvicorn's signal re-raise is dropped)
    finally:
        proc.kill()
        log.close()
    assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in replies), replies
    assert all(len(r.json()["rewards"]) == 2 and None not in r.json()["rewards"] for r in replies)
    # a request after the signal is refused, never silently dropped
    assert isinstance(after, httpx.HTTPError) or after.status_code == 503
    assert len(served_rows(tmp_path / "run")) == 6  # every answered item was judged and recorded once
    text = (tmp_path / "server.log").read_text()
    assert "0 queued requests refused at shutdown" in text


def test_short_grace_refuses_the_rest_explicitly(tmp_path):
    proc, url, log = start(tmp_path, grace_s=0.5)
    try:
        replies, _ = asyncio.run(shut_down_during(url, proc, 4))
        assert proc.wait(300) == 0
    finally:
        proc.kill()
        log.close()
    ok = [r for r in replies if isinstance(r, httpx.Response) and r.status_code == 200]
    refused = [r for r in replies if r not in ok]
    assert refused, "4 batches cannot all finish within 0.5 s on a CPU"
    # each request either got all its rewards or an explicit error (503 JSON or a closed connection)
    assert all(len(r.json()["rewards"]) == 2 and None not in r.json()["rewards"] for r in ok)
    assert all(isinstance(r, httpx.HTTPError) or (r.status_code == 503 and "shut" in r.json()["error"])
               for r in refused)
    assert len(served_rows(tmp_path / "run")) >= 2 * len(ok)
