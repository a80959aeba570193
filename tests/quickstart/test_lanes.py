"""The quickstart's two lanes: the side lane runs beside the caller at one torch thread with its own judge-model
thread; the caller's threads (and the shared judge-model thread's) come back once the side lane is done; the side
lane's error reaches the caller."""

from __future__ import annotations

import threading

import pytest
import torch

from judgerl.judges.hf import _MODEL_THREAD, MODEL_EXECUTOR
from judgerl.quickstart.lanes import Lanes


def model_thread_count() -> int:
    return _MODEL_THREAD.submit(torch.get_num_threads).result()


@pytest.fixture
def threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    _MODEL_THREAD.submit(torch.set_num_threads, before).result()


def test_side_lane_at_one_thread_then_the_threads_come_back(threads_restored):
    seen, gate = {}, threading.Event()

    def side():
        ex = MODEL_EXECUTOR.get()
        seen.update(side=torch.get_num_threads(), own=ex is not None and ex is not _MODEL_THREAD,
                    executor=ex.submit(torch.get_num_threads).result())
        gate.wait(10)

    lanes = Lanes(2)
    lanes.side(side)
    assert torch.get_num_threads() == 1 and model_thread_count() == 1
    lanes.sync()  # the side lane is still running: one thread each
    assert torch.get_num_threads() == 1 and model_thread_count() == 1
    gate.set()
    lanes.join()
    assert torch.get_num_threads() == 2 and model_thread_count() == 2
    assert seen == {"side": 1, "own": True, "executor": 1}
    assert MODEL_EXECUTOR.get() is None  # the caller's judges keep the shared model thread


def test_the_side_lanes_error_is_raised_by_join(threads_restored):
    def side():
        raise ValueError("side lane broke")

    lanes = Lanes(2)
    lanes.side(side)
    with pytest.raises(ValueError, match="side lane broke"):
        lanes.join()
    assert torch.get_num_threads() == 2


def test_monitor_scoring_runs_on_its_own_executor_and_holds_the_policy_lane_at_one_thread(threads_restored):
    seen, gate, side_gate = {}, threading.Event(), threading.Event()

    def side():
        seen["side_executor"] = MODEL_EXECUTOR.get()
        side_gate.wait(10)

    lanes = Lanes(2)
    lanes.side(side)
    scorer = lanes.scorer()
    assert lanes.scorer() is scorer  # one scorer for every policy run

    def job():
        seen["job_executor"] = MODEL_EXECUTOR.get()
        seen["job_threads"] = torch.get_num_threads()
        gate.wait(10)

    fut = scorer.submit(job)
    side_gate.set()
    lanes.done.wait(10)
    lanes.sync()  # the side stages are done, a scoring job is not: one thread
    assert scorer.busy() and torch.get_num_threads() == 1 and model_thread_count() == 1
    gate.set()
    fut.result(10)
    lanes.sync()
    assert torch.get_num_threads() == 2 and model_thread_count() == 2
    ex = seen["job_executor"]
    assert ex is not None and ex is not seen["side_executor"] and ex is not _MODEL_THREAD
    assert seen["job_threads"] == 1 and ex.submit(torch.get_num_threads).result() == 1
    lanes.join()
    assert lanes.executor is None and MODEL_EXECUTOR.get() is None
