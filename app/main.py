"""The ASGI application: `uvicorn app.main:app` serves LeukoLens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from app import pages
from app.api import health, models, predictions
from app.body_limit import BodySizeLimitMiddleware
from app.engine import PredictionEngine
from app.model_registry import ModelRegistry
from app.request_id import RequestIdMiddleware
from app.settings import PACKAGE_DIR, Settings, get_settings
from app.upload_checks import UploadLimits, UploadRejectedError

MULTIPART_OVERHEAD_BYTES = 1024 * 1024
DESCRIPTION = (
    "Estimates, from a microscope image of one segmented white blood cell, the probability "
    "that it is an acute lymphoblastic leukemia blast (ALL) rather than a normal cell (HEM). "
    "A research and screening aid, not a diagnosis."
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = ModelRegistry.load(
            settings.model_store, settings.default_model, intra_op_threads=settings.intra_op_threads
        )
        engine = PredictionEngine(
            registry,
            UploadLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels),
            settings.worker_threads,
        )
        app.state.engine = engine
        await engine.run(registry.warm_up)
        try:
            yield
        finally:
            engine.close()

    app = FastAPI(title="LeukoLens", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    api = APIRouter(prefix="/api/v1")
    api.include_router(predictions.router)
    api.include_router(models.router)
    app.include_router(api)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static")

    @app.exception_handler(UploadRejectedError)
    async def upload_rejected(_: Request, error: UploadRejectedError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=settings.max_upload_bytes * settings.max_batch_files
        + MULTIPART_OVERHEAD_BYTES,
    )
    app.add_middleware(RequestIdMiddleware)
    return app


app = create_app()
