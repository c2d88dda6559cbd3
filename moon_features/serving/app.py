"""The HTTP scoring service (FastAPI): POST /score, POST /events, GET /health, GET /metrics.

Status codes: 200; 401 missing / wrong bearer token (when auth_token is set); 413 body over
max_body_bytes or too many candidates; 422 malformed payload, bad context, or an event the
service must not store; 503 the online store is unreachable, wiped or not materialized, or
max_in_flight requests are already in progress (with Retry-After). A 422 never echoes the
input and a 503 never names the store's address (the log does). Nothing is cached across
requests but the model and the registry's view layouts, so a store that comes back is used
again by the next request, and an event pushed through /events is seen by the next /score.

Bodies are read by RequestGuard (bounded) and parsed in the thread pool (requests.py), so the
event loop, and with it /health, never waits on a large or slow JSON parse. Redis work runs in
the thread pool too; hiredis and torch release the GIL while they work.
"""
from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from ..idmap import IdMapError
from ..store.errors import OnlineStoreUnavailableError
from .errors import ContextError, EventRejectedError, RequestBodyError, StoreNotMaterializedError, TooManyCandidatesError
from .events import CachedHealth, EventService, StoreHealth
from .guard import RequestGuard
from .metrics import MetricsMiddleware, ServingMetrics
from .requests import EventRequest, ScoreRequest, parse_model
from .responses import ERROR_RESPONSES, EventResponse, ScoreResponse, body_schema, score_body
from .scorer import CTRScorer
from .settings import ServingSettings

logger = logging.getLogger("moon_features.serving")
UNAVAILABLE = "the online store is unavailable; retry shortly (the service log names the store and the error)"


def _scorer_from_settings(settings: ServingSettings) -> CTRScorer:
    from ..store.repo import open_store

    settings.require_paths()
    store = open_store(settings.repo, settings.feature_store_yaml)
    with_store_timeouts(store, settings.store_timeout_s)
    return CTRScorer(store, settings.model_dir, torch_threads=settings.torch_threads, backend=settings.backend)


def with_store_timeouts(store, seconds: float) -> None:
    """Serving's Redis timeouts replace the connection string's (feature_store.redis.yaml's suit
    materialization): every connection the service opens (reader, markers, event appends) gives
    up after `seconds`, twice at most (one retry), so a hung Redis is a 503 within ~2 x seconds."""
    online = store.config.online_store
    text = getattr(online, "connection_string", None)
    if text is None:
        return
    names = ("socket_timeout", "socket_connect_timeout")
    parts = [p for p in text.split(",") if p.strip() and p.split("=", 1)[0].strip() not in names]
    online.connection_string = ",".join(parts + [f"{name}={seconds}" for name in names])


def _install_error_handlers(app: FastAPI, metrics: ServingMetrics) -> None:
    def unavailable(request: Request, exc: OnlineStoreUnavailableError):
        metrics.unavailable.inc()
        logger.warning("%s %s -> 503: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=503, content={"detail": UNAVAILABLE}, headers={"Retry-After": "1"})

    def not_materialized(request: Request, exc: StoreNotMaterializedError):
        metrics.unavailable.inc()
        return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "30"})

    def unprocessable(request: Request, exc: Exception):
        return JSONResponse(status_code=422, content={"detail": str(exc)[:500]})

    def bad_body(request: Request, exc: RequestBodyError):
        return JSONResponse(status_code=422, content={"detail": exc.errors or str(exc)})

    def bad_query(request: Request, exc: RequestValidationError):  # FastAPI's own (query / path), bounded
        errors = exc.errors()[:5]
        return JSONResponse(status_code=422, content={"detail": [
            {"loc": [str(p)[:64] for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:200]} for e in errors]})

    app.add_exception_handler(OnlineStoreUnavailableError, unavailable)
    app.add_exception_handler(StoreNotMaterializedError, not_materialized)
    app.add_exception_handler(ContextError, unprocessable)
    app.add_exception_handler(EventRejectedError, unprocessable)
    app.add_exception_handler(IdMapError, unprocessable)  # e.g. a string id sent to an int-id repo
    app.add_exception_handler(RequestBodyError, bad_body)
    app.add_exception_handler(RequestValidationError, bad_query)
    app.add_exception_handler(TooManyCandidatesError,
                              lambda request, exc: JSONResponse(status_code=413, content={"detail": str(exc)}))


def create_app(settings: ServingSettings | None = None, scorer: CTRScorer | None = None) -> FastAPI:
    """The app over `scorer`, or over a scorer built from `settings` (repo + model_dir)."""
    settings = settings or ServingSettings.load()
    scorer = scorer or _scorer_from_settings(settings)
    scorer.max_candidates = settings.max_candidates
    metrics = ServingMetrics()
    health = StoreHealth(scorer, settings)
    score_health = CachedHealth(health)
    events = EventService(scorer, settings, health)
    app = FastAPI(title="moon-features scoring", version=scorer.model_version,
                  description="CTR scores from MOON item embeddings, behaviour sequences and profiles "
                              "read from the Feast online store.")
    app.state.scorer, app.state.metrics, app.state.settings = scorer, metrics, settings
    app.state.health, app.state.events = health, events
    app.add_middleware(RequestGuard, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts the guard's answers too
    _install_error_handlers(app, metrics)

    def score_sync(body: bytes) -> Response:
        req = parse_model(body, ScoreRequest)
        score_health.check()
        result = scorer.score_detailed(req.user_id, req.candidate_item_ids, req.context)
        metrics.observe_score(result)
        # orjson: 200 floats and flags encoded in ~10 us instead of json's ~100 us, same JSON text
        return Response(orjson.dumps(score_body(scorer, result)), media_type="application/json")

    def events_sync(body: bytes) -> JSONResponse:
        req = parse_model(body, EventRequest)
        row = events.append(req.user_id, req.item_id, req.event_timestamp, req.event_type)
        return JSONResponse({"user_id": row["user_id"], "hist_len": int(row["hist_len"]),
                             "hist_item_ids": row["hist_item_ids"].tolist(),
                             "event_timestamp": row["event_timestamp"].isoformat()})

    @app.post("/score", response_model=ScoreResponse, responses=ERROR_RESPONSES,
              openapi_extra=body_schema(ScoreRequest))
    async def score(request: Request):
        return await run_in_threadpool(score_sync, await request.body())

    @app.post("/events", response_model=EventResponse, responses=ERROR_RESPONSES,
              openapi_extra=body_schema(EventRequest))
    async def post_event(request: Request):
        return await run_in_threadpool(events_sync, await request.body())

    @app.get("/health", responses={503: ERROR_RESPONSES[503]})
    def get_health():
        health.check()
        scorer.check_store()
        return {"status": "ok", "store": scorer.reader.backend, "project": scorer.store.config.project,
                "model_version": scorer.model_version, "views": health.views}

    @app.get("/metrics")
    def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings come from MOON_SERVING_* variables."""
    return create_app(ServingSettings.load())
