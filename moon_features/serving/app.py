"""The HTTP scoring service (FastAPI): POST /score, POST /events, GET /health, GET /metrics.

Status codes: 200; 413 too many candidates; 422 malformed payload or bad context; 503 the
online store is unreachable (the body names its address). Nothing is cached across requests
but the model and the registry's view layouts, so a store that comes back is used again by the
next request, and an event pushed through /events is seen by the next /score.

Handlers are plain `def`: FastAPI runs them in its thread pool, so a request waiting on Redis
does not block the event loop, and torch / hiredis release the GIL while they work.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..store.errors import OnlineStoreUnavailableError
from .errors import ContextError, TooManyCandidatesError
from .metrics import MetricsMiddleware, ServingMetrics
from .scorer import CTRScorer
from .settings import ServingSettings

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, strict=True)]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Int64 = Field(description="The user to rank for; an unknown user is scored with an empty history")
    candidate_item_ids: list[Int64] = Field(min_length=1, description="Candidates; more than max_candidates -> 413")
    context: dict[str, int] | None = Field(None, description="Context feature ids (only the model's context fields)")


class ScoreResponse(BaseModel):
    scores: list[float] = Field(description="Click probability per candidate, in request order")
    model_version: str
    feature_service: str
    embedding_version: int | None
    user_found: bool = Field(description="False: unknown user, scored with an empty history and no profile")
    history_length: int = Field(description="History items the model attended to")
    item_found: list[bool] = Field(description="Per candidate; False: unknown item, scored with zero features")
    unknown_item_ids: list[int]


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Int64
    item_id: Int64
    event_type: Literal["click", "like"] = Field(description="Positive events append to the behaviour sequence")
    event_timestamp: datetime | None = Field(None, description="With a time zone; default: now (UTC)")

    @field_validator("event_timestamp")
    @classmethod
    def _aware(cls, v):
        if v is not None and v.tzinfo is None:
            raise ValueError("event_timestamp needs a time zone, e.g. 2026-03-01T12:00:00Z")
        return v


class EventResponse(BaseModel):
    user_id: int
    hist_len: int
    hist_item_ids: list[int] = Field(description="The user's sequence after the append, oldest first")
    event_timestamp: datetime


class ErrorBody(BaseModel):
    detail: str
    address: str | None = None


def _unavailable(exc: OnlineStoreUnavailableError, metrics: ServingMetrics) -> JSONResponse:
    metrics.unavailable.inc()
    return JSONResponse(status_code=503, content={"detail": str(exc), "address": exc.address},
                        headers={"Retry-After": "1"})


def _as_unavailable(store, exc: Exception) -> OnlineStoreUnavailableError:
    """Feast's own Redis client (used by push) raises redis-py errors: name the address as ours do."""
    from ..store.redis_connection import unavailable

    return unavailable(store.config.online_store, exc)


def create_app(settings: ServingSettings | None = None, scorer: CTRScorer | None = None) -> FastAPI:
    """The app over `scorer`, or over a scorer built from `settings` (repo + model_dir)."""
    settings = settings or ServingSettings.load()
    if scorer is None:
        from ..store.repo import open_store

        settings.require_paths()
        scorer = CTRScorer(open_store(settings.repo, settings.feature_store_yaml), settings.model_dir,
                           torch_threads=settings.torch_threads)
    scorer.max_candidates = settings.max_candidates
    metrics = ServingMetrics()
    app = FastAPI(title="moon-features scoring", version=scorer.model_version,
                  description="CTR scores from MOON item embeddings, behaviour sequences and profiles "
                              "read from the Feast online store.")
    app.state.scorer, app.state.metrics, app.state.settings = scorer, metrics, settings
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    redis_errors = _redis_errors()

    @app.exception_handler(OnlineStoreUnavailableError)
    def store_down(request: Request, exc: OnlineStoreUnavailableError):
        return _unavailable(exc, metrics)

    @app.exception_handler(TooManyCandidatesError)
    def too_many(request: Request, exc: TooManyCandidatesError):
        return JSONResponse(status_code=413, content={"detail": str(exc)})

    @app.exception_handler(ContextError)
    def bad_context(request: Request, exc: ContextError):
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    errors = {413: {"model": ErrorBody, "description": "Too many candidates"},
              503: {"model": ErrorBody, "description": "Online store unreachable"}}

    @app.post("/score", response_model=ScoreResponse, responses=errors)
    def score(req: ScoreRequest):
        result = scorer.score_detailed(req.user_id, req.candidate_item_ids, req.context)
        metrics.observe_score(result)
        # Built as plain JSON: re-validating 200 floats through ScoreResponse would cost more
        # than the batch assembly; the model above still documents the shape in OpenAPI.
        return JSONResponse({
            "scores": result.scores.tolist(), "model_version": scorer.model_version,
            "feature_service": scorer.feature_service, "embedding_version": scorer.embedding_version,
            "user_found": result.user_found, "history_length": result.history_length,
            "item_found": result.item_found.tolist(), "unknown_item_ids": result.unknown_item_ids})

    @app.post("/events", response_model=EventResponse, responses={503: errors[503]})
    def events(req: EventRequest) -> EventResponse:
        from ..store.push import append_positive_event

        when = req.event_timestamp or datetime.now(timezone.utc)
        # Feast's own client (used by push) backs off for seconds on a dead Redis; the fast
        # reader's check answers 503 at once instead.
        scorer.check_store()
        try:
            row = append_positive_event(scorer.store, scorer.reader.spec, req.user_id, req.item_id, when)
        except redis_errors as e:
            raise _as_unavailable(scorer.store, e) from e
        return EventResponse(user_id=row["user_id"], hist_len=row["hist_len"],
                             hist_item_ids=row["hist_item_ids"].tolist(), event_timestamp=row["event_timestamp"])

    @app.get("/health", responses={503: errors[503]})
    def health():
        scorer.check_store()
        return {"status": "ok", "store": scorer.reader.backend, "project": scorer.store.config.project,
                "model_version": scorer.model_version}

    @app.get("/metrics")
    def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    return app


def _redis_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # no redis extra: the store is not Redis, nothing to map
        return ()
    return (RedisConnectionError, RedisTimeoutError)


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings come from MOON_SERVING_* variables."""
    return create_app(ServingSettings.load())
