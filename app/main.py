"""The ASGI application: `uvicorn app.main:app` serves LeukoLens."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path

import cv2
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from sqlalchemy import make_url
from starlette.formparsers import MultiPartParser

from app.core.model_registry import ModelRegistry
from app.core.sample_ids import SampleIdPolicy
from app.inference.decoder_processes import DecoderProcesses
from app.inference.in_flight import InFlight
from app.inference.service import BatchingPolicy, PredictionService
from app.inference.upload_checks import UploadLimits
from app.inference.work_shares import SharePolicy
from app.records.performance_watch import PerformanceWatch
from app.records.prediction_records import PredictionRecords
from app.records.review_records import ReviewRecords
from app.settings import (
    BATCH_BODY_FILES_AT_LIMIT,
    RECORDS_IN_MEMORY,
    STATIC_DIR,
    Settings,
    get_settings,
)
from app.web import pages, performance_page
from app.web.api.deps import ApiKeyDep
from app.web.api.routes import (
    audit,
    fhir,
    health,
    hl7v2,
    identity,
    models,
    performance,
    predictions,
    reviews,
    samples,
    sign_off,
)
from app.web.api_docs import add_offline_docs, openapi_matching_the_server
from app.web.errors import add_error_handlers
from app.web.middleware.api_key import ApiKeyMiddleware, accepted_keys
from app.web.middleware.body_size_limit import BodySizeLimitMiddleware
from app.web.middleware.concurrency_limit import ConcurrencyLimitMiddleware
from app.web.middleware.head_as_get import HeadAsGetMiddleware
from app.web.middleware.in_flight_limit import InFlightLimitMiddleware
from app.web.middleware.part_size_limit import PartSizeLimitMiddleware
from app.web.middleware.request_id import RequestIdMiddleware
from app.web.middleware.security_headers import SecurityHeadersMiddleware
from app.web.peer_address import REFUSAL as REWRITING_REFUSAL
from app.web.peer_address import server_rewrites_client_address
from app.web.prometheus_metrics import RequestMetricsMiddleware, ServerMetrics
from app.web.prometheus_metrics import router as metrics_router
from app.web.record_reads import RecordReads

log = logging.getLogger("leukolens.records")
start_log = logging.getLogger("leukolens.start")

API_PREFIX = "/api/v1"
PREDICT_PATH = f"{API_PREFIX}/predict"
BATCH_PATH = f"{API_PREFIX}/predict/batch"
# Multipart framing around the files: boundaries, part headers, the file names.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Every other route reads no upload: a JSON body at most.
OTHER_BODY_BYTES = 1024 * 1024
# Answered whatever the load: an orchestrator restarts a pod whose liveness probe fails.
HEALTH_PATHS = ("/healthz", "/readyz")
DESCRIPTION = (
    "Estimates, from a microscope image of one segmented white blood cell, the probability "
    "that it is an acute lymphoblastic leukemia blast (ALL) rather than a normal cell (HEM). "
    "A research and screening aid, not a diagnosis."
)


def package_version() -> str:
    """The release being served, as installed (pyproject.toml's version)."""
    try:
        return metadata.version("leukolens")
    except metadata.PackageNotFoundError:  # a checkout run without installing it
        return "unknown"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Malformed uploads are answered with 4xx; OpenCV's own stderr chatter about them is noise.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    # Uploads stay in memory, never in a temporary file on disk: Starlette spools a file part
    # past this size, and PartSizeLimitMiddleware refuses any part past the per-file limit
    # before the application sees its bytes, so no part ever reaches the threshold.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, settings.max_upload_bytes)
    metrics = ServerMetrics()
    in_flight = InFlight(settings.max_in_flight)  # the one count; the edge and metrics read it
    metrics.track_queue_depth(lambda: in_flight.count)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.reviewer_header is not None and server_rewrites_client_address():
            raise RuntimeError(REWRITING_REFUSAL)
        for name in settings.deprecated_settings:
            log.warning("%s is deprecated: set LEUKOLENS_RETENTION_DAYS instead", name)
        records = ReviewRecords(
            records_database(settings),
            busy_timeout_seconds=settings.audit_busy_timeout_seconds,
            retention_days=settings.retention_days,
            audit=settings.audit_log,
            journal=settings.journal_path,
            on_quarantined=metrics.audit_journal_quarantined.inc,
        )
        app.state.review_records = records
        try:
            service = build_prediction_service(settings, metrics, records.predictions, in_flight)
        except BaseException:
            records.close()  # a server that cannot serve its models starts nothing
            raise
        app.state.service = service
        announce_start(settings, service.registry)
        watch = PerformanceWatch(
            app.state.review_records.engine,
            [classifier.manifest for classifier in service.registry.models.values()],
            metrics.publish_local_performance,
            settings.performance_refresh_seconds,
        )
        watch.start()
        app.state.record_reads = RecordReads()
        try:
            await service.run(service.registry.warm_up)  # a failure here closes all of it too
            yield
        finally:
            watch.stop()
            app.state.record_reads.close()
            await service.aclose()
            app.state.review_records.close()

    app = FastAPI(
        title="LeukoLens",
        version=package_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.sample_ids = SampleIdPolicy(settings.sample_id_pattern)
    app.state.metrics = metrics
    app.state.in_flight = in_flight
    _include_routes(app)
    add_offline_docs(app)
    pages.add_html_error_pages(app)
    openapi_matching_the_server(app, settings)
    add_error_handlers(app)
    _add_middleware(app, settings, metrics, in_flight)
    return app


def records_database(settings: Settings) -> Path | str:
    """Where samples and decisions live (Settings.records_location): in a database whatever
    the audit's setting, unless LEUKOLENS_RECORDS_IN_MEMORY asks for memory, which start-up
    says, as every record answer and the page do: a review must never be silently volatile."""
    location = settings.records_location
    if location == RECORDS_IN_MEMORY:
        log.warning(
            "LEUKOLENS_RECORDS_IN_MEMORY=true: samples and reviewers' decisions are kept in "
            "memory only and are lost when the server stops"
        )
    return location


def announce_start(settings: Settings, registry: ModelRegistry) -> None:
    """The first thing whoever starts the server needs to know: which model answers, and
    where the records of what it answered go (never a database password)."""
    default = registry.models[registry.default_id].manifest
    others = ", ".join(sorted(set(registry.models) - {registry.default_id})) or "none"
    start_log.info(
        f"serving model {default.id} version {default.version} by default (others by "
        f"?model=: {others}) from {settings.model_store}"
    )
    location = settings.records_location
    if location == RECORDS_IN_MEMORY:
        location = "memory only (lost when the server stops)"
    elif isinstance(location, str):
        location = make_url(location).render_as_string(hide_password=True)
    else:
        location = str(location.resolve())
    journal = f", journal {settings.journal_path.resolve()}" if settings.journal_path else ""
    audit = "audit, samples and decisions" if settings.audit_log else "samples and decisions"
    start_log.info(f"records ({audit}) go to {location}{journal}")


def build_prediction_service(
    settings: Settings,
    metrics: ServerMetrics,
    records: PredictionRecords | None = None,
    in_flight: InFlight | None = None,
) -> PredictionService:
    """The models and the worker pool as the settings say, recording through `records` (the
    records' one writer), counting in `in_flight`, watched by metrics."""
    registry = ModelRegistry.load(
        settings.model_store,
        settings.default_model,
        intra_op_threads=settings.intra_op_threads,
        int8=settings.int8,
        execution_provider=settings.execution_provider,
        force_default=settings.force_default_model,
    )
    service = PredictionService(
        registry,
        UploadLimits(
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_image_pixels,
            max_side=settings.max_image_side,
            max_decoded_bytes=settings.max_decoded_bytes,
        ),
        settings.worker_threads,
        in_flight=in_flight or InFlight(settings.max_in_flight),
        batching=BatchingPolicy(
            max_batch=settings.batch_max_size,
            max_wait_seconds=settings.batch_max_wait_ms / 1000.0,
        ),
        records=records,
        observe_inference=metrics.observe_inference,
        decoders=(
            DecoderProcesses(settings.decoder_processes) if settings.decoder_processes else None
        ),
        shares=SharePolicy(
            explained_slots=settings.explained_slots,
            heavy_decode_slots=max(1, settings.decoder_processes),
            heavy_queue=settings.heavy_queue_depth,
        ),
    )
    if records is not None:
        metrics.track_audit_backlog(lambda: records.backlog)
    for model_id, classifier in registry.models.items():
        manifest = classifier.manifest
        default = str(model_id == registry.default_id).lower()
        metrics.model_info.labels(model_id, manifest.version, manifest.architecture, default).set(1)
    return service


def _include_routes(app: FastAPI) -> None:
    """The API under /api/v1 behind the key (when one is set); health, metrics, pages, assets."""
    api = APIRouter(prefix=API_PREFIX, dependencies=[ApiKeyDep])
    api.include_router(predictions.router)
    api.include_router(models.router)
    api.include_router(reviews.router)
    api.include_router(samples.router)
    api.include_router(sign_off.router)
    api.include_router(fhir.router)
    api.include_router(hl7v2.router)
    api.include_router(performance.router)
    api.include_router(identity.router)
    api.include_router(audit.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(metrics_router)
    app.include_router(pages.router)
    app.include_router(performance_page.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def body_limits(settings: Settings) -> dict[str, int]:
    """Each upload route's own limit: one file for /predict, the batch body for /predict/batch
    (a few files at the per-file limit unless set: what a batch body may hold in memory)."""
    batch = settings.max_batch_bytes or settings.max_upload_bytes * BATCH_BODY_FILES_AT_LIMIT
    return {
        PREDICT_PATH: settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
        BATCH_PATH: batch + MULTIPART_OVERHEAD_BYTES,
    }


def _add_middleware(
    app: FastAPI, settings: Settings, metrics: ServerMetrics, in_flight: InFlight
) -> None:
    """From the inside out (the last added runs first). Everything that can refuse a request
    from its head alone (concurrency, key, in-flight limit, declared size) runs before its body
    is read; the concurrency limit runs inside the request id, metrics and security headers, so
    that its 503s carry them and are counted. Each upload's parts are counted innermost, on the
    chunks the body limit let through."""
    app.add_middleware(
        PartSizeLimitMiddleware,
        max_part_bytes=settings.max_upload_bytes,
        paths={PREDICT_PATH, BATCH_PATH},
    )
    app.add_middleware(
        BodySizeLimitMiddleware,
        limits=body_limits(settings),
        default_limit=OTHER_BODY_BYTES,
        body_timeout_seconds=settings.body_timeout_seconds,
        min_bytes_per_second=settings.min_upload_bytes_per_second,
        grace_seconds=settings.upload_grace_seconds,
    )
    app.add_middleware(
        InFlightLimitMiddleware,
        in_flight=in_flight,
        paths={PREDICT_PATH, BATCH_PATH},
        drain_limit=settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
    )
    api_keys = accepted_keys(settings)
    if api_keys:
        protected = [f"{API_PREFIX}/"]
        if settings.metrics_require_api_key:
            protected.append("/metrics")
        app.add_middleware(ApiKeyMiddleware, api_keys=api_keys, protected=protected)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "X-Request-ID", "Idempotency-Key"],
        )
    if settings.limit_concurrency is not None:
        app.add_middleware(
            ConcurrencyLimitMiddleware,
            limit=settings.limit_concurrency,
            exempt=HEALTH_PATHS,
            drain_limit=OTHER_BODY_BYTES,
        )
    app.add_middleware(
        SecurityHeadersMiddleware, hsts_max_age_seconds=settings.hsts_max_age_seconds
    )
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HeadAsGetMiddleware)


app = create_app()
