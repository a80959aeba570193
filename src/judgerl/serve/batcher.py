"""Cross-request micro-batching: requests that arrive together are judged in one call.

Each request is a job of whole groups. The worker takes the first queued job, waits up to `max_wait_s`
for more, and scores every job it collected (up to `max_items`, never splitting a job) in one call of
the scoring function. While a batch is being judged, new jobs queue up and form the next batch, so a
loaded server batches even with `max_wait_s = 0`. `close()` stops intake and finishes what is queued.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class _Job:
    groups: list
    items: int
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class Closed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


class MicroBatcher:
    def __init__(self, score_fn, max_items: int = 64, max_wait_s: float = 0.005):
        self.score_fn = score_fn  # async (list of groups) -> None, fills the groups in place
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.closing = False
        self.batches = 0
        self.batch_items_max = 0
        self.busy = False
        self._held: _Job | None = None  # a job that did not fit the previous batch
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="judgerl-batcher")

    async def submit(self, groups: list, items: int) -> None:
        """Queue whole groups; returns once they are scored (re-raises the scorer's exception)."""
        if self.closing:
            raise Closed("the reward server is shutting down")
        self.start()
        job = _Job(groups, items, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        await job.future

    @property
    def queued(self) -> int:
        return self.queue.qsize() + (self._held is not None)

    async def _next(self, timeout: float | None) -> _Job | None:
        if self._held is not None:
            job, self._held = self._held, None
            return job
        if timeout is None:
            return await self.queue.get()
        if timeout <= 0:
            return self.queue.get_nowait() if not self.queue.empty() else None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _collect(self) -> list[_Job]:
        first = await self._next(None)
        while first.future.done():  # its request gave up (timeout, disconnect): not judged
            first = await self._next(None)
        batch, n = [first], first.items
        deadline = time.perf_counter() + self.max_wait_s
        while n < self.max_items:
            job = await self._next(deadline - time.perf_counter())
            if job is None:
                break
            if job.future.done():
                continue
            if n + job.items > self.max_items:
                self._held = job
                break
            batch.append(job)
            n += job.items
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            self.busy = True
            try:
                groups = [g for job in batch for g in job.groups]
                await self.score_fn(groups)
            except asyncio.CancelledError:
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(Closed("the reward server shut down while judging this request"))
                raise
            except Exception as e:  # noqa: BLE001 - handed to every waiting request
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)
            else:
                for job in batch:
                    if not job.future.done():
                        job.future.set_result(None)
            finally:
                self.busy = False
                self.batches += 1
                self.batch_items_max = max(self.batch_items_max, sum(j.items for j in batch))

    async def close(self, timeout: float | None = None) -> int:
        """Stop intake, let queued jobs finish (up to `timeout`), then stop; returns jobs refused at the end."""
        self.closing = True
        deadline = None if timeout is None else time.perf_counter() + timeout
        while (self.queued or self.busy) and (deadline is None or time.perf_counter() < deadline):
            await asyncio.sleep(0.01)
        refused = 0
        for job in ([self._held] if self._held else []) + [self.queue.get_nowait() for _ in range(self.queue.qsize())]:
            if not job.future.done():
                job.future.set_exception(Closed("the reward server shut down before judging this request"))
                refused += 1
        self._held = None
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        return refused
