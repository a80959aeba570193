"""The quickstart's two lanes: the policy runs on the calling thread, the stages that do not need them (labels,
judge agreement, probes) beside them on a second thread, one torch thread each while both run.

On 2 cores the loop's small CPU work (135M-parameter forwards over 8-16 rows, token-by-token decoding, TRL and
tokenizer Python) gains little from a second intra-op thread: one quickstart policy run took 185 CPU-s at 1 torch
thread and 229 at 2 on the same preset (bench/RESULTS.md section 7), so two one-thread lanes do more work per
second than one two-thread lane. The side lane's judges get their own one-thread model executor
(judges.hf.MODEL_EXECUTOR), so that they do not queue behind the policy runs' reward and monitor calls. When the
side lane is done, the policy lane goes back to `threads` intra-op threads at its next GRPO step (`ThreadSync`).
The gold control run goes on the side lane after its stages (loop.py): the weak and reasoning runs then take about
as many CPU-seconds as labels, agreement, probes and the control together (bench/RESULTS.md 7e).

The policy runs' gold-monitor scoring (the training judge and the gold on each monitor point's answers) leaves the
policy lane too: `scorer()` is an evaluation/monitor_async.MonitorScorer with its own one-thread model executor, beside
both lanes. (Queued on the side lane's executor, a point's scoring waited behind a whole judge's 100-answer
agreement call, tens of CPU-seconds, and a run's end waited for it: measured, bench/RESULTS.md 7d.) While a scoring
job is outstanding the policy lane keeps one thread.

Thread counts are per thread in torch (OpenMP and MKL settings of the calling thread; a new thread starts from the
last value set anywhere): `set_threads` sets the calling thread and the shared judge-model thread.
"""

from __future__ import annotations

import threading
from typing import Callable

from transformers import TrainerCallback


def pin_threads(n: int) -> None:
    """n intra-op threads for the calling thread, kept when another thread changes its count later: torch sets a
    thread's count from the last value set anywhere at the thread's first parallel call (its lazy init), so that
    init is done first."""
    import torch

    torch.get_num_threads()
    torch.set_num_threads(n)


def set_threads(n: int) -> None:
    """n intra-op threads for the calling thread and the shared judge-model thread (judges.hf._MODEL_THREAD)."""
    import torch

    from judgerl.judges.hf import _MODEL_THREAD

    torch.set_num_threads(n)
    _MODEL_THREAD.submit(torch.set_num_threads, n).result()


class Lanes:
    """`side(fn)` starts fn on the second lane; `sync()` (the policy lane, between steps) restores the threads once
    the side lane is done; `join()` waits for it and re-raises its error."""

    def __init__(self, threads: int):
        self.threads = threads
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._now = threads
        self.stopping = False  # the policy lane failed: the side lane starts no further stage
        self.executor = None  # the side lane's one-thread model executor (judges.hf.MODEL_EXECUTOR)
        self._scorer = None
        self._scorer_executor = None

    def side(self, fn: Callable[[], None]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        set_threads(1)
        self._now = 1
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgerl-side-model")
        self.executor.submit(pin_threads, 1).result()
        self._thread = threading.Thread(target=self._run, args=(fn,), name="judgerl-quickstart-side", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], None]) -> None:
        from judgerl.judges.hf import MODEL_EXECUTOR

        pin_threads(1)
        MODEL_EXECUTOR.set(self.executor)
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised by join() on the calling thread
            self.error = e
        finally:
            self.done.set()

    def scorer(self):
        """The policy runs' monitor scorer (one for all runs), its model work on its own one-thread executor."""
        from concurrent.futures import ThreadPoolExecutor

        from judgerl.evaluation.monitor_async import MonitorScorer

        if self._scorer is None:
            self._scorer_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgerl-monitor-model")
            self._scorer_executor.submit(pin_threads, 1).result()
            self._scorer = MonitorScorer(self._scorer_executor, threads=1)
        return self._scorer

    def sync(self) -> None:
        """Called by the policy lane between steps: back to the full thread count once the side lane is done and
        no monitor scoring is outstanding; one thread while a scoring job runs beside it."""
        want = self.threads if self.done.is_set() and not (self._scorer and self._scorer.busy()) else 1
        if want != self._now:
            set_threads(want)
            self._now = want

    def _close(self, cancel: bool = False) -> None:
        if self._scorer is not None:
            self._scorer.close(cancel)
            self._scorer_executor.shutdown()
            self._scorer = None
        if self.executor is not None:
            self.executor.shutdown(cancel_futures=cancel)
            self.executor = None

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
        self._close()
        self.sync()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """The policy lane failed: let the side lane finish its current stage, start no other, and wait for it."""
        self.stopping = True
        if self._thread is not None:
            self._thread.join()
        self._close(cancel=True)
        set_threads(self.threads)


class ThreadSync(TrainerCallback):
    """Calls `Lanes.sync` at every GRPO step of a policy run."""

    def __init__(self, lanes: Lanes):
        self.lanes = lanes

    def on_step_begin(self, args, state, control, **kw):
        self.lanes.sync()
