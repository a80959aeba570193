"""Counters behind `/metrics`: calls, failures, latency, tokens (JSON, or Prometheus text format)."""

from __future__ import annotations

import math
import time
from collections import Counter, deque


class Metrics:
    def __init__(self, window: int = 2048):
        self.started = time.time()
        self.counts: Counter = Counter()
        self.latency_s: deque[float] = deque(maxlen=window)  # per answered request, last `window`

    def request(self, endpoint: str, status: int, seconds: float, items: int = 0) -> None:
        self.counts[f"requests_total|{endpoint}|{status}"] += 1
        if status == 200:
            self.counts["items_total"] += items
            self.latency_s.append(seconds)

    def judged(self, verdicts: list, judge_counts: dict, seconds: float) -> None:
        """One scored batch: its verdicts and the reward callable's judge/* counts."""
        c = self.counts
        c["batches_total"] += 1
        c["judge_seconds_total"] += seconds
        c["verdicts_total"] += len(verdicts)
        c["cache_hits_total"] += sum(v.cached for v in verdicts)
        c["judge_failures_total"] += sum(v.failed for v in verdicts)
        c["invalid_verdicts_total"] += sum((not v.valid) and not v.failed for v in verdicts)
        c["tokens_in_total"] += sum(v.tokens_in for v in verdicts)
        c["tokens_out_total"] += sum(v.tokens_out for v in verdicts)
        c["unscored_items_total"] += judge_counts.get("judge/dropped", 0)

    def snapshot(self, live: dict) -> dict:
        lat = sorted(self.latency_s)

        def q(p):  # nearest rank: the smallest sample with at least p of the samples at or below it
            return lat[max(0, math.ceil(p * len(lat)) - 1)] if lat else None

        requests: dict = {}
        for k, v in self.counts.items():
            if k.startswith("requests_total|"):
                _, ep, st = k.split("|")
                requests.setdefault(ep, {})[st] = v
        plain = {k: v for k, v in self.counts.items() if "|" not in k}
        return {"uptime_s": time.time() - self.started, "requests": requests, **plain,
                "latency_s": {"n": len(lat), "mean": sum(lat) / len(lat) if lat else None, "p50": q(0.5),
                              "p95": q(0.95), "p99": q(0.99), "max": lat[-1] if lat else None}, **live}

    def prometheus(self, live: dict) -> str:
        s = self.snapshot(live)
        out = []
        for ep, by in s["requests"].items():
            out += [f'judgerl_serve_requests_total{{endpoint="{ep}",status="{st}"}} {n}' for st, n in by.items()]
        for k, v in s.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(f"judgerl_serve_{k} {v}")
        for k, v in s["latency_s"].items():
            if v is not None and k != "n":
                out.append(f'judgerl_serve_latency_seconds{{stat="{k}"}} {v}')
        return "\n".join(out) + "\n"
