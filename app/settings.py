"""All server settings in one place, read from `LEUKOLENS_*` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_model_store() -> Path:
    """model_store/ ships inside the wheel as app/model_store; in a checkout it sits beside app/."""
    packaged = PACKAGE_DIR / "model_store"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "model_store"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEUKOLENS_", protected_namespaces=())

    model_store: Path = Field(default_factory=bundled_model_store)
    default_model: str | None = Field(
        None, description="Model id served when a request names none; else the store's default."
    )
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Per image file.")
    max_image_pixels: int = Field(50_000_000, ge=1, description="Width x height, from the header.")
    max_batch_files: int = Field(64, ge=1)
    worker_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Threads that decode, preprocess and run inference off the event loop.",
    )
    intra_op_threads: int = Field(
        1, ge=0, description="onnxruntime threads per call; 1 lets the worker pool use the cores."
    )
    int8: bool = Field(
        False,
        description="Serve each model's int8 graph where it ships one (int8.json in its folder: "
        "measured faster with ROC AUC within 0.002); the float32 graph otherwise.",
    )
    max_in_flight: int = Field(
        64, ge=1, description="Prediction requests in progress beyond which new ones get 503."
    )
    batch_max_size: int = Field(
        8, ge=1, description="Micro-batching: images per inference (memory grows with it)."
    )
    batch_max_wait_ms: float = Field(
        5.0, ge=0.0, description="Micro-batching: longest wait for more requests to join."
    )
    audit_log: bool = True
    audit_log_path: Path = Path("leukolens-audit.sqlite3")
    audit_retention_days: float = Field(365.0, gt=0)
    api_key: SecretStr | None = Field(
        None, description="When set, every /api request must send it in the X-API-Key header."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser; none."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)


@lru_cache
def get_settings() -> Settings:
    return Settings()
