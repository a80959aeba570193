"""A run directory: resolved config, judge ledger + cache, metrics JSONL, report.

    runs/<name>/config.yaml  ledger.sqlite  cache.sqlite  metrics.jsonl  report.md ...

`RunDir.judge(spec, stage)` returns a Judge wired to this run's cache and ledger.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pydantic import BaseModel

from judgerl.config import dump_yaml
from judgerl.data import check_output_dir, write_json_atomic


class RunDir:
    def __init__(self, path: str | Path, cache: str | Path | None = None):
        self.path = check_output_dir(path, "run folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self.cache_path = Path(cache) if cache else self.path / "cache.sqlite"
        self.ledger_path = self.path / "ledger.sqlite"

    def save_config(self, cfg: BaseModel, name: str = "config.yaml") -> Path:
        p = self.path / name
        dump_yaml(cfg, p)
        return p

    def judge(self, spec, stage: str, **kw):
        from judgerl.judges.judge import Judge

        return Judge(spec, cache=self.cache_path, ledger=self.ledger_path, stage=stage, **kw)

    def log_metrics(self, record: dict, name: str = "metrics.jsonl") -> None:
        rec = {"time": time.time(), **record}
        with open(self.path / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, default=float) + "\n")

    def write_json(self, name: str, obj) -> Path:
        return write_json_atomic(self.path / name, obj)

    def ledger_summary(self) -> dict:
        from judgerl.judges.cache import Ledger

        return Ledger(self.ledger_path).summary() if self.ledger_path.exists() else {}
