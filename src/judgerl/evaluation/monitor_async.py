"""Scoring the gold monitor's answers off the training thread (GoldMonitor.scorer).

A monitor point is two jobs: the policy answers the held-out prompts (it needs the policy at that step, so it stays
on the training thread), then the training judge and the gold score those answers (they need only the answers).
On 2 CPU cores the second job is ~16 of a monitor point's ~28 CPU-seconds in the quickstart's weak-judge run
(bench/RESULTS.md 7c). `MonitorScorer` runs it on one worker thread, in submission order, so that the
training thread goes on to its next step while the answers are scored; the monitor's records, samples, alarm and
flagged files are the same as the synchronous pass writes on the same answers (each job is the synchronous pass's
scoring code, run in step order), they only land later. The run's `on_train_end` waits for every outstanding job.

`model_executor`: where the judges' model work runs (judges.hf.MODEL_EXECUTOR, which the hf and rm backends
use when it is set): the quickstart hands in a one-thread executor of the scorer's own (quickstart/lanes.py), so the
monitor's judge forwards neither queue behind the policy's reward calls nor behind the side lane's judge calls.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable


class MonitorScorer:
    """One worker thread at `threads` torch threads; `submit(fn)` -> Future, run in order; `busy()` while a job
    is queued or running; `close()` waits for them and stops the worker."""

    def __init__(self, model_executor: ThreadPoolExecutor | None = None, threads: int | None = 1):
        self.model_executor, self.threads = model_executor, threads
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgerl-monitor-score",
                                        initializer=self._init)
        self._open = 0
        self._lock = threading.Lock()

    def _init(self) -> None:
        import torch

        from judgerl.judges.hf import MODEL_EXECUTOR

        if self.threads:
            torch.get_num_threads()  # torch's lazy per-thread init first, else it resets the count at the first op
            torch.set_num_threads(self.threads)
        if self.model_executor is not None:
            MODEL_EXECUTOR.set(self.model_executor)  # this worker thread's context: its judges' model calls go there

    def submit(self, fn: Callable[[], object]) -> Future:
        def job():
            try:
                return fn()
            finally:  # before the Future completes: a caller that saw the result sees the scorer idle
                with self._lock:
                    self._open -= 1

        with self._lock:
            self._open += 1
        return self._pool.submit(job)

    def busy(self) -> bool:
        with self._lock:
            return self._open > 0

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)
