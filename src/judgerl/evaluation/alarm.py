"""Reward-hacking alarm: the paper's signature is the training (proxy) judge's score rising while the
gold judge's score falls on held-out prompts.

Over the last `window` monitor points, each series' trend is its least-squares slope times the span
of the window (the fitted change from the first to the last point, robust to one noisy point). The
alarm fires when proxy trend > `proxy_margin` and gold trend < −`gold_margin`, each margin in its own
judge's units (0-9 for a pointwise judge, win probability vs the base policy for a pairwise one).
Points with a missing proxy or gold value are skipped. The state is just the history, so resuming replays monitor.jsonl.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class AlarmConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(True, description="Watch the monitor curves for reward hacking.")
    window: int = Field(3, ge=2, description="Monitor points the trends are fitted over.")
    proxy_margin: float = Field(0.1, ge=0.0, description="Minimum rise of the proxy score over the window.")
    gold_margin: float = Field(0.1, ge=0.0, description="Minimum fall of the gold score over the window.")
    on_trigger: Literal["log", "stop"] = Field("log", description="log: write alarm.json + flagged/; "
                                               "stop: also stop training.")
    keep_best_gold: bool = Field(False, description="Save the policy at each new best gold score (best_gold/).")
    max_flagged: int = Field(20, ge=1, description="Samples written to flagged/step_XXXX.jsonl on a trigger.")


def trend(values: list[float]) -> float:
    """Fitted change over the series (least-squares slope × (n − 1)); 0 for fewer than 2 points."""
    n = len(values)
    if n < 2:
        return 0.0
    xm = (n - 1) / 2
    ym = sum(values) / n
    sxx = sum((i - xm) ** 2 for i in range(n))
    sxy = sum((i - xm) * (y - ym) for i, y in enumerate(values))
    return sxy / sxx * (n - 1)


def _ok(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


class HackingAlarm:
    def __init__(self, cfg: AlarmConfig | None = None):
        self.cfg = cfg or AlarmConfig()
        self.history: list[tuple[int, float, float]] = []
        self.events: list[dict] = []

    def update(self, step: int, proxy: float | None, gold: float | None) -> dict | None:
        """Add one monitor point; returns the event dict when the signature holds at this point."""
        if not (_ok(proxy) and _ok(gold)):
            return None
        self.history = [h for h in self.history if h[0] < step] + [(step, float(proxy), float(gold))]
        if not self.cfg.enabled or len(self.history) < self.cfg.window:
            return None
        win = self.history[-self.cfg.window:]
        dp, dg = trend([h[1] for h in win]), trend([h[2] for h in win])
        if dp > self.cfg.proxy_margin and dg < -self.cfg.gold_margin:
            ev = {"step": step, "window_steps": [h[0] for h in win], "proxy_trend": dp, "gold_trend": dg,
                  "proxy": [h[1] for h in win], "gold": [h[2] for h in win]}
            self.events.append(ev)
            return ev
        return None

    @property
    def triggered(self) -> bool:
        return bool(self.events)

    def best_gold(self) -> tuple[int, float] | None:
        if not self.history:
            return None
        s, _, g = max(self.history, key=lambda h: (h[2], -h[0]))
        return s, g

    def replay(self, records: list[dict]) -> None:
        """Rebuild the state from monitor records ({step, proxy_mean, gold_mean}) in step order."""
        self.history, self.events = [], []
        for r in sorted(records, key=lambda r: r["step"]):
            self.update(int(r["step"]), r.get("proxy_mean"), r.get("gold_mean"))

    def state(self) -> dict:
        return {"triggered": self.triggered, "first_step": self.events[0]["step"] if self.events else None,
                "events": self.events, "config": self.cfg.model_dump(),
                "history": [{"step": s, "proxy": p, "gold": g} for s, p, g in self.history]}
