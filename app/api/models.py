"""The model cards of every served model."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from app.dependencies import RegistryDep
from app.model_registry import UnknownModelError
from app.schemas import ErrorResponse, ModelCard, ModelList, ModelSummary

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelList)
def list_models(registry: RegistryDep) -> ModelList:
    summaries = [
        ModelSummary(
            id=model_id,
            version=classifier.manifest.version,
            architecture=classifier.manifest.architecture,
            input_size=classifier.manifest.input.size,
            threshold=classifier.manifest.threshold.value,
            default=model_id == registry.default_id,
            provider=classifier.provider,
        )
        for model_id, classifier in sorted(registry.models.items())
    ]
    return ModelList(default=registry.default_id, models=summaries)


@router.get("/{model_id}", response_model=ModelCard, responses={404: {"model": ErrorResponse}})
def model_card(model_id: str, registry: RegistryDep) -> ModelCard:
    try:
        classifier = registry.get(model_id)
    except UnknownModelError as error:
        raise HTTPException(404, str(error)) from error
    return ModelCard(default=model_id == registry.default_id, manifest=classifier.manifest)
