"""Response shapes of the scoring service, for OpenAPI, and the /score body."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ScoreResponse(BaseModel):
    scores: list[float] = Field(description="Click probability per candidate, in request order")
    model_version: str
    feature_service: str
    embedding_version: int | None = Field(description="The model's embedding version; with several views, the first")
    embedding_versions: list[int] = Field(description="Every embedding view the model reads, in the order it "
                                                      "concatenates their vectors; empty for an ids-only model")
    user_found: bool = Field(description="False: unknown user, scored with an empty history and no profile")
    history_length: int = Field(description="History items the model attended to")
    item_found: list[bool] = Field(description="Per candidate; False: unknown item, scored with zero features")
    unknown_item_ids: list[int | str] = Field(description="The caller's ids (str for a string-id repo)")


class EventResponse(BaseModel):
    user_id: int | str
    hist_len: int
    hist_item_ids: list[int | str] = Field(description="The user's sequence after the append, oldest first")
    event_timestamp: datetime


class ErrorBody(BaseModel):
    detail: str | list = Field(description="What is wrong; never the request's values, never the store's address")


ERROR_RESPONSES = {
    401: {"model": ErrorBody, "description": "auth_token is set and the bearer token is missing or wrong"},
    413: {"model": ErrorBody, "description": "Body over max_body_bytes, or too many candidates"},
    422: {"model": ErrorBody, "description": "Not strict JSON of the schema (NaN, Infinity, ...), or a bad value"},
    503: {"model": ErrorBody, "description": "Online store unreachable / wiped, or max_in_flight reached "
                                             "(Retry-After)"},
}


def body_schema(model: type[BaseModel]) -> dict:
    """openapi_extra documenting a JSON body the handler reads itself (see requests.py for why)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def score_body(scorer, result) -> dict:
    """Built as plain JSON: re-validating 200 floats through ScoreResponse would cost more than
    the batch assembly; the model above still documents the shape in OpenAPI."""
    return {"scores": result.scores.tolist(), "model_version": scorer.model_version,
            "feature_service": scorer.feature_service, "embedding_version": scorer.embedding_version,
            "embedding_versions": list(scorer.embedding_versions),
            "user_found": result.user_found, "history_length": result.history_length,
            "item_found": result.item_found.tolist(), "unknown_item_ids": result.unknown_item_ids}
