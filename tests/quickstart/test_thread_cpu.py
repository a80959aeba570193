"""CPU seconds per lane: a thread's own work is counted in its lane (by thread name), the rest in `other`."""

from __future__ import annotations

import json
import threading
import time

from judgerl.quickstart.thread_cpu import ThreadCPU, lane_of


def spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_lanes_are_counted_by_thread_name(tmp_path):
    assert lane_of("MainThread") == lane_of("judgerl-model_0") == "policy"
    assert lane_of("judgerl-side-model_0") == lane_of("judgerl-quickstart-side") == "side"
    assert lane_of("judgerl-monitor-score_0") == lane_of("judgerl-monitor-model_0") == "scorer" and lane_of("asyncio_0") == "other"
    cpu = ThreadCPU(every=0.05)
    cpu.start()
    worked, done = threading.Event(), threading.Event()
    t = threading.Thread(target=lambda: (spin(0.4), worked.set(), done.wait(60)), name="judgerl-side-model_0")
    t.start()
    spin(0.2)
    # the side thread has done its work and is still alive when the result samples it, however loaded the machine is
    assert worked.wait(60)
    res = cpu.write(tmp_path / "cpu_lanes.json")
    done.set()
    t.join()
    assert json.loads((tmp_path / "cpu_lanes.json").read_text()) == res
    c = res["cpu_s"]
    assert 0.3 <= c["side"] <= 0.6 and 0.1 <= c["policy"] <= 0.5 and c["scorer"] == 0.0
    assert abs(sum(c.values()) - res["total_cpu_s"]) < 0.2
