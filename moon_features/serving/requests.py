"""Request bodies of the scoring service: strict JSON, pydantic models, bounded 422 answers.

The body is parsed here, in a worker thread, not by FastAPI on the event loop: a slow parse
would hold every other request (and /health) meanwhile. Parsing is strict where Python's json
is lenient: NaN, Infinity and numbers that overflow a float (1e400) are refused, as are
integers of more than 4300 digits and nesting deep enough to exhaust the parser.

A 422 never echoes the input: it lists at most MAX_ERRORS problems, each with its location
(keys cut to MAX_LOC_CHARS: a key can be user input too) and pydantic's message, never the value.
"""
from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import RequestBodyError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, strict=True)]
# An id as the user's dataset has it: int64, or a string for a repo built from string ids
# (a string sent to an int-id repo is a 422 from the scorer's id map, moon_features.idmap).
Id = Int64 | Annotated[str, Field(min_length=1, max_length=256, strict=True)]
MAX_ERRORS = 5
MAX_LOC_CHARS = 64
MAX_MSG_CHARS = 200


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id = Field(description="The user to rank for; an unknown user is scored with an empty history")
    candidate_item_ids: list[Id] = Field(min_length=1, description="Candidates; more than max_candidates -> 413")
    context: dict[str, Int64 | Annotated[str, Field(max_length=256, strict=True)] | None] | None = Field(
        None, description="The model's context features (e.g. {\"hour_of_day\": 13, \"device\": \"mobile\"}), "
                          "raw values as in the interaction log's columns: each one the model has, null when "
                          "not known; a value outside the vocabulary scores as unknown")


class EventRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Id = Field(description="The user's id as in the dataset (new users are welcome)")
    item_id: Id = Field(description="The id of an item in the catalogue (the item profile view)")
    event_type: Annotated[str, Field(min_length=1, max_length=64, strict=True)] = Field(
        description="One of the service's event_types (default click, like): each appends to the behaviour sequence")
    event_timestamp: datetime | None = Field(
        None, description="ISO 8601 with a time zone; default: now (UTC). Bounded: not before "
                          "events_min_time, not more than events_max_future_s ahead of the server's clock")

    @field_validator("event_timestamp", mode="before")
    @classmethod
    def _iso_text(cls, v):
        # Numbers would be read as Unix times in seconds or milliseconds by guesswork; ask for text.
        if v is not None and not isinstance(v, str):
            raise ValueError("event_timestamp must be an ISO 8601 string with a time zone, e.g. 2026-03-01T12:00:00Z")
        return v

    @field_validator("event_timestamp")
    @classmethod
    def _aware(cls, v):
        if v is not None and v.tzinfo is None:
            raise ValueError("event_timestamp needs a time zone, e.g. 2026-03-01T12:00:00Z")
        return v


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number overflows a double")
    return value


def parse_json(body: bytes):
    """Strict JSON of a request body; RequestBodyError (422) for anything else."""
    if not body:
        raise RequestBodyError("the request body is empty; send a JSON object")
    try:  # UTF-8 only (RFC 8259): json.loads(bytes) would also guess UTF-16 / UTF-32
        return json.loads(body.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise RequestBodyError("the request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as e:
        raise RequestBodyError(f"the request body is not valid JSON (line {e.lineno}, column {e.colno}): "
                               f"{e.msg}") from None
    except (ValueError, RecursionError) as e:  # NaN / Infinity / 1e400 / 5000-digit ints / deep nesting
        reason = str(e)[:MAX_MSG_CHARS] if isinstance(e, ValueError) else "nesting is too deep"
        raise RequestBodyError(f"the request body is not valid JSON: {reason}") from None


def parse_model(body: bytes, model: type[BaseModel]) -> BaseModel:
    """The body as `model`; RequestBodyError with bounded, input-free details otherwise."""
    data = parse_json(body)
    if not isinstance(data, dict):
        raise RequestBodyError(f"the request body must be a JSON object, got a JSON {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise RequestBodyError("the request does not match the schema", errors=bounded_errors(e)) from None


def bounded_errors(exc: ValidationError) -> list[dict]:
    """At most MAX_ERRORS of pydantic's errors, without input values, with short locations."""
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False)[:MAX_ERRORS]:
        loc = [p if isinstance(p, int) else str(p)[:MAX_LOC_CHARS] for p in err["loc"]]
        out.append({"loc": ["body", *loc], "msg": str(err["msg"])[:MAX_MSG_CHARS], "type": err["type"]})
    return out
