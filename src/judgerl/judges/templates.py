"""Prompt template files: where the defaults live, reading one, and checking a user's template.

No dependency on the spec (judges/spec.py validates templates through this module)."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

TEMPLATE_DIR = Path(str(files("judgerl.judges").joinpath("templates")))
PLACEHOLDERS = ("instruction", "response_1", "response_2", "score_min", "score_max", "rubric_block",
                "output_instructions")
PLACEHOLDER_RE = re.compile(r"\{\{(\w+)\}\}")


def read_template(template: str | None, fmt: str) -> str:
    """The text of a template file, or of the default template of a format (pointwise | pairwise)."""
    path = Path(template) if template else TEMPLATE_DIR / f"{fmt}.txt"
    return path.read_text(encoding="utf-8")


def check_template(text: str) -> str | None:
    """Why a template text is unusable (missing USER section, unknown placeholder), or None."""
    if "=== USER ===" not in text:
        return "template must contain a '=== USER ===' section"
    unknown = sorted(set(PLACEHOLDER_RE.findall(text)) - set(PLACEHOLDERS))
    if unknown:
        return (f"unknown placeholder(s) {', '.join('{{' + u + '}}' for u in unknown)} "
                f"(known: {', '.join(PLACEHOLDERS)})")
    return None
