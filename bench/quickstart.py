"""Benchmark: `judgerl quickstart` wall time, CPU time, peak RSS and the split per stage, on this machine.

Runs the quickstart as a child process into a fresh run folder (models already fetched) and records:
wall seconds; the child's user+sys CPU seconds; its peak RSS (ru_maxrss of the waited-for children: the
largest single process); the per-stage seconds and RSS (peak so far, after the stage) from the stage
records; and the machine's 1-minute load average sampled every 5 s (other processes on a shared machine
stretch the wall time: the CPU seconds and the load are what tell an idle-machine figure from a busy one).
`--repeat N` runs it N times.
`--make` instead times `make quickstart` in a fresh `git clone` of this checkout (venv, pinned install,
model fetch, then the loop).

    python bench/quickstart.py [--scale full] [--repeat 1] [--nice 0] [--out bench/quickstart_cpu.json] [--set k=v] [--keep]
    python bench/quickstart.py --make --out bench/quickstart_make_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class LoadSampler(threading.Thread):
    def __init__(self, every: float = 5.0):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()

    def run(self):
        while not self.stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])


def timed(cmd: list[str], cwd: Path, env: dict, nice: int, log: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sampler = LoadSampler()
    sampler.start()
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        rc = subprocess.run((["nice", "-n", str(nice)] if nice else []) + cmd, cwd=cwd, env=env, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - t0
    sampler.stop.set()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load = sampler.samples or [os.getloadavg()[0]]
    return {"rc": rc, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "peak_rss_gb": round(after.ru_maxrss * 1024 / 1e9, 2),  # KiB
            "load_1min": {"mean": round(sum(load) / len(load), 2), "max": round(max(load), 2), "samples": len(load)},
            "idle_estimate_s": round(cpu / os.cpu_count(), 1)}


def stage_split(run_dir: Path) -> dict:
    """stage -> {s: wall seconds, cpu_s: its CPU seconds, peak_rss_gb: the process's peak so far, rss_after_gb:
    after the stage was freed}."""
    recs = [json.loads(p.read_text()) for p in run_dir.rglob("stage-*.json")]
    return {r["stage"]: {"s": r.get("seconds"), "cpu_s": r.get("cpu_seconds"), "peak_rss_gb": r.get("peak_rss_gb"),
                         "rss_after_gb": r.get("rss_after_gb")} for r in sorted(recs, key=lambda r: r.get("finished") or 0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="full")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--nice", type=int, default=0)
    ap.add_argument("--make", action="store_true", help="time `make quickstart` in a fresh clone")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--out", default="bench/quickstart_cpu.json")
    ap.add_argument("--keep", action="store_true", help="keep the run folder (its ledgers time every judge)")
    a = ap.parse_args()
    env = dict(os.environ)
    if not a.make:  # this checkout's code, whatever the venv's editable install points at
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    runs = []
    for i in range(a.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="qs-bench-"))
        try:
            if a.make:
                subprocess.run(["git", "clone", "-q", str(REPO), str(tmp / "clone")], check=True)
                args = " ".join(["--scale", a.scale] + [f"--set {s}" for s in a.sets])
                r = timed(["make", "quickstart", f"QUICKSTART_ARGS={args}"], tmp / "clone", env, a.nice, tmp / "log.txt")
                run_dir = tmp / "clone" / "runs" / "quickstart"
            else:
                run_dir = tmp / "qs"
                cmd = [str(Path(sys.executable).parent / "judgerl"), "quickstart", "--scale", a.scale, "--run-dir",
                       str(run_dir)] + [x for s in a.sets for x in ("--set", s)]
                r = timed(cmd, REPO, env, a.nice, tmp / "log.txt")
            r["stages_s"] = stage_split(run_dir)
            lanes = run_dir / "cpu_lanes.json"  # CPU seconds per lane (quickstart/thread_cpu.py)
            r["lanes"] = json.loads(lanes.read_text()) if lanes.is_file() else None
            log = (tmp / "log.txt").read_text(encoding="utf-8", errors="replace")
            r["summary"] = [x.strip() for x in log.split("\nSummary\n", 1)[-1].splitlines() if x.strip()][:5]
            r["console_lines"] = log.count("\n")
            runs.append(r)
            print(json.dumps(r, indent=2), flush=True)
            if r["rc"] != 0:
                print(log[-3000:], file=sys.stderr)
                break
        finally:
            if a.keep:
                print(f"kept {tmp}", flush=True)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    out = {"bench": "quickstart", "mode": "make quickstart (fresh clone)" if a.make else "judgerl quickstart",
           "scale": a.scale, "sets": a.sets, "nice": a.nice, "date": time.strftime("%Y-%m-%d %H:%M"),
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
           "runs": runs}
    Path(a.out).write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
