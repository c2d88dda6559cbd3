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
        views = [USER_PROFILE_VIEW, ITEM_PROFILE_VIEW, SEQUENCE_VIEW] + [q.view_name for q in scorer.spec.sequences]
        views += [embedding_view_name(v) for v in scorer.embedding_versions]
        if scorer.projected is not None:  # the projected item view it reads instead
            views.append(scorer.projected.view)
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
        spec = scorer.reader.spec
        # every positive event enters the main sequence; one of a sequence's event types, that one too
        self.appender = SequenceAppender(scorer.store, spec)
        self.sequence_types = [(q.name, q.event_types) for q in spec.sequences]
        self.min_time = settings.min_event_time()
        self.max_future = timedelta(seconds=settings.events_max_future_s)
        self.event_types = settings.event_type_set()

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

    def check_ids(self, user_code: int, item_code: int, item_id) -> None:
        """Codes as the store keys them (idmap.py); `item_id` is the caller's, for the message."""
        if user_code < 1 or item_code < 1:
            raise EventRejectedError("user_id and item_id must be positive (0 is the padding id)")
        _, found = self.scorer.reader.item_profiles([item_code])
        if not bool(found[0]):
            raise EventRejectedError(f"item_id {str(item_id)[:64]} is not in the catalogue (no row in "
                                     f"{ITEM_PROFILE_VIEW}); add the item and materialize before sending its events")

    def check_type(self, event_type: str) -> None:
        if event_type not in self.event_types:
            raise EventRejectedError(f"event_type must be one of {sorted(self.event_types)} (the service's "
                                     "event_types setting: add e.g. purchase or add_to_cart there)")

    def append(self, user_id, item_id, given: datetime | None, event_type: str = "click") -> dict:
        """Append one positive event, ids as the caller's dataset has them; the row in the caller's ids."""
        self.check_type(event_type)
        when = self.event_time(given)
        self.health.check()
        ids = self.scorer.ids
        user_code, item_code = int(ids.users.encode([user_id])[0]), int(ids.items.encode([item_id])[0])
        self.check_ids(user_code, item_code, item_id)
        also = tuple(name for name, types in self.sequence_types if event_type in types)
        row = dict(self.appender.append(user_code, item_code, when, also=also))
        row["user_id"] = user_id
        row["hist_item_ids"] = ids.items.decode(row["hist_item_ids"])
        return row

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
