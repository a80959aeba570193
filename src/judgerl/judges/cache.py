"""SQLite verdict cache (keyed by a content hash) and the ledger of judge calls.

Both are plain SQLite files in WAL mode, safe to share between processes. The cache stores only
verdicts the backend actually produced (valid or invalid); transport failures are never cached,
so a re-run retries them. The ledger has one row per request served: tokens, seconds, retries,
failure reason, and whether it came from the cache.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from judgerl import JudgerlError
from judgerl.judges.spec import Verdict


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) a SQLite file in WAL mode; a corrupt file is a clear error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA quick_check").fetchone()
    except sqlite3.DatabaseError as e:
        raise JudgerlError(f"{path} is not a readable SQLite database ({e}); delete it or point "
                           f"cache/ledger elsewhere") from None
    return conn


class VerdictCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.conn = connect(self.path)
        self.conn.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, judge TEXT, "
                          "verdict TEXT NOT NULL, created REAL)")

    def get_many(self, keys: list[str]) -> dict[str, Verdict]:
        out: dict[str, Verdict] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            q = f"SELECT key, verdict FROM verdicts WHERE key IN ({','.join('?' * len(chunk))})"
            for k, v in self.conn.execute(q, chunk):
                out[k] = Verdict.model_validate_json(v)
        return out

    def put_many(self, items: list[tuple[str, str, Verdict]]) -> None:
        rows = [(k, judge, v.model_dump_json(exclude={"cached"}), time.time())
                for k, judge, v in items if not v.failed]
        if rows:
            with self.conn:
                self.conn.execute("BEGIN")
                self.conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?)", rows)

    def __len__(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]


class Ledger:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.conn = connect(self.path)
        self.conn.execute("CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, ts REAL, judge TEXT, "
                          "stage TEXT, key TEXT, cached INTEGER, valid INTEGER, failure TEXT, "
                          "tokens_in INTEGER, tokens_out INTEGER, seconds REAL, retries INTEGER)")

    def record(self, judge: str, stage: str, rows: list[tuple[str, Verdict]]) -> None:
        now = time.time()
        from judgerl.judges.redact import redact

        data = [(now, judge, stage, k, int(v.cached), int(v.valid), redact(v.error), v.tokens_in, v.tokens_out,
                 v.seconds, v.retries) for k, v in rows]
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT INTO calls (ts, judge, stage, key, cached, valid, failure, tokens_in, "
                                  "tokens_out, seconds, retries) VALUES (?,?,?,?,?,?,?,?,?,?,?)", data)

    def summary(self, stage: str | None = None) -> dict:
        where, args = ("WHERE stage = ?", [stage]) if stage else ("", [])
        r = self.conn.execute(
            "SELECT COUNT(*), SUM(cached), SUM(CASE WHEN cached=0 THEN 1 ELSE 0 END), SUM(valid=0), "
            "SUM(failure IS NOT NULL), SUM(tokens_in), SUM(tokens_out), SUM(seconds), SUM(retries) "
            f"FROM calls {where}", args).fetchone()
        names = ["requests", "cache_hits", "backend_calls", "invalid", "failures", "tokens_in", "tokens_out",
                 "seconds", "retries"]
        return {n: (v or 0) for n, v in zip(names, r)}

    def by_judge(self) -> list[dict]:
        cur = self.conn.execute(
            "SELECT judge, stage, COUNT(*), SUM(cached), SUM(valid=0), SUM(failure IS NOT NULL), SUM(tokens_in), "
            "SUM(tokens_out), SUM(seconds), SUM(retries) FROM calls GROUP BY judge, stage ORDER BY judge, stage")
        names = ["judge", "stage", "requests", "cache_hits", "invalid", "failures", "tokens_in", "tokens_out",
                 "seconds", "retries"]
        return [dict(zip(names, [x or 0 for x in row])) for row in cur]

    def failures(self, limit: int = 20) -> list[tuple[str, str, int]]:
        return list(self.conn.execute("SELECT judge, failure, COUNT(*) FROM calls WHERE failure IS NOT NULL "
                                      "GROUP BY judge, failure ORDER BY 3 DESC LIMIT ?", (limit,)))
