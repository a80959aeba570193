"""Opt-in split of judge calls into phases (bench 3's breakdown of where the in-loop judge's time goes).

Off (the default) `phase(name)` returns a shared no-op context and `count` returns at once: nothing is timed and
the device is never synchronised. Inside `recording(Phases())` every phase is wall-clock timed with the device
synchronised at both ends (CUDA), so a phase holds the device work it launched; counters (graph captures, decode
steps, padded tokens, ...) add up. The recorder is process-wide, not per thread: the judge's model work runs on
its own thread (hf.py) while the ledger writes run on the caller's event loop, and both belong to the call.
Phases may nest (`decode` holds `capture`); the bench reports each name on its own.
"""

from __future__ import annotations

import contextlib
import time

_ACTIVE: Phases | None = None
_NOOP = contextlib.nullcontext()


def _sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class Phases:
    """Seconds and entries per phase name, plus counters."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.entries: dict[str, int] = {}
        self.counts: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(self, name: str):
        _sync()
        t = time.perf_counter()
        try:
            yield
        finally:
            _sync()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
            self.entries[name] = self.entries.get(name, 0) + 1

    def add(self, name: str, k: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + k

    def as_dict(self) -> dict:
        return {"seconds": {k: round(v, 6) for k, v in self.seconds.items()}, "entries": dict(self.entries),
                "counts": dict(self.counts)}


def phase(name: str):
    """A context that times `name` while a recorder is active, else a no-op."""
    return _NOOP if _ACTIVE is None else _ACTIVE.timed(name)


def count(name: str, k: float = 1) -> None:
    if _ACTIVE is not None:
        _ACTIVE.add(name, k)


def active() -> bool:
    return _ACTIVE is not None


@contextlib.contextmanager
def recording(rec: Phases | None = None):
    """Record the phases of everything run inside (on any thread) into `rec` (a new Phases by default)."""
    global _ACTIVE
    rec = rec or Phases()
    prev, _ACTIVE = _ACTIVE, rec
    try:
        yield rec
    finally:
        _ACTIVE = prev
