"""Reading and writing record files (JSONL, Parquet, JSON lists) with line-numbered errors.

Every reader turns a bad file (missing, a folder, unreadable, not UTF-8, a broken .gz, corrupt Parquet,
the wrong JSON shape) into a one-line JudgerlError naming the file; the `check_output_*` helpers refuse
an output path that cannot be written before any work is done.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from judgerl import JudgerlError

_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def check_readable(path: str | Path, what: str = "input file") -> Path:
    """`path` as an existing, readable file; otherwise a one-line error saying what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise JudgerlError(f"{what} {path} is a folder, not a file; give the file's path")
    if not path.exists():
        raise JudgerlError(f"{what} not found: {path}")
    if not os.access(path, os.R_OK):
        raise JudgerlError(f"{what} {path} is not readable (check its permissions)")
    return path


@contextmanager
def decoding(path: Path, where: str = ""):
    """Turn decoding errors while reading `path` into one-line errors (`where`: e.g. ':12' for a line)."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise JudgerlError(f"{path}{where}: not UTF-8 text (byte 0x{e.object[e.start]:02x}); "
                           f"save the file as UTF-8") from None
    except _GZIP_ERRORS as e:
        raise JudgerlError(f"{path}: not a valid gzip file ({type(e).__name__}); give an uncompressed "
                           f"file or a complete .gz") from None
    except PermissionError:
        raise JudgerlError(f"{path} is not readable (check its permissions)") from None


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_text(path: str | Path, what: str = "input file") -> str:
    """The whole text of a (possibly gzipped) UTF-8 file, with one-line errors."""
    path = check_readable(path, what)
    with decoding(path), _open_text(path) as f:
        return f.read()


def read_json(path: str | Path, what: str = "JSON file", expect: type | tuple = (dict, list)):
    """A JSON document of the expected type (dict, list), with one-line errors."""
    path = Path(path)
    text = read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise JudgerlError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    if not isinstance(data, expect):
        names = {dict: "a JSON object", list: "a JSON list"}
        want = " or ".join(names.get(t, t.__name__) for t in (expect if isinstance(expect, tuple) else (expect,)))
        got = {int: "a number", float: "a number", str: "a string", bool: "true/false", type(None): "null"}
        raise JudgerlError(f"{path}: expected {want}, got {got.get(type(data), names.get(type(data)))}")
    return data


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, record); a malformed line is an error naming the file and line."""
    path = check_readable(path)
    with decoding(path), (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        for n, raw in enumerate(f, 1):  # bytes, decoded per line: a bad byte is reported on its own line
            with decoding(path, f":{n}"):
                line = raw.decode("utf-8")
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

        try:
            ds = load_from_disk(str(path))
        except (FileNotFoundError, ValueError, OSError) as e:
            raise JudgerlError(f"{path} is a folder but not a saved Hugging Face dataset ({str(e).splitlines()[0]}); "
                               f"give a JSONL, JSON or Parquet file") from None
        if hasattr(ds, "keys"):  # DatasetDict: take 'train' or the first split
            ds = ds["train"] if "train" in ds else ds[list(ds.keys())[0]]
        rows = [(i + 1, dict(r)) for i, r in enumerate(ds)]
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        check_readable(path)
        try:
            rows = [(i + 1, r) for i, r in enumerate(pq.read_table(path).to_pylist())]
        except (pa.ArrowException, OSError) as e:
            raise JudgerlError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    elif name.endswith((".json", ".json.gz")):
        data = read_json(path, "input file")
        if isinstance(data, dict):
            data = list(data.values()) if all(isinstance(v, dict) for v in data.values()) else [data]
        rows = list(enumerate(data, 1))
    else:
        return list(iter_jsonl(path))
    for n, r in rows:
        if not isinstance(r, dict):
            raise JudgerlError(f"{path}: record {n} is a {type(r).__name__}, not an object with fields")
    return rows


def _writable_folder(path: Path, what: str) -> None:
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise JudgerlError(f"{what} cannot be created: {probe} is a file, not a folder; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise JudgerlError(f"{what} cannot be written: {probe} is not writable (permission denied); choose another path")


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Refuse (before any work) a folder path that exists as a file or cannot be created/written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise JudgerlError(f"{what} {path} is a file, not a folder; give a folder path")
    _writable_folder(path, f"{what} {path}")
    return path


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Refuse (before any work) a file path that is a folder or whose folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise JudgerlError(f"{what} {path} is a folder; give a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise JudgerlError(f"{what} {path} is not writable (check its permissions)")
    _writable_folder(path.parent, f"{what} {path}")
    return path


@contextmanager
def atomic_file(path: str | Path):
    """Open `path` for writing via a temp file beside it, fsynced and renamed on success: readers never
    see a partial file, and a failure leaves the old file (if any) in place and no temp file behind."""
    path = Path(path)
    if path.is_dir():
        raise JudgerlError(f"cannot write {path}: it is a folder")
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
