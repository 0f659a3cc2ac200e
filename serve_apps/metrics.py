"""Prometheus metrics of the HTTP ingress (prometheus-client, one registry per replica process).

``GET /metrics`` of a replica shows that replica's counters. Cluster-wide request metrics of
every deployment (``ray_serve_*``: request counts, latencies, queue lengths, replicas) come from
Ray's own metrics endpoint, which the Ray autoscaler and dashboards already scrape.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class ServeMetrics:
    """Requests by endpoint and status, latency, generated tokens and routing decisions."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("omnialign_http_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.latency = Histogram("omnialign_http_request_seconds", "Wall time of successful generation requests",
                                 ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("omnialign_generated_tokens", "Tokens generated", ["endpoint"], registry=r)
        self.routes = Counter("omnialign_route_decisions", "Adapters chosen by the router",
                              ["kind"], registry=r)

    def routed(self, route: dict) -> None:
        kind = "composed" if route["composed"] else ("base" if not route["mixture"] else "single")
        self.routes.labels(kind).inc()

    def done(self, endpoint: str, status: int, seconds: float, tokens: int) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if status == 200:
            self.latency.labels(endpoint).observe(seconds)
        self.tokens.labels(endpoint).inc(tokens)

    def error(self, endpoint: str, status: int) -> None:
        self.requests.labels(endpoint, str(status)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_INSTANCE: ServeMetrics | None = None


def serve_metrics() -> ServeMetrics:
    """The process-wide instance (one ingress replica per process).

    A function, not a module constant: Serve pickles the ingress class by value, and a constant
    captured that way would be a copy that error handlers (module code) never update.
    """
    global _INSTANCE
    if _INSTANCE is None:
        _INSTANCE = ServeMetrics()
    return _INSTANCE
