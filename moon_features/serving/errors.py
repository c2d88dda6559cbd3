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
