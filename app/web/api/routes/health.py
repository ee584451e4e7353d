"""Liveness and readiness for orchestrators and Docker's HEALTHCHECK."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.web.api.bodies import Health, Readiness
from app.web.api.deps import RegistryDep

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is alive and answering."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(registry: RegistryDep) -> Readiness | JSONResponse:
    """Models are loaded and warmed up."""
    readiness = Readiness(
        status="ready" if registry.warmed_up else "starting",
        models=sorted(registry.models),
        providers={
            model_id: classifier.provider
            for model_id, classifier in sorted(registry.models.items())
        },
    )
    if not registry.warmed_up:
        return JSONResponse(readiness.model_dump(), status_code=503)
    return readiness
