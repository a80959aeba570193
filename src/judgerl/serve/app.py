"""The reward server: FastAPI routes over a RewardService, run by uvicorn.

    POST /v1/rewards   judgerl's JSON endpoint (items of prompt + response(s), optional group ids)
    POST /get_reward   OpenRLHF's remote reward-model protocol (see protocol.py for the version matched)
    GET  /health       200 while serving, 503 while draining
    GET  /metrics      JSON counters (calls, failures, latency, tokens); ?format=prometheus for text
    GET  /v1/judge     the judge's spec summary and fingerprint

Bad payloads get a 4xx with `{"error": "<one line>", "status": N}`; too many requests in flight get 503
with Retry-After. SIGTERM/SIGINT: new requests are refused (503, or connection refused once the socket
closes), requests in flight finish within `shutdown_grace_s`, then the batcher drains and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from starlette.requests import Request as StarletteRequest

from judgerl.serve.batcher import Closed
from judgerl.judges.limits import status_of
from judgerl.serve.config import ServeConfig
from judgerl.serve.guard import LOOPBACK, Guard, check_bind
from judgerl.serve.protocol import (OpenRLHFRequest, RequestError, RewardsRequest, groups_from_items,
                                    openrlhf_groups)
from judgerl.serve.service import RewardService

log = logging.getLogger("judgerl.serve")


def _error(status: int, message: str, headers: dict | None = None):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _validation_message(errors: list) -> str:
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid request: " + "; ".join(parts) + more


def rewards_body(service: RewardService, groups, where) -> dict:
    index = {(gi, pos): n for n, (gi, pos) in enumerate(where)}
    items, failures = [], []
    for n, (gi, pos) in enumerate(where):
        g, res = groups[gi], groups[gi].results[pos]
        v = res.get("verdict")
        status = status_of((v or {}).get("error"), (v or {}).get("valid", True), res["reward"])
        items.append({"index": n, "group": g.group_id, "reward": res["reward"], "status": status, "verdict": v})
        if res["reward"] is None or status != "ok":
            why = (v or {}).get("error") or ("invalid verdict" if v is not None else "no usable comparison in its group")
            failures.append({"index": n, "group": g.group_id, "status": status, "imputed": res["reward"] is not None,
                             "error": why})
    body = {"rewards": [it["reward"] for it in items], "items": items, "failures": failures,
            "judge": {k: service.describe()[k] for k in ("name", "format", "fingerprint")}}
    if service.pairwise:
        body["groups"] = [{"group": g.group_id, "indices": [index[(gi, p)] for p in range(len(g.completions))],
                           "comparisons": g.comparisons} for gi, g in enumerate(groups)]
    return body


def openrlhf_body(service: RewardService, groups, where) -> dict:
    rewards, unscored, valid, cached, too_long = [], [], [], [], []
    for gi, pos in where:
        res = groups[gi].results[pos]
        v = res.get("verdict") or {}
        rewards.append(service.cfg.failure_reward if res["reward"] is None else float(res["reward"]))
        unscored.append(float(res["reward"] is None))
        valid.append(float(bool(v.get("valid", res["reward"] is not None))))
        cached.append(float(bool(v.get("cached", False))))
        too_long.append(float(status_of(v.get("error"), True, 0) == "too_long"))
    return {"rewards": rewards, "scores": rewards,
            "extra_logs": {"judge_failed": unscored, "judge_valid": valid, "judge_cached": cached,
                           "judge_too_long": too_long}}


def build_app(service: RewardService, api_key: str | None = None):
    """The FastAPI app behind the Guard (API key, body cap)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.warm_up()
        service.batcher.start()
        log.info("judgerl reward server ready: judge %s (%s)", service.judge.spec.name, service.judge.fingerprint)
        yield
        refused = await service.close(timeout=service.cfg.shutdown_grace_s)
        log.info("judgerl reward server stopped: %d batches judged, %d queued requests refused at shutdown",
                 service.batcher.batches, refused)

    app = FastAPI(title="judgerl reward server", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        service.metrics.request(request.url.path, 422, 0.0)
        return _error(422, _validation_message(exc.errors()))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        service.metrics.request(request.url.path, exc.status_code, 0.0)
        return _error(exc.status_code, str(exc.detail))

    async def guarded(endpoint: str, build, respond):
        if service.draining:
            service.metrics.request(endpoint, 503, 0.0)
            return _error(503, "the reward server is shutting down", {"Retry-After": "5"})
        if service.in_flight >= service.cfg.max_in_flight:
            service.metrics.request(endpoint, 503, 0.0)
            return _error(503, f"{service.in_flight} requests in flight (max_in_flight); retry later",
                          {"Retry-After": "1"})
        service.in_flight += 1
        t0, status, items = time.perf_counter(), 200, 0
        try:
            groups, where = build()
            items = len(where)
            if items:
                await asyncio.wait_for(service.score(groups), service.cfg.request_timeout_s)
            return JSONResponse(respond(service, groups, where))
        except RequestError as e:
            status = e.status
            return _error(e.status, str(e), e.headers)
        except Closed as e:
            status = 503
            return _error(503, str(e), {"Retry-After": "5"})
        except asyncio.TimeoutError:
            status = 504
            return _error(504, f"not judged within {service.cfg.request_timeout_s:g} s (request_timeout_s); its items "
                               f"may still be judged and cached, retry later", {"Retry-After": "5"})
        except asyncio.CancelledError:  # uvicorn's shutdown_grace_s ran out: answer, do not vanish
            asyncio.current_task().uncancel()
            status = 503
            return _error(503, "the reward server shut down before this request was judged (shutdown_grace_s)",
                          {"Retry-After": "5"})
        except Exception as e:  # noqa: BLE001 - a bug must answer 500, not hang the client
            status = 500
            log.exception("reward request failed")
            return _error(500, f"internal error: {type(e).__name__}")
        finally:
            service.in_flight -= 1
            service.metrics.request(endpoint, status, time.perf_counter() - t0, items)

    @app.post("/v1/rewards")
    async def rewards(body: RewardsRequest):
        return await guarded("/v1/rewards", lambda: groups_from_items(body.items), rewards_body)

    @app.post("/get_reward")
    async def get_reward(body: OpenRLHFRequest):
        return await guarded("/get_reward", lambda: openrlhf_groups(body, service.cfg, service.pairwise), openrlhf_body)

    @app.get("/health")
    async def health(request: StarletteRequest):  # open to probes: with a key set, it tells nothing but the status
        body = {"status": "draining" if service.draining else "ok"}
        if api_key is None or guard.authorized(dict(request.scope["headers"])):
            body.update(judge=service.describe(), **service.live())
        return JSONResponse(body, status_code=503 if service.draining else 200)

    @app.get("/metrics")
    async def metrics(format: str = "json"):
        if format == "prometheus":
            return PlainTextResponse(service.metrics.prometheus(service.live()))
        return JSONResponse(service.metrics.snapshot(service.live()))

    @app.get("/v1/judge")
    async def judge_info():
        return service.describe()

    guard = Guard(app, api_key, int(service.cfg.max_body_mb * 1024 * 1024),
                  lambda path, status: service.metrics.request(path, status, 0.0))
    return guard


def _uvicorn_server(service: RewardService, port: int | None = None, api_key: str | None = None):
    import uvicorn

    cfg = service.cfg

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):  # refuse new requests from the first signal on
            service.draining = True
            super().handle_exit(sig, frame)
            self._captured_signals.clear()  # a graceful drain is a normal exit (0), not death by the signal

    config = uvicorn.Config(build_app(service, api_key), host=cfg.host, port=cfg.port if port is None else port,
                            log_level=cfg.log_level, timeout_graceful_shutdown=cfg.shutdown_grace_s,
                            lifespan="on", access_log=cfg.log_level == "debug")
    return Server(config)


def run_server(cfg: ServeConfig, service: RewardService | None = None, api_key: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM (blocking). `api_key`: see guard.py (never stored, never logged)."""
    check_bind(cfg.host, api_key, cfg.allow_unauthenticated)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    if api_key is None and cfg.host not in LOOPBACK:
        log.warning("serving %s without an API key (allow_unauthenticated): any host that reaches it gets rewards",
                    cfg.host)
    log.info("API key: %s", "required on every route but /health" if api_key else "none (loopback only)")
    _uvicorn_server(service or RewardService(cfg), api_key=api_key).run()


@contextlib.contextmanager
def server_thread(service: RewardService, timeout_s: float = 300.0, api_key: str | None = None):
    """Run the server on 127.0.0.1 in a background thread; yields its base URL (tests, benchmarks)."""
    from judgerl.llama_server import free_port

    port = service.cfg.port or free_port()
    server = _uvicorn_server(service, port, api_key)
    thread = threading.Thread(target=server.run, name="judgerl-serve", daemon=True)
    thread.start()
    deadline = time.time() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("judgerl reward server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{service.cfg.host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
