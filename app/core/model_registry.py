"""Every model in the store, loaded and warmed up once at start; one of them is the default.

The store says what it serves: `store.json` names the default model and records the sha256 of
each model's card (manifest.json). Without a default there (or in LEUKOLENS_DEFAULT_MODEL) the
server refuses to start rather than pick one, and a card whose bytes differ from the recorded
checksum (a threshold edited by hand, say) is refused with the file named.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from app.core.classifier import OnnxCellClassifier
from app.core.manifest import (
    MANIFEST_FILENAME,
    ModelManifest,
    card_sha256,
    load_manifest,
    not_recommended,
)

STORE_INDEX = "store.json"


class ModelStoreError(RuntimeError):
    """The store cannot be served: no models, a broken or edited model, or no known default."""


class UnknownModelError(LookupError):
    def __init__(self, model_id: str, known: list[str]) -> None:
        super().__init__(f"unknown model {model_id!r}; available: {', '.join(known)}")


@dataclass(frozen=True)
class StoreIndex:
    """store.json: {"default": id, "models": {id: {"card_sha256": hex}}}."""

    default: str | None
    card_checksums: dict[str, str]

    @classmethod
    def read(cls, store: Path) -> StoreIndex:
        path = store / STORE_INDEX
        if not path.is_file():
            return cls(default=None, card_checksums={})
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            models = document.get("models", {})
            checksums = {str(key): str(value["card_sha256"]) for key, value in models.items()}
            default = document.get("default")
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ModelStoreError(f"{path} is not a valid store index: {error}") from error
        return cls(default=str(default) if default else None, card_checksums=checksums)

    def write(self, store: Path) -> Path:
        """Written beside, then moved over the old index: a reader never sees half a file."""
        path = store / STORE_INDEX
        document: dict[str, object] = {}
        if self.default:
            document["default"] = self.default
        document["models"] = {
            model_id: {"card_sha256": checksum}
            for model_id, checksum in sorted(self.card_checksums.items())
        }
        partial = path.with_name(f".{STORE_INDEX}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
        return path


def refuse_not_recommended(manifest: ModelManifest) -> None:
    if not_recommended(manifest):
        raise ModelStoreError(
            f"{manifest.id} is an adapted model whose card says not recommended (its gain over "
            f"{manifest.adaptation.parent_id if manifest.adaptation else 'its parent'} on the "
            "lab's held-out samples is not above 0): not made the default unless forced "
            "(LEUKOLENS_FORCE_DEFAULT_MODEL=true)"
        )


def record_model(
    store: Path, model_dir: Path, *, default: bool = False, force: bool = False
) -> Path:
    """Record a model's card checksum in the store's index (made if missing); returns it.
    A model whose card says not recommended becomes the default only when forced."""
    manifest = load_manifest(model_dir, verify_checksum=False)
    if default and not force:
        refuse_not_recommended(manifest)
    index = StoreIndex.read(store)
    checksums = {**index.card_checksums, manifest.id: card_sha256(model_dir)}
    first = index.default is None and not not_recommended(manifest)
    chosen = manifest.id if default or first else index.default
    return StoreIndex(default=chosen, card_checksums=checksums).write(store)


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
        execution_provider: str = "cpu",
        force_default: bool = False,
    ) -> ModelRegistry:
        """Refuse to start on a broken store rather than serve a model that cannot be trusted,
        or with a default whose card says not recommended (unless `force_default`)."""
        if not store.is_dir():
            raise ModelStoreError(f"model store {store} is not a directory")
        index_path = store / STORE_INDEX
        if not index_path.is_file():
            raise ModelStoreError(
                f"{index_path} is missing: it names the default model and records each card's "
                "sha256 (`python -m training export` writes it)"
            )
        index = StoreIndex.read(store)
        models: dict[str, OnnxCellClassifier] = {}
        for manifest_path in sorted(store.glob(f"*/{MANIFEST_FILENAME}")):
            try:
                classifier = OnnxCellClassifier(
                    manifest_path.parent,
                    intra_op_threads=intra_op_threads,
                    int8=int8,
                    execution_provider=execution_provider,
                )
            except Exception as error:
                raise ModelStoreError(f"cannot load {manifest_path.parent}: {error}") from error
            model_id = classifier.manifest.id
            if model_id in models:
                raise ModelStoreError(f"two models in {store} share id {model_id}")
            recorded = index.card_checksums.get(model_id)
            if recorded is None:
                raise ModelStoreError(
                    f"{index_path} records no card checksum for {model_id} ({manifest_path}); "
                    "export models with `python -m training export`, which records it"
                )
            if card_sha256(manifest_path.parent) != recorded:
                raise ModelStoreError(
                    f"{manifest_path} differs from the sha256 recorded for it in {index_path}: "
                    "a card edited by hand is not served"
                )
            models[model_id] = classifier
        if not models:
            raise ModelStoreError(f"model store {store} holds no model (no */{MANIFEST_FILENAME})")
        missing = sorted(set(index.card_checksums) - set(models))
        if missing:
            raise ModelStoreError(f"{index_path} lists {', '.join(missing)}, not in {store}")
        default_id = default_model or index.default
        if default_id is None:
            raise ModelStoreError(
                f"{index_path} names no default model and LEUKOLENS_DEFAULT_MODEL is not set; "
                f"set one of: {', '.join(sorted(models))}"
            )
        if default_id not in models:
            raise ModelStoreError(f"default model {default_id!r} is not in {store}")
        if not force_default:
            refuse_not_recommended(models[default_id].manifest)
        return cls(models=models, default_id=default_id)

    def get(self, model_id: str | None = None) -> OnnxCellClassifier:
        key = model_id or self.default_id
        if key not in self.models:
            raise UnknownModelError(key, sorted(self.models))
        return self.models[key]

    def warm_up(self) -> None:
        """One inference per model, so the first request does not pay for lazy initialisation."""
        for classifier in self.models.values():
            classifier.warm_up()
        self.warmed_up = True
