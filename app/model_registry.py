"""Every model in the store, loaded and warmed up once at start; one of them is the default."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.inference import OnnxCellClassifier
from app.manifest import MANIFEST_FILENAME

STORE_INDEX = "store.json"


class ModelStoreError(RuntimeError):
    """The store cannot be served: no models, a broken model, or an unknown default."""


class UnknownModelError(LookupError):
    def __init__(self, model_id: str, known: list[str]) -> None:
        super().__init__(f"unknown model {model_id!r}; available: {', '.join(known)}")


@dataclass
class ModelRegistry:
    models: dict[str, OnnxCellClassifier]
    default_id: str
    warmed_up: bool = False

    @classmethod
    def load(
        cls,
        store: Path,
        default_model: str | None = None,
        *,
        intra_op_threads: int = 1,
        int8: bool = False,
    ) -> ModelRegistry:
        """Refuse to start on a broken store rather than serve a model that cannot be trusted."""
        if not store.is_dir():
            raise ModelStoreError(f"model store {store} is not a directory")
        models: dict[str, OnnxCellClassifier] = {}
        for manifest_path in sorted(store.glob(f"*/{MANIFEST_FILENAME}")):
            try:
                classifier = OnnxCellClassifier(
                    manifest_path.parent, intra_op_threads=intra_op_threads, int8=int8
                )
            except Exception as error:
                raise ModelStoreError(f"cannot load {manifest_path.parent}: {error}") from error
            if classifier.manifest.id in models:
                raise ModelStoreError(f"two models in {store} share id {classifier.manifest.id}")
            models[classifier.manifest.id] = classifier
        if not models:
            raise ModelStoreError(f"model store {store} holds no model (no */{MANIFEST_FILENAME})")
        default_id = default_model or _store_default(store) or next(iter(models))
        if default_id not in models:
            raise ModelStoreError(f"default model {default_id!r} is not in {store}")
        return cls(models=models, default_id=default_id)

    def get(self, model_id: str | None = None) -> OnnxCellClassifier:
        key = model_id or self.default_id
        if key not in self.models:
            raise UnknownModelError(key, sorted(self.models))
        return self.models[key]

    def warm_up(self) -> None:
        """One inference per model, so the first request does not pay for lazy initialisation."""
        for classifier in self.models.values():
            size = classifier.manifest.input.size
            classifier.predict(np.zeros((1, 3, size, size), dtype=np.float32))
        self.warmed_up = True


def _store_default(store: Path) -> str | None:
    index = store / STORE_INDEX
    if not index.is_file():
        return None
    value = json.loads(index.read_text(encoding="utf-8")).get("default")
    return str(value) if value else None
