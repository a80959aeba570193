"""kill -9 of a real `python -m judgerl.serve` (SmolLM2 judge) mid-run, then a restart on the same run dir:
clients that retry like OpenRLHF get every request answered once, the scores equal a replay, and no
key was judged twice (the cache and ledger survive the kill)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

import httpx
import pytest

from test_serve_shutdown import start

pytestmark = pytest.mark.slow
N, CLIENTS = 12, 4


async def client(url: str, ids: list[int], answers: dict) -> None:
    """One request per item, retried on a refused connection / 503 until answered (OpenRLHF retries too)."""
    async with httpx.AsyncClient(base_url=url, timeout=600) as c:
        for i in ids:
            item = {"items": [{"prompt": f"Describe object {i}.", "response": f"Object {i} is a blue cube."}]}
            for _ in range(600):
                try:
                    r = await c.post("/v1/rewards", json=item)
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)
                    continue
                if r.status_code == 200:
                    answers.setdefault(i, []).append(r.json()["rewards"][0])
                    break
                assert r.status_code == 503, r.text
                await asyncio.sleep(0.5)


def test_kill_9_mid_run_then_restart(tmp_path):
    proc, url, log = start(tmp_path, grace_s=60)
    port = int(url.rsplit(":", 1)[1])
    answers: dict[int, list] = {}
    restarted = []

    async def run():
        tasks = [asyncio.create_task(client(url, list(range(c, N, CLIENTS)), answers)) for c in range(CLIENTS)]
        while len(answers) < 3:  # some answered, the rest queued or in flight
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        restarted.append(await asyncio.to_thread(start, tmp_path, 60, port))
        await asyncio.gather(*tasks)

    try:
        asyncio.run(run())
        assert proc.returncode == -signal.SIGKILL and 3 <= sum(map(len, answers.values())) <= N
        replay = [httpx.post(url + "/v1/rewards", json={"items": [{"prompt": f"Describe object {i}.",
                  "response": f"Object {i} is a blue cube."}]}, timeout=600).json()["items"][0] for i in range(N)]
    finally:
        proc.kill()
        for p, _, lg in restarted:
            p.send_signal(signal.SIGTERM)
            p.wait(120)
            lg.close()
        log.close()
    assert sorted(answers) == list(range(N)) and all(len(v) == 1 for v in answers.values())  # each answered once
    assert [answers[i][0] for i in range(N)] == [it["reward"] for it in replay]  # identical scores
    assert all(it["verdict"]["cached"] for it in replay)
    with sqlite3.connect(tmp_path / "run" / "ledger.sqlite") as c:
        judged = [k for (k,) in c.execute("SELECT key FROM calls WHERE stage = 'serve' AND cached = 0")]
        keys = {k for (k,) in c.execute("SELECT key FROM calls WHERE stage = 'serve'")}
    assert len(judged) == len(set(judged)) and len(keys) == N  # no key judged twice across the kill
    assert len(judged) >= N - 1  # (a kill between the cache write and the ledger row leaves one unrecorded)
