"""Named errors of the feature-store layer; callers map them to exit codes or HTTP statuses."""
from __future__ import annotations

from ..errors import MoonFeaturesError


class EmbeddingValidationError(MoonFeaturesError, ValueError):
    """Embedding rows that must not reach the online store: wrong dimension, NaN / inf, or not floats.

    `item_ids` holds every offending id (the message names the first few)."""

    def __init__(self, message: str, item_ids=()):
        super().__init__(message)
        self.item_ids = list(item_ids)


class OnlineStoreUnavailableError(MoonFeaturesError, ConnectionError):
    """The online store (Redis) cannot be reached; the message names the address. Serving maps it to 503."""

    def __init__(self, message: str, address: str = ""):
        super().__init__(message)
        self.address = address


class OnlineStoreDataError(MoonFeaturesError, RuntimeError):
    """The online store holds a value this spec cannot decode (e.g. a vector of another dimension)."""


class RepoNotReadyError(MoonFeaturesError, RuntimeError):
    """The feature repository lacks its spec or sources; the message says which command makes them."""
