"""Typed dependencies: what a route needs, taken from the running application's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.engine import PredictionEngine
from app.model_registry import ModelRegistry
from app.settings import Settings


def get_engine(request: Request) -> PredictionEngine:
    return request.app.state.engine


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.engine.registry


def get_settings_from_app(request: Request) -> Settings:
    return request.app.state.settings


def get_request_id(request: Request) -> str:
    return request.state.request_id


EngineDep = Annotated[PredictionEngine, Depends(get_engine)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
