"""Where the shared external data lives: one resolver for every stage.

Order: an explicit folder (a config field or CLI option), else `$JUDGERL_SHARED_DATA`, else
`../shared/data` beside the working directory, else `shared/data` beside the repository checkout.
A folder that was named explicitly (argument or variable) and does not exist is an error, never a
silent fall-back to another copy.
"""

from __future__ import annotations

import os
from pathlib import Path

from judgerl import JudgerlError

ENV = "JUDGERL_SHARED_DATA"


def data_root(configured: str | Path | None = None) -> Path:
    """The shared data folder (see module docstring); a one-line JudgerlError when it is missing."""
    named = configured or os.environ.get(ENV)
    if named:
        path = Path(named)
        if not path.is_dir():
            how = "the configured folder" if configured else f"${ENV}"
            raise JudgerlError(f"shared data folder not found: {path} ({how}); point it at the shared data")
        return path
    cands = [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3] / "shared" / "data"]
    for c in cands:
        if c.is_dir():
            return c
    raise JudgerlError(f"shared data folder not found (tried {', '.join(map(str, cands))}); "
                       f"set {ENV} or pass the data folder")
