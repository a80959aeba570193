"""Fault injection for the reward-server tests: a judge whose backend misbehaves on cue (fakes only here).

The backend answers `Score: 7` unless the response text holds a cue: BOOM raises, HANG never returns,
GARBAGE gives unparseable output, SLOW takes `slow_s`. It records every request it was given.
"""

from __future__ import annotations

import asyncio
import contextlib

from judgerl.judges import Judge, JudgeSpec
from judgerl.judges.spec import Verdict


class CueBackend:
    def __init__(self, slow_s: float = 1.0):
        self.seen: list = []
        self.calls = 0
        self.slow_s = slow_s

    async def run(self, requests):
        self.calls += 1
        self.seen += requests
        text = " ".join(r.responses[0] for r in requests)
        if "BOOM" in text:
            raise RuntimeError("backend exploded on a BOOM item")
        if "HANG" in text:
            await asyncio.sleep(3600)
        if "SLOW" in text:
            await asyncio.sleep(self.slow_s)
        return [Verdict(raw="lol no", valid=False) if "GARBAGE" in r.responses[0] else
                Verdict(label=7, expected=7.0, raw="Score: 7", valid=True, tokens_in=10, tokens_out=1)
                for r in requests]


def cue_service(tmp_path, **cfg):
    """(RewardService over a CueBackend judge, the backend)."""
    from judgerl.serve import RewardService, ServeConfig

    spec = JudgeSpec(name="cue", backend="openai", model="fake", cache=False, concurrency=16)
    backend = CueBackend()
    judge = Judge(spec, ledger=tmp_path / "ledger.sqlite", stage="serve", backend=backend)
    config = ServeConfig(judge=spec, run_dir=str(tmp_path), port=0, **cfg)
    return RewardService(config, judge=judge), backend


@contextlib.contextmanager
def cue_server(tmp_path, api_key=None, **cfg):
    from judgerl.serve.app import server_thread

    service, backend = cue_service(tmp_path, **cfg)
    with server_thread(service, api_key=api_key) as url:
        yield url, service, backend
