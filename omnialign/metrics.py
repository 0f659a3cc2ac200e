"""Prometheus metrics of an ingest run (prometheus-client, in the driver process).

Every committed row comes back to the driver with its wall-clock stamps (decoded, tokenized,
committed), so the driver observes per-stage latency and end-to-end lag for the whole cluster in
one place; actors need no metrics endpoint of their own.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from engine.ingest.records import SYNC_FALLBACK, CommitRecord

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)


class IngestMetrics:
    """The metric set; one registry per run so tests and repeated runs don't collide.

    Args:
        port: Serve ``/metrics`` on this port (None: don't serve; the registry still fills).
    """

    def __init__(self, port: int | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.segments_out = Counter("omnialign_segments_committed", "Segments committed to LanceDB", ["stream"], registry=r)
        self.segment_errors = Counter("omnialign_segment_errors", "Segments that failed a stage", ["stream"], registry=r)
        self.tokens_in = Counter("omnialign_tokens_in", "Tokens before compression", registry=r)
        self.tokens_out = Counter("omnialign_tokens_out", "Tokens after compression", registry=r)
        self.stage_latency = Histogram("omnialign_stage_latency_seconds", "Wall time spent from one stage's output to the next",
                                       ["stage"], buckets=_LATENCY_BUCKETS, registry=r)
        self.e2e_lag = Histogram("omnialign_end_to_end_lag_seconds", "Wall time from a segment being decoded to its row being committed",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.realtime_factor = Gauge("omnialign_realtime_factor", "Media seconds committed per wall second", registry=r)
        self.sync_offset = Gauge("omnialign_sync_offset_ms", "Current A/V offset estimate", ["stream"], registry=r)
        self.sync_drift = Gauge("omnialign_sync_drift_ppm", "Current A/V drift estimate", ["stream"], registry=r)
        self.sync_fallbacks = Counter("omnialign_sync_fallback_rows", "Rows written with the stream's newest estimate "
                                      "because their own was lost", ["stream"], registry=r)
        self.sync_confidence = Gauge("omnialign_sync_confidence", "Confidence of the sync estimate", ["stream"], registry=r)
        self.server = None
        if port is not None:
            self.server, _thread = start_http_server(port, addr="127.0.0.1", registry=r)

    def observe_commit(self, row: CommitRecord) -> None:
        """Records one committed (or failed) segment from the writer's commit record."""
        if row.error is not None:
            self.segment_errors.labels(row.stream_id).inc()
            return
        self.segments_out.labels(row.stream_id).inc()
        self.tokens_in.inc(row.tokens_in)
        self.tokens_out.inc(row.tokens_out)
        self.sync_fallbacks.labels(row.stream_id).inc(row.sync_status == SYNC_FALLBACK)
        # decoded -> tokenized includes the wait in the source queue (backpressure shows here)
        self.stage_latency.labels("queue_and_tokenize").observe(max(0.0, row.wall_tokenized_s - row.wall_decoded_s))
        self.stage_latency.labels("align_and_write").observe(max(0.0, row.wall_committed_s - row.wall_tokenized_s))
        self.e2e_lag.observe(max(0.0, row.wall_committed_s - row.wall_decoded_s))
        if row.offset_ms is not None:  # the estimate each row was written with: sync shows live
            self.sync_offset.labels(row.stream_id).set(row.offset_ms)
            self.sync_drift.labels(row.stream_id).set(row.drift_ppm or 0.0)
            self.sync_confidence.labels(row.stream_id).set(row.confidence or 0.0)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None
