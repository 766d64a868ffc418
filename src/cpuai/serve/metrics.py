"""Prometheus metrics for one server app, in its own CollectorRegistry (several apps per process are fine)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """Requests, latency, batch size, queue depth and model state, labelled per model."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "cpuai_requests", "Requests answered", ["model", "protocol", "code"], registry=r
        )
        self.latency = Histogram(
            "cpuai_request_seconds",
            "Request latency, arrival to answer",
            ["model", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "cpuai_batch_size", "Rows per engine batch", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "cpuai_batch_seconds", "Engine time per batch", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.engine_batches = Counter(
            "cpuai_engine_batches",
            "Batches run, by engine: all-cores (a batch alone) or per-core (batches side by side)",
            ["model", "engine"],
            registry=r,
        )
        self.queue_depth = Gauge("cpuai_queue_depth", "Requests waiting for a batch", ["model"], registry=r)
        self.in_flight = Gauge("cpuai_batches_in_flight", "Batches running", ["model"], registry=r)
        self.ready = Gauge(
            "cpuai_model_ready", "1 when the model serves requests", ["model", "version"], registry=r
        )

    def observer(self, model: str):
        """A ``BatchQueue.observe`` callback for ``model``."""
        size, seconds = self.batch_size.labels(model), self.batch_seconds.labels(model)

        def observe(rows: int, took: float) -> None:
            size.observe(rows)
            seconds.observe(took)

        return observe

    def render(self) -> bytes:
        return generate_latest(self.registry)
