"""The study's resumable stages: each writes stage-<name>.json with a hash of its config and of the stages it depends
on, and is skipped when that record says done with the same hash (study/run.py's docstring lists the stages)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Callable

from judgerl import JudgerlError


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stale_verdicts(judge_folder: Path) -> None:
    """A judge trained (again) gets a fresh evaluation: its eval/ folder (verdicts, alpha) is of the old weights.
    (The verdict cache's key holds the weights too since JudgeSpec.fingerprint hashes a local model's weight files.)"""
    shutil.rmtree(judge_folder / "eval", ignore_errors=True)


def last_done(rec: dict | None) -> dict | None:
    """The last finished record of a stage: itself when done, else the one a re-run kept as `previous` (without its
    own `previous`)."""
    if not rec:
        return None
    if rec.get("status") == "done":
        return {k: v for k, v in rec.items() if k != "previous"}
    return rec.get("previous")


class StageRunner:
    """Runs the selected stages whose record is not done; checks that unselected dependencies are done."""

    def __init__(self, log: Callable[[str], None], selected: set[str] | None = None):
        self.log, self.selected = log, selected
        self.hashes: dict[str, str] = {}
        self.done: dict[str, dict] = {}

    def run(self, name: str, folder: Path, config: dict, deps: list[str], fn: Callable[[], dict],
            owns_folder: bool = True) -> dict | None:
        h = config_hash({"stage": name, "config": config, "deps": [self.hashes.get(d) for d in deps]})
        self.hashes[name] = h
        rec_path = folder / f"stage-{name}.json"
        rec = json.loads(rec_path.read_text()) if rec_path.is_file() else None
        if rec and rec["hash"] == h and rec["status"] == "done":
            self.done[name] = rec
            if self.selected is None or name in self.selected:
                self.log(f"{name}: done earlier, skipped")
            return rec.get("result")
        if self.selected is not None and name not in self.selected:
            return None
        missing = [d for d in deps if d not in self.done]
        if missing:
            raise JudgerlError(f"stage {name} needs {', '.join(missing)} done first (run --stage {missing[0]})")
        if rec and rec["hash"] != h and owns_folder and folder.exists():
            shutil.rmtree(folder)  # its config changed: start it over
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        rec = {"stage": name, "hash": h, "status": "running", "deps": deps, "config": config, "started": t0,
               **({"previous": last_done(rec)} if last_done(rec) else {})}  # what a stopped re-run leaves intact
        rec_path.write_text(json.dumps(rec, indent=2, default=str))
        result = fn()
        partial = isinstance(result, dict) and result.get("incomplete")
        rec.update(status="partial" if partial else "done", seconds=round(time.time() - t0, 1), finished=time.time(),
                   result=result)
        rec_path.write_text(json.dumps(rec, indent=2, default=str))
        if partial:  # paused by its budget: the same command resumes it
            self.log(f"{name}: paused after {rec['seconds']:.0f} s (run the same stage again to continue)")
            return result
        self.done[name] = rec
        self.log(f"{name}: done in {rec['seconds']:.0f} s")
        return result
