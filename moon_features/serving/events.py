"""What /events and /health check before they trust the online store, and the event append itself.

An acknowledged event is a stored event, and only a sane one is stored:
* ids are positive (0 is the sequences' padding id) and the item is in the catalogue: it has a
  row in the item profile view of the online store (an unknown item would be attended to as a
  zero vector by every later score);
* the time lies in [events_min_time, now + events_max_future_s]: Feast's readers overflow on
  times like 9999-12-31, and a time far ahead would stamp the user's row so that every later
  event is "late";
* the store still holds what was materialized (markers.py): appending to a wiped store would
  replace the user's history with one item.
The append is atomic per user (store.push.SequenceAppender).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from ..spec import ITEM_PROFILE_VIEW, SEQUENCE_VIEW, USER_PROFILE_VIEW, embedding_view_name
from ..store.markers import MarkerStore
from ..store.push import SequenceAppender
from .errors import EventRejectedError, StoreNotMaterializedError
from .settings import ServingSettings


class StoreHealth:
    """The views the model reads must carry their materialization marker in the online store."""

    def __init__(self, scorer, settings: ServingSettings):
        self.scorer, self.settings = scorer, settings
        self.markers = MarkerStore(scorer.store.config)
        views = [USER_PROFILE_VIEW, ITEM_PROFILE_VIEW, SEQUENCE_VIEW]
        if scorer.embedding_version is not None:
            views.append(embedding_view_name(scorer.embedding_version))
        self.views = views

    def check(self) -> None:
        """Raises StoreNotMaterializedError (a marker is missing) or OnlineStoreUnavailableError."""
        if not self.settings.require_materialized:
            return
        missing = self.markers.missing_views(self.views)
        if missing:
            raise StoreNotMaterializedError(missing, self.settings.repo)

    def close(self) -> None:
        self.markers.close()


class EventService:
    def __init__(self, scorer, settings: ServingSettings, health: StoreHealth):
        self.scorer, self.settings, self.health = scorer, settings, health
        self.appender = SequenceAppender(scorer.store, scorer.reader.spec)
        self.min_time = settings.min_event_time()
        self.max_future = timedelta(seconds=settings.events_max_future_s)

    def event_time(self, given: datetime | None) -> datetime:
        now = datetime.now(timezone.utc)
        if given is None:
            return now
        when = given.astimezone(timezone.utc)
        if when < self.min_time:
            raise EventRejectedError(f"event_timestamp is before {self.min_time.isoformat()} (events_min_time); "
                                     "send the time the event happened, in UTC")
        if when > now + self.max_future:
            raise EventRejectedError(f"event_timestamp is more than {self.settings.events_max_future_s} s ahead of "
                                     "the server's clock (events_max_future_s); send the time the event happened")
        return when

    def check_ids(self, user_id: int, item_id: int) -> None:
        if user_id < 1 or item_id < 1:
            raise EventRejectedError("user_id and item_id must be positive (0 is the padding id)")
        _, found = self.scorer.reader.item_profiles([item_id])
        if not bool(found[0]):
            raise EventRejectedError(f"item_id {item_id} is not in the catalogue (no row in {ITEM_PROFILE_VIEW}); "
                                     "add the item and materialize before sending its events")

    def append(self, user_id: int, item_id: int, given: datetime | None) -> dict:
        when = self.event_time(given)
        self.health.check()
        self.check_ids(user_id, item_id)
        return self.appender.append(user_id, item_id, when)

    def close(self) -> None:
        self.appender.close()


class CachedHealth:
    """StoreHealth for /score: a wiped store answers 503 there too, for one marker read per second."""

    def __init__(self, health: StoreHealth, max_age_s: float = 1.0):
        self.health, self.max_age_s = health, max_age_s
        self._ok_until = 0.0

    def check(self) -> None:
        if time.monotonic() < self._ok_until:
            return
        self.health.check()
        self._ok_until = time.monotonic() + self.max_age_s
