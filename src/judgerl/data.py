"""Reading and writing record files (JSONL, Parquet, JSON lists) with line-numbered errors."""

from __future__ import annotations

import gzip
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from judgerl import JudgerlError


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record); a malformed line is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise JudgerlError(f"input file not found: {path}")
    with _open_text(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise JudgerlError(f"{path}:{n}: malformed JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise JudgerlError(f"{path}:{n}: expected a JSON object, got {type(rec).__name__}")
            yield n, rec


def read_jsonl(path: str | Path) -> list[dict]:
    """All records of a JSONL(.gz) file (errors as `iter_jsonl`)."""
    return [rec for _, rec in iter_jsonl(path)]


def read_records(path: str | Path) -> list[tuple[int, dict]]:
    """(row number, record) pairs from JSONL(.gz), a JSON list, Parquet, or a saved HF datasets folder."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        from datasets import load_from_disk

        ds = load_from_disk(str(path))
        if hasattr(ds, "keys"):  # DatasetDict: take 'train' or the first split
            ds = ds["train"] if "train" in ds else ds[list(ds.keys())[0]]
        return [(i + 1, dict(r)) for i, r in enumerate(ds)]
    if not path.is_file():
        raise JudgerlError(f"input file not found: {path}")
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return [(i + 1, r) for i, r in enumerate(pq.read_table(path).to_pylist())]
    if name.endswith((".json", ".json.gz")):
        with _open_text(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise JudgerlError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
        if isinstance(data, dict):
            data = list(data.values()) if all(isinstance(v, dict) for v in data.values()) else [data]
        return [(i + 1, r) for i, r in enumerate(data)]
    return list(iter_jsonl(path))


@contextmanager
def atomic_file(path: str | Path):
    """Open `path` for writing via a temp file beside it, fsynced and renamed on success: readers never
    see a partial file, and a failure leaves the old file (if any) in place and no temp file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (see atomic_file)."""
    with atomic_file(path) as f:
        f.write(text)
    return Path(path)


def write_json_atomic(path: str | Path, obj) -> Path:
    """Write `obj` as indented JSON atomically (non-JSON numbers as floats)."""
    return write_text_atomic(path, json.dumps(obj, indent=2, default=float))


def write_jsonl_atomic(path: str | Path, records: list[dict]) -> Path:
    """Write all records to `path` atomically, one JSON object per line."""
    with atomic_file(path) as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, default=float) + "\n")
    return Path(path)
