"""Config loading: YAML -> pydantic model, with validation errors turned into one-line messages.

Each stage defines its own pydantic config next to its code (TRL style: typed fields with help
text); this module only loads, overrides and saves them. Secrets never appear in configs: API keys
are named by environment variable (`api_key_env`) and read at call time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from judgerl import JudgerlError
from judgerl.data import read_text, write_text_atomic

M = TypeVar("M", bound=BaseModel)


def format_validation_error(e: ValidationError, source: str = "config") -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(e.errors()) - 5} more)" if len(e.errors()) > 5 else ""
    return f"invalid {source}: " + "; ".join(parts) + more


def set_dotted(d: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    for i, k in enumerate(keys[:-1]):
        d = d.setdefault(k, {})
        if not isinstance(d, dict):
            raise JudgerlError(f"cannot set {dotted}: {'.'.join(keys[:i + 1])} is {d!r}, not a mapping")
    d[keys[-1]] = value


def parse_overrides(items: list[str] | None) -> dict:
    """`key.sub=value` strings (values parsed as YAML) -> nested dict. The same field given twice with
    different values, or a field and a sub-field of it (`grpo=4` and `grpo.max_steps=3`), is an error."""
    out: dict = {}
    seen: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise JudgerlError(f"override {item!r} must look like key=value")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k or any(not part for part in k.split(".")):
            raise JudgerlError(f"override {item!r}: empty field name; write key=value or key.sub=value")
        try:
            value = yaml.safe_load(v)
        except yaml.YAMLError as e:
            raise JudgerlError(f"override {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
        for other, first in seen.items():
            same = other == k and first != item
            nested = other.startswith(k + ".") or k.startswith(other + ".")
            if same or nested:
                raise JudgerlError(f"conflicting --set values {first!r} and {item!r}; give each field once")
        seen[k] = item
        set_dotted(out, k, value)
    return out


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise JudgerlError(f"config file not found: {path}")
    text = read_text(path, "config file")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise JudgerlError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise JudgerlError(f"{path} must hold a mapping at the top level")
    return data


def load_config(cls: type[M], path: str | Path | None = None, overrides: list[str] | dict | None = None,
                source: str | None = None, **defaults) -> M:
    """Load `cls` from a YAML file (optional), then apply `key=value` overrides; clear errors."""
    data = dict(defaults)
    if path is not None:
        data = deep_merge(data, read_yaml(path))
    extra = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    data = deep_merge(data, extra)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise JudgerlError(format_validation_error(e, source or (str(path) if path else cls.__name__))) from None


def load_judge_spec(path_or_name: str | Path, overrides: list[str] | None = None):
    """A judge spec from a YAML file, or from a model name (an hf judge with default settings)."""
    from judgerl.judges.spec import JudgeSpec

    p = Path(path_or_name)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        data = read_yaml(p)
        data = data.get("judge", data)
        return load_config(JudgeSpec, overrides=deep_merge(data, parse_overrides(overrides)), source=str(p))
    return load_config(JudgeSpec, overrides=overrides, model=str(path_or_name), name=str(path_or_name))


def dump_yaml(model: BaseModel, path: str | Path) -> None:
    """Save a resolved config (JSON-mode dump, so paths and enums are plain YAML)."""
    write_text_atomic(path, yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False))
