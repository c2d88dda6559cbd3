"""Prometheus metrics of the scoring service, on a registry of its own (one per app, so two apps in
one process, e.g. in tests, never share counters).

moon_serving_requests_total{endpoint,status}              requests answered
moon_serving_request_latency_seconds{endpoint}            wall time in the app, histogram
moon_serving_stage_latency_seconds{stage}                 lookup / batch / model time of /score, histogram
moon_serving_candidates                                   candidates per /score request, histogram
moon_serving_lookup_misses_total{kind}                    unknown users, candidate items, history items
moon_serving_store_unavailable_total                      requests answered 503
"""
from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

# Latency buckets around the 10-25 ms targets; a ranking call is budgeted in milliseconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)
KNOWN_PATHS = {"/score", "/events", "/health", "/metrics"}


class ServingMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("moon_serving_requests", "Requests answered", ["endpoint", "status"], registry=r)
        self.latency = Histogram("moon_serving_request_latency_seconds", "Request wall time in the app",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.stage = Histogram("moon_serving_stage_latency_seconds", "Time of one /score stage",
                               ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.candidates = Histogram("moon_serving_candidates", "Candidates per /score request",
                                    buckets=(1, 10, 50, 100, 200, 500, 1000, 5000), registry=r)
        self.misses = Counter("moon_serving_lookup_misses", "Ids the online store did not have", ["kind"], registry=r)
        self.unavailable = Counter("moon_serving_store_unavailable", "Requests answered 503", registry=r)
        for kind in ("user", "item", "history_item"):
            self.misses.labels(kind)  # present at 0 from the start, so rate() works immediately

    def observe_score(self, result) -> None:
        self.candidates.observe(len(result.scores))
        for stage, seconds in result.timings.items():
            self.stage.labels(stage).observe(seconds)
        if not result.user_found:
            self.misses.labels("user").inc()
        unknown = int((~result.item_found).sum())
        if unknown:
            self.misses.labels("item").inc(unknown)
        if result.history_missing:
            self.misses.labels("history_item").inc(result.history_missing)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by path and status, including
    the 422s FastAPI answers before a handler runs (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app, metrics: ServingMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        endpoint = path if path in KNOWN_PATHS else "other"
        status = {"code": 500}
        start = time.perf_counter()

        async def record(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            self.metrics.requests.labels(endpoint, str(status["code"])).inc()
