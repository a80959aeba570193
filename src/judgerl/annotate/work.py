"""The annotate work table: one row per judge call (stage, item, idx) with its status, in SQLite (WAL).

It is the source of truth of a run: each batch of results is committed in one transaction, so a
kill -9 loses at most the batch in flight, and the exported files are rebuilt from it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from judgerl import JudgerlError
from judgerl.judges.cache import connect
from judgerl.annotate.config import stages


class WorkTable:
    def __init__(self, path: Path):
        self.conn = connect(path)
        self.conn.executescript(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);"
            "CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, pos INTEGER, data TEXT);"
            "CREATE TABLE IF NOT EXISTS units (stage TEXT, item_id TEXT, idx INTEGER, status TEXT, "
            " attempts INTEGER DEFAULT 0, inv_round INTEGER DEFAULT 0, inv_total INTEGER DEFAULT 0, "
            " result TEXT, error TEXT, updated REAL, PRIMARY KEY (stage, item_id, idx));"
            "CREATE INDEX IF NOT EXISTS units_pending ON units (stage, status);")

    def meta(self, key: str) -> str | None:
        r = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return r[0] if r else None

    def setup(self, cfg, items: list[dict], fingerprints: dict[str, str]) -> None:
        """Record the items and create the units (idempotent); refuse a different judge or input."""
        for stage, fp in fingerprints.items():
            old = self.meta(f"fingerprint:{stage}")
            if old is not None and old != fp:
                raise JudgerlError(f"{cfg.output_dir} holds a run whose {stage} labels came from a different "
                                   f"gold judge or rubric settings; use a new output_dir")
        existing = dict(self.conn.execute("SELECT item_id, data FROM items"))
        rows = []
        for pos, it in enumerate(items):
            blob = json.dumps(it, sort_keys=True)
            if it["id"] in existing and existing[it["id"]] != blob:
                raise JudgerlError(f"item {it['id']!r} differs from the one this run in {cfg.output_dir} "
                                   f"started with; use a new output_dir")
            rows.append((it["id"], pos, blob))

        units = []
        for name, kind, _ in stages(cfg):
            for it in items:
                n = len(it["responses"])
                idxs = [0] if kind == "rubric" else list(range(n)) if kind == "pointwise" else \
                    ([0, 1] if n == 2 else [])
                units += [(name, it["id"], i) for i in idxs]
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                  [(f"fingerprint:{k}", v) for k, v in fingerprints.items()])
            self.conn.executemany("INSERT OR IGNORE INTO items VALUES (?,?,?)", rows)
            self.conn.executemany("INSERT OR IGNORE INTO units (stage, item_id, idx, status) "
                                  "VALUES (?,?,?,'pending')", units)

    def reset_failed(self) -> int:
        with self.conn:
            self.conn.execute("BEGIN")
            cur = self.conn.execute("UPDATE units SET status='pending', attempts=0, inv_round=0, error=NULL "
                                    "WHERE status='failed'")
        return cur.rowcount

    def use_items(self, ids: list[str]) -> None:
        """Restrict pending()/counts() to this run's items (a limit may have shrunk the set)."""
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS cur (item_id TEXT PRIMARY KEY)")
        self.conn.execute("DELETE FROM cur")
        self.conn.executemany("INSERT OR IGNORE INTO cur VALUES (?)", [(i,) for i in ids])

    def pending(self, stage: str, limit: int) -> list[tuple]:
        return list(self.conn.execute(
            "SELECT u.item_id, u.idx, u.attempts, u.inv_round, u.inv_total FROM units u JOIN cur USING (item_id) "
            "WHERE u.stage=? AND u.status='pending' ORDER BY u.attempts, u.rowid LIMIT ?", (stage, limit)))

    def counts(self, stage: str) -> dict[str, int]:
        out = {"pending": 0, "done": 0, "failed": 0}
        out.update(dict(self.conn.execute("SELECT u.status, COUNT(*) FROM units u JOIN cur USING (item_id) "
                                          "WHERE u.stage=? GROUP BY u.status", (stage,))))
        return out

    def commit(self, updates: list[tuple]) -> None:
        """updates: (status, attempts, inv_round, inv_total, result, error, stage, item_id, idx)."""
        now = time.time()
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("UPDATE units SET status=?, attempts=?, inv_round=?, inv_total=?, result=?, "
                                  "error=?, updated=? WHERE stage=? AND item_id=? AND idx=?",
                                  [u[:6] + (now,) + u[6:] for u in updates])

    def results(self, stage: str) -> dict[tuple[str, int], tuple[str, dict | None, str | None]]:
        return {(i, x): (s, json.loads(r) if r else None, e) for i, x, s, r, e in self.conn.execute(
            "SELECT item_id, idx, status, result, error FROM units WHERE stage=?", (stage,))}
