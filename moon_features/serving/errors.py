"""Named errors of the serving layer; the HTTP app maps each to one status code."""
from __future__ import annotations

from ..errors import MoonFeaturesError
from ..spec import SpecMismatchError


class ServingError(MoonFeaturesError):
    """Base of the errors a scoring request or the service's configuration can cause."""


class ModelStoreMismatchError(SpecMismatchError, ServingError):
    """The model artifact was trained on features the feature store does not serve (another spec,
    another embedding version or dimension); raised at load time, never per request."""


class TooManyCandidatesError(ServingError, ValueError):
    """A request carries more candidates than the service is configured for (HTTP 413)."""

    def __init__(self, count: int, limit: int):
        super().__init__(f"{count} candidates exceed the limit of {limit} per request; split the request "
                         "or raise max_candidates in the serving settings")
        self.count, self.limit = count, limit


class ContextError(ServingError, ValueError):
    """The request's context names a feature the model does not have, or gives a bad value (HTTP 422)."""


class SettingsError(ServingError, ValueError):
    """The serving configuration (file, environment or arguments) is incomplete or invalid."""


class ConsistencyError(ServingError, AssertionError):
    """Offline (training) and online (serving) scores of the same rows disagree beyond the tolerance."""


class RequestBodyError(ServingError, ValueError):
    """The request body is not strict JSON of the endpoint's schema (HTTP 422). `errors` lists at
    most a few problems, each with its location and message, never the input value."""

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors = errors or []


class EventRejectedError(ServingError, ValueError):
    """An event names an id or a time the service must not store: a non-positive id, an item
    outside the catalogue, a time before events_min_time or too far in the future (HTTP 422)."""


class StoreNotMaterializedError(ServingError, RuntimeError):
    """The online store lacks the materialization marker of a view the model reads: it was wiped
    (e.g. Redis restarted without its data) or never filled (HTTP 503 on /health and /events)."""

    def __init__(self, views: list[str], repo: str | None):
        where = f" --repo {repo}" if repo else " --repo REPO"
        super().__init__(f"the online store holds no materialized data for {', '.join(views)}: it was wiped or "
                         f"never filled. Refill it with `moon-features materialize{where}` (add --config for "
                         "another feature_store.yaml).")
        self.views = views


class ProjectedItemsUnsupportedError(ServingError, ValueError):
    """The model has no projected item view: a DIN over several behaviour sequences (its rows hold
    the main attention's terms only); raised by `export --projected-items` and at load."""


class ProjectedItemsMismatchError(ModelStoreMismatchError):
    """The artifact's projected item view (serving/projected.py) is missing from the store, was built
    from other weights, or is not pinned by its feature service; raised at load time."""
