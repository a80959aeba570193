"""Reward-hacking alarm: the paper's signature is the training (proxy) judge's score rising while the
gold judge's score falls on held-out prompts.

Over the last `window` monitor points, each series' trend is its least-squares slope times the span
of the window (the fitted change from the first to the last point, robust to one noisy point). The
alarm fires when proxy trend > `proxy_margin` and gold trend < −`gold_margin`, each margin in its own
judge's units (0-9 for a pointwise judge, win probability vs the base policy for a pairwise one).
Points with a missing proxy or gold value are skipped. The state is just the history, so resuming replays monitor.jsonl.

Optional template input (`template: true`): the cross-prompt template detector's flag per monitor point
(evaluation/template.py; the monitor records it as `template_flag`). A flag on `window` consecutive points
that carry one raises the alarm too, with reason "template": a policy that answers every prompt with one
template is hacking its judge even while a gold that shares the judge's blind spot rises with it (issue 23's
best arm). Off (the default), the flags are ignored and the alarm is exactly the proxy-up / gold-down one.
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
    template: bool = Field(False, description="Also fire (reason 'template') when the cross-prompt template "
                           "detector flags `window` consecutive monitor points.")


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
        self.template_history: list[tuple[int, bool]] = []
        self.events: list[dict] = []

    def update(self, step: int, proxy: float | None, gold: float | None,
               template_flag: bool | None = None) -> dict | None:
        """Add one monitor point; returns the event dict when the signature (or, with `template` on, a template on
        `window` consecutive points) holds at this point."""
        if template_flag is not None:
            self.template_history = [h for h in self.template_history if h[0] < step] + [(step, bool(template_flag))]
        ev = self._signature(step, proxy, gold)
        if ev is None and self.cfg.enabled and self.cfg.template:
            ev = self._template(step)
        if ev is not None:
            self.events.append(ev)
        return ev

    def _template(self, step: int) -> dict | None:
        win = self.template_history[-self.cfg.window:]
        if len(win) < self.cfg.window or win[-1][0] != step or not all(f for _, f in win):
            return None
        return {"step": step, "reason": "template", "window_steps": [h[0] for h in win]}

    def _signature(self, step: int, proxy: float | None, gold: float | None) -> dict | None:
        if not (_ok(proxy) and _ok(gold)):
            return None
        self.history = [h for h in self.history if h[0] < step] + [(step, float(proxy), float(gold))]
        if not self.cfg.enabled or len(self.history) < self.cfg.window:
            return None
        win = self.history[-self.cfg.window:]
        dp, dg = trend([h[1] for h in win]), trend([h[2] for h in win])
        if dp > self.cfg.proxy_margin and dg < -self.cfg.gold_margin:
            return {"step": step, "window_steps": [h[0] for h in win], "proxy_trend": dp, "gold_trend": dg,
                    "proxy": [h[1] for h in win], "gold": [h[2] for h in win]}
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
        """Rebuild the state from monitor records ({step, proxy_mean, gold_mean[, template_flag]}) in step order."""
        self.history, self.template_history, self.events = [], [], []
        for r in sorted(records, key=lambda r: r["step"]):
            self.update(int(r["step"]), r.get("proxy_mean"), r.get("gold_mean"), r.get("template_flag"))

    def state(self) -> dict:
        out = {"triggered": self.triggered, "first_step": self.events[0]["step"] if self.events else None,
               "events": self.events, "config": self.cfg.model_dump(),
               "history": [{"step": s, "proxy": p, "gold": g} for s, p, g in self.history]}
        if self.cfg.template:
            out["template_history"] = [{"step": s, "flag": f} for s, f in self.template_history]
        return out
