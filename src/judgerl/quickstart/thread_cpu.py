"""CPU seconds per lane of the quickstart (cpu_lanes.json in the run folder), read from /proc/self/task.

The quickstart's wall time on an idle 2-core machine is set by its busiest lane, not by its CPU total; on a shared
machine the lanes' CPU seconds are the figure that does not stretch with the load. A sampler thread reads every
Python thread's user+system ticks once a second (a thread that ends loses at most its last second) and sums them by
lane: policy = the calling thread (policy runs: rollouts, training, monitor answers) and the judge-model thread
(its rewards); side = the side lane and its model executor (labels, agreement, probes); scorer = the asynchronous
monitor scorer's thread and its model executor (the monitor's judge and gold scoring); other = the rest of
the process's CPU (OpenMP workers of two-thread phases, asyncio worker threads, tokenizer pools). Linux only
(elsewhere the file says so).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

LANES = (("policy", ("MainThread", "judgerl-model_")), ("side", ("judgerl-quickstart-side", "judgerl-side-model")),
         ("scorer", ("judgerl-monitor-",)))


def lane_of(name: str) -> str:
    for lane, prefixes in LANES:
        if any(name.startswith(p) for p in prefixes):
            return lane
    return "other"


class ThreadCPU(threading.Thread):
    def __init__(self, every: float = 1.0):
        super().__init__(daemon=True, name="judgerl-thread-cpu")
        self.every, self.ticks, self.stop_event = every, {}, threading.Event()
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.sample()
        self.base = {tid: ticks for tid, (_, ticks) in self.ticks.items()}  # before the run (imports, set-up)

    def sample(self) -> None:
        for t in threading.enumerate():
            try:
                with open(f"/proc/self/task/{t.native_id}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError, TypeError):
                continue
            self.ticks[t.native_id] = (t.name, int(fields[11]) + int(fields[12]))  # utime, stime

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            self.sample()

    def result(self) -> dict:
        self.sample()
        self.stop_event.set()
        out = {lane: 0.0 for lane, _ in LANES}
        for tid, (name, ticks) in self.ticks.items():
            lane = lane_of(name)
            if lane != "other":
                out[lane] += (ticks - self.base.get(tid, 0)) / self.hz
        total = time.process_time() - self.c0
        out["other"] = total - sum(out.values())
        return {"cpu_s": {k: round(v, 1) for k, v in out.items()}, "total_cpu_s": round(total, 1),
                "wall_s": round(time.perf_counter() - self.t0, 1), "sample_every_s": self.every}

    def write(self, path: Path) -> dict:
        res = self.result() if os.path.isdir("/proc/self/task") else {"unavailable": "no /proc/self/task"}
        path.write_text(json.dumps(res, indent=2), encoding="utf-8")
        return res
