"""The reward server's front door (a plain ASGI middleware, before FastAPI parses anything).

- API key: with a key set, every route but `GET /health` needs `Authorization: Bearer <key>` (or HTTP
  Basic with the key as the password: OpenRLHF's client sends no headers, but aiohttp turns a URL's
  `user:key@` into Basic auth). Compared with hmac.compare_digest; 401 otherwise. The key lives in this
  object only: never in the config, a log line, the ledger or a response.
- Body size: a body over `max_body_bytes` gets 413 before it is parsed (Content-Length, or counted while
  it streams in), so one huge request cannot exhaust the server's memory.

The key comes from `--api-key` or the JUDGERL_API_KEY environment variable (as vLLM's VLLM_API_KEY).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os

API_KEY_ENV = "JUDGERL_API_KEY"
OPEN_PATHS = {"/health"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def api_key_from(cli_value: str | None) -> str | None:
    """The key: --api-key, else $JUDGERL_API_KEY, else None. Blank is refused (it would match anything)."""
    key = cli_value if cli_value is not None else os.environ.get(API_KEY_ENV)
    if key is not None and not key.strip():
        from judgerl import JudgerlError

        raise JudgerlError(f"the API key ({'--api-key' if cli_value is not None else API_KEY_ENV}) is empty")
    return key


def check_bind(host: str, key: str | None, allow_unauthenticated: bool) -> None:
    """Refuse to serve a non-loopback address without a key unless explicitly allowed."""
    from judgerl import JudgerlError

    if host not in LOOPBACK and key is None and not allow_unauthenticated:
        raise JudgerlError(f"refusing to serve {host} without an API key: set {API_KEY_ENV} (or --api-key), or "
                           f"pass --allow-unauthenticated on a network where every host is trusted")


def presented_key(header: bytes) -> bytes | None:
    """The secret an Authorization header carries (Bearer token, or the password of Basic auth)."""
    scheme, _, value = header.strip().partition(b" ")
    scheme = scheme.lower()
    if scheme == b"bearer":
        return value.strip()
    if scheme == b"basic":
        try:
            user_pass = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        return user_pass.partition(b":")[2]
    return None


class Guard:
    """ASGI middleware: API key on every route but /health, and the body-size cap."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int, on_refused=None):
        self.app = app
        self._key = api_key.encode() if api_key is not None else None
        self.max_body_bytes = max_body_bytes
        self.on_refused = on_refused or (lambda path, status: None)

    def authorized(self, headers: dict) -> bool:
        if self._key is None:
            return True
        got = presented_key(headers.get(b"authorization", b""))
        # compare_digest on equal-length digests: no early exit on the first differing byte, no length leak
        return got is not None and hmac.compare_digest(_digest(got), _digest(self._key))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        path = scope.get("path", "")
        if path not in OPEN_PATHS and not self.authorized(headers):
            return await self._refuse(send, path, 401, "missing or wrong API key (Authorization: Bearer <key>)",
                                      {"www-authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                return await self._refuse(send, path, 400, "bad Content-Length header")
            if too_big:
                return await self._refuse(send, path, 413, self._too_big(int(length)), {"connection": "close"})
            return await self.app(scope, receive, send)
        return await self._streamed(scope, receive, send, path)

    async def _streamed(self, scope, receive, send, path):
        """A body without Content-Length (chunked): read it here, counting, then replay it to the app."""
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            more = msg.get("more_body", False)
            if size > self.max_body_bytes:
                return await self._refuse(send, path, 413, self._too_big(size, at_least=True), {"connection": "close"})
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    def _too_big(self, size: int, at_least: bool = False) -> str:
        return (f"request body of {'at least ' if at_least else ''}{size:,} bytes; the limit is "
                f"{self.max_body_bytes:,} (max_body_mb)")

    async def _refuse(self, send, path: str, status: int, message: str, headers: dict | None = None):
        self.on_refused(path, status)
        body = json.dumps({"error": message, "status": status}).encode()
        hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        await send({"type": "http.response.body", "body": body})


def _digest(b: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(b).digest()
