"""Keep secrets out of every stored or printed error (ledger.sqlite, verdict files, logs, the console).

A server may echo the request's `Authorization` header or the key itself in an error body, and that
body becomes `Verdict.error`. `redact` replaces bearer/basic credentials, `api_key=...`-style
assignments, OpenAI-style `sk-...` keys, and the value of the configured key variable (plus any
environment variable named like a key or token) with `[REDACTED]`.
"""

from __future__ import annotations

import os
import re

MARK = "[REDACTED]"
_BEARER = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=:-]{4,}", re.IGNORECASE)
_ASSIGN = re.compile(r"((?:api[_-]?key|x-api-key|authorization|access[_-]?token|secret)[\"']?\s*[:=]\s*[\"']?)"
                     r"[^\s\"',;}]{4,}", re.IGNORECASE)
_KEYLIKE = re.compile(r"\b(?:sk|pk|rk|hf)[-_][A-Za-z0-9_-]{8,}")
_SECRET_NAME = re.compile(r"(?:API_?KEY|_TOKEN|_SECRET|_KEY)$", re.IGNORECASE)


def env_secrets(names: tuple[str, ...] | list[str] = ()) -> list[str]:
    """Values of the named variables and of every variable named like a key/token (8+ characters)."""
    vals = {os.environ.get(n, "") for n in names}
    vals |= {v for k, v in os.environ.items() if _SECRET_NAME.search(k)}
    return sorted((v for v in vals if len(v) >= 8), key=len, reverse=True)


def redact(text: str | None, key_envs: tuple[str, ...] | list[str] = ()) -> str | None:
    """`text` with credentials and the configured keys' values replaced by [REDACTED]."""
    if not text:
        return text
    for secret in env_secrets(key_envs):
        text = text.replace(secret, MARK)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MARK}", text)
    text = _ASSIGN.sub(lambda m: m.group(1) + MARK, text)
    return _KEYLIKE.sub(MARK, text)
