"""Typed dependencies: what a route needs, taken from the running application's state.

They are `async def` although they never await: FastAPI runs a plain `def` dependency on a
worker thread, a thread hop per dependency per request for an attribute lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.service.model_registry import ModelRegistry
from app.service.prediction_service import PredictionService
from app.service.review_records import ReviewRecords
from app.settings import Settings


async def get_service(request: Request) -> PredictionService:
    return request.app.state.service


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.service.registry


async def get_settings_from_app(request: Request) -> Settings:
    return request.app.state.settings


async def get_request_id(request: Request) -> str:
    return request.state.request_id


async def get_review_records(request: Request) -> ReviewRecords:
    return request.app.state.review_records


ServiceDep = Annotated[PredictionService, Depends(get_service)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
ReviewRecordsDep = Annotated[ReviewRecords, Depends(get_review_records)]
