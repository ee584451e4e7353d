"""Prometheus metrics at /metrics: requests, latencies, inference, batching, queue, models.

Each application gets its own registry, so several apps in one process (tests) never share
counters.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.domain.performance import LocalPerformance

access_log = logging.getLogger("leukolens.access")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leukolens_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "leukolens_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_latency = Histogram(
            "leukolens_inference_duration_seconds",
            "onnxruntime time per batch, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "leukolens_inference_batch_size",
            "Images per onnxruntime call, by model.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "leukolens_requests_in_flight",
            "Prediction requests admitted and not yet answered.",
            registry=self.registry,
        )
        self.audit_backlog = Gauge(
            "leukolens_audit_backlog",
            "Audit rows answered and not yet written (a busy database holds them back).",
            registry=self.registry,
        )
        self.audit_journal_quarantined = Counter(
            "leukolens_audit_journal_quarantined_total",
            "Audit journal lines set aside at start-up (no row, or a row the database refused "
            "for its content), in the quarantine file beside the journal.",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "leukolens_model_info",
            "Served models (value 1); default marks the default.",
            ["model", "version", "architecture", "default"],
            registry=self.registry,
        )

        # The lab's own figures, from its reviewers' latest decisions (GET /api/v1/performance
        # without parameters): labelled by model id only, so that versions never multiply them.
        self.local_sensitivity = Gauge(
            "leukolens_local_sensitivity",
            "Sensitivity (ALL found) on the lab's reviewed cells; NaN without ALL cells.",
            ["model"],
            registry=self.registry,
        )
        self.local_specificity = Gauge(
            "leukolens_local_specificity",
            "Specificity (normal kept) on the lab's reviewed cells; NaN without normal cells.",
            ["model"],
            registry=self.registry,
        )
        self.local_reviewed_cells = Gauge(
            "leukolens_local_reviewed_cells",
            "Reviewed cells behind the local rates (decided ALL or normal, counted once).",
            ["model"],
            registry=self.registry,
        )
        self.local_performance_alert = Gauge(
            "leukolens_local_performance_alert",
            "1 when a local rate's 95% interval lies wholly below the card's on unseen patients.",
            ["model"],
            registry=self.registry,
        )

    def publish_local_performance(self, figures: LocalPerformance) -> None:
        model = figures.model.id
        for gauge, rate in (
            (self.local_sensitivity, figures.sensitivity),
            (self.local_specificity, figures.specificity),
        ):
            gauge.labels(model).set(math.nan if rate.value is None else rate.value)
        self.local_reviewed_cells.labels(model).set(figures.cells)
        self.local_performance_alert.labels(model).set(int(figures.drift.alert))

    def observe_inference(self, model_id: str, images: int, seconds: float) -> None:
        self.inference_latency.labels(model_id).observe(seconds)
        self.batch_size.labels(model_id).observe(images)

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def track_audit_backlog(self, backlog: Callable[[], float]) -> None:
        self.audit_backlog.set_function(backlog)


def route_template(scope: Scope) -> str:
    """The matched route with its parameters as placeholders (/api/v1/models/{model_id}), so
    ids in URLs cannot grow the label set without bound; "other" for static files and 404s."""
    if scope.get("route") is None:
        return "other"
    template = str(scope["path"])
    for name, value in (scope.get("path_params") or {}).items():
        head, found, tail = template.rpartition(str(value))
        if found:
            template = f"{head}{{{name}}}{tail}"
    return template


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """Made-up method names (h11 passes any token) fold into one label: series stay bounded."""
    return method if method in KNOWN_METHODS else "OTHER"


class RequestMetricsMiddleware:
    """Counts and times every request by its route template and writes the access log."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            elapsed = time.perf_counter() - started
            template = route_template(scope)
            method = method_label(scope["method"])
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.request_latency.labels(template, method).observe(elapsed)
            access_log.info(
                "%s %s %d %.1f ms",
                method,
                template,
                status,
                elapsed * 1000,
                extra={
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "request_id": scope.get("state", {}).get("request_id", ""),
                    "client_request_id": scope.get("state", {}).get("client_request_id", ""),
                },
            )


router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
