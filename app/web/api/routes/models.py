"""The model cards of every served model."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from app.core.manifest import Adaptation
from app.core.model_registry import UnknownModelError
from app.web.api.bodies import ErrorResponse, ModelCard, ModelList, ModelSummary
from app.web.api.deps import RegistryDep

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
            adapted_from=(
                f"{adaptation.parent_id} v{adaptation.parent_version}" if adaptation else None
            ),
            better_on_held_out=adaptation.better_on_held_out if adaptation else None,
        )
        for model_id, classifier in sorted(registry.models.items())
        for adaptation in [classifier.manifest.adaptation]
    ]
    return ModelList(default=registry.default_id, models=summaries)


@router.get("/{model_id}", response_model=ModelCard, responses={404: {"model": ErrorResponse}})
def model_card(model_id: str, registry: RegistryDep) -> ModelCard:
    try:
        classifier = registry.get(model_id)
    except UnknownModelError as error:
        raise HTTPException(404, str(error)) from error
    return ModelCard(default=model_id == registry.default_id, manifest=classifier.manifest)


@router.get(
    "/{model_id}/adaptation",
    response_model=Adaptation,
    responses={404: {"model": ErrorResponse}},
)
def model_adaptation(model_id: str, registry: RegistryDep) -> Adaptation:
    """What a site model was adapted from, and how parent and adaptation did on the site's
    held-out subjects; 404 for a model that was not adapted."""
    try:
        adaptation = registry.get(model_id).manifest.adaptation
    except UnknownModelError as error:
        raise HTTPException(404, str(error)) from error
    if adaptation is None:
        raise HTTPException(404, f"{model_id} was not adapted from another model")
    return adaptation
