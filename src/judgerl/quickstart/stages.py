"""Stage bookkeeping (skip what is done, resume what was interrupted) and a quiet console.

Every stage writes `stage-<name>.json` (hash of its resolved config and of the stages it depends on)
next to its outputs and is skipped when that hash matches. A changed config clears the stage's folder
and reruns it (and, through the hashes, everything downstream).

While a stage runs, the libraries' own chatter goes to <run_dir>/train.log instead of the console:
TRL's per-step dicts (stdout), transformers/datasets/hub progress bars ("Loading weights", "Writing
model shards"), their logger warnings and Python warnings. The console gets one line per stage.

After every stage the memory it used is given back (`free_memory`): the shared models no other stage holds are
forgotten (model_loader.release_unused; the next stage loads the models it needs, ~1 s each for SmolLM2 from the
page cache, and one the other lane is using stays shared), reference cycles are collected
(a TRL trainer and its callbacks hold the policy, its optimizer state and the judges) and freed heap pages are
returned to the OS. Without it every judge and gold model of earlier stages stayed loaded beside the next policy
run. The stage record keeps its wall and CPU seconds (the process's, all threads: while the quickstart's two lanes
run side by side they include the other lane's; on a shared machine the CPU seconds are the figure that does not
stretch with the load), the process's peak RSS so far and its RSS after the stage was freed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

from judgerl.study.stages import config_hash


class _Routed:
    """sys.stdout while quiet: library prints go to the log file, the stage lines (`on_console`) to the console."""

    def __init__(self, log, console):
        self.log, self.console = log, console

    def _to(self):
        return self.console if getattr(_CONSOLE, "on", False) else self.log

    def write(self, s):
        return self._to().write(s)

    def flush(self):
        self._to().flush()

    def __getattr__(self, name):
        return getattr(self._to(), name)


_CONSOLE = threading.local()
_QUIET = {"depth": 0, "undo": None}
_QUIET_LOCK = threading.RLock()


@contextlib.contextmanager
def on_console():
    """Within `quiet`, this thread's prints (the stage lines) go to the console."""
    was = getattr(_CONSOLE, "on", False)
    _CONSOLE.on = True
    try:
        yield
    finally:
        _CONSOLE.on = was


@contextlib.contextmanager
def quiet(log_path: Path):
    """Send library output (stdout prints, progress bars, logger and Python warnings) to `log_path`. Re-entrant and
    shared by threads (the quickstart's two lanes): the first to enter sets it up, the last to leave undoes it."""
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            stack = contextlib.ExitStack()
            f = stack.enter_context(_quiet(log_path))
            _QUIET["undo"] = stack
            _QUIET["file"] = f
        _QUIET["depth"] += 1
        f = _QUIET["file"]
    try:
        yield f
    finally:
        with _QUIET_LOCK:
            _QUIET["depth"] -= 1
            if _QUIET["depth"] == 0:
                _QUIET.pop("file")
                _QUIET.pop("undo").close()


@contextlib.contextmanager
def _quiet(log_path: Path):
    import transformers

    log_path.parent.mkdir(parents=True, exist_ok=True)
    tf_log = transformers.utils.logging
    verbosity = tf_log.get_verbosity()
    with open(log_path, "a", encoding="utf-8") as f, warnings.catch_warnings():
        console = sys.stdout
        sys.stdout = _Routed(f, console)
        handler = logging.StreamHandler(f)
        libs = [logging.getLogger(n) for n in ("transformers", "trl", "datasets", "accelerate", "peft", "huggingface_hub")]
        saved = [(lg, lg.propagate, list(lg.handlers)) for lg in libs]
        warnings.showwarning = lambda msg, cat, fn, ln, file=None, line=None: f.write(
            f"{cat.__name__}: {msg} ({fn}:{ln})\n")
        tf_log.set_verbosity_warning()
        tf_log.disable_progress_bar()
        bars = _hub_bars(False)
        for lg in libs:
            lg.handlers, lg.propagate = [handler], False
        try:
            yield f
        finally:
            sys.stdout = console
            for lg, prop, handlers in saved:
                lg.handlers, lg.propagate = handlers, prop
            tf_log.set_verbosity(verbosity)
            tf_log.enable_progress_bar()
            _hub_bars(bars)


def rss_gb() -> tuple[float, float | None]:
    """(peak RSS of this process so far, current RSS) in GB; current is None where /proc is missing."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux
    try:
        with open("/proc/self/statm") as f:
            import os

            cur = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except OSError:
        cur = None
    return round(peak, 2), (round(cur, 2) if cur is not None else None)


def free_memory() -> None:
    """Forget the shared models no other stage is using (model_loader.release_unused: one the other lane still holds
    stays shared), collect reference cycles, give freed heap pages back to the OS (glibc)."""
    import gc

    from judgerl import model_loader

    model_loader.release_unused()
    gc.collect()
    model_loader.trim_heap()


def _hub_bars(on: bool) -> bool:
    """Switch huggingface_hub's and datasets' progress bars; returns whether they were on."""
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
        was = not are_progress_bars_disabled()
        (enable_progress_bars if on else disable_progress_bars)()
    except ImportError:  # pragma: no cover - hub is a transformers dependency
        was = False
    try:
        import datasets

        (datasets.enable_progress_bars if on else datasets.disable_progress_bars)()
    except ImportError:  # pragma: no cover
        pass
    return was


class Stages:
    """Run stages, skipping those whose record says done with the same hash. Two threads may run stages at once (the
    quickstart's lanes): each line is numbered when its stage ends."""

    def __init__(self, log: Callable[[str], None], log_path: Path, total: int):
        self.log, self.log_path, self.total = log, log_path, total
        self.hashes: dict[str, str] = {}
        self.status: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def _line(self, name: str, status: str, text: str) -> None:
        with self._lock, on_console():
            self.status[name] = status
            self.log(f"[{len(self.status)}/{self.total}] {name}{text}")

    def run(self, name: str, folder: Path, config: dict, deps: list[str], fn: Callable[[bool], str | None],
            owns_folder: bool = True) -> None:
        """`fn(resume)` does the stage and returns its one-line result for the console."""
        h = config_hash({"stage": name, "config": config, "deps": [self.hashes[d] for d in deps]})
        rec_path = folder / f"stage-{name}.json"
        rec = json.loads(rec_path.read_text()) if rec_path.is_file() else None
        self.hashes[name] = h
        if rec and rec["hash"] == h and rec["status"] == "done":
            self._line(name, "skipped", f": up to date, skipped ({rec.get('result') or folder})")
            return
        resume = bool(rec and rec["hash"] == h)  # same config, interrupted: the stage may continue
        if rec and not resume and owns_folder and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        t0, c0 = time.perf_counter(), time.process_time()
        rec = {"stage": name, "hash": h, "status": "running", "deps": deps, "config": config}
        rec_path.write_text(json.dumps(rec, indent=2, default=str))
        with quiet(self.log_path):
            result = fn(resume)
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak, _ = rss_gb()
        free_memory()
        rec.update(status="done", seconds=round(sec, 1), cpu_seconds=round(cpu, 1), finished=time.time(),
                   result=result, peak_rss_gb=peak, rss_after_gb=rss_gb()[1])
        rec_path.write_text(json.dumps(rec, indent=2, default=str))
        self.seconds[name] = sec
        self._line(name, "ran", f" ({sec:.0f} s): {result or 'done'}")
