"""Export a training run to ONNX plus its model card, refusing exports that do not match.

The ONNX graph is checked with onnx.checker, and onnxruntime must reproduce PyTorch's
probabilities on real images from the run's data to within 1e-4, or nothing is written.
The model is written to a temporary folder beside --out and moved into place only once every
check has passed; then its card's sha256 is recorded in the parent folder's store.json (made
if missing), which the server requires.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from app.core.manifest import (
    EXPLAIN_ONNX_FILENAME,
    MANIFEST_FILENAME,
    ONNX_FILENAME,
    ManifestError,
    ModelManifest,
    changelog_entry,
    file_sha256,
    load_manifest,
)
from app.core.model_registry import record_model
from training.data.image_batches import preprocess_batch
from training.fit.artifacts import CvDir, RunDir
from training.release.card_inputs import ExportOptions, TrainedRun
from training.release.model_card import exported_card, write_card
from training.release.onnx_export import check_parity, export_onnx, parity_images
from training.release.tta_evaluation import measure_tta

PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The export failed a check; --out was left as it was."""


def export_run(run_dir: Path, out_dir: Path, options: ExportOptions | None = None) -> ModelManifest:
    options = options or ExportOptions()
    _check_destination(out_dir)
    earlier = _earlier_card(out_dir)
    trained = TrainedRun.load(run_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Written to a folder beside the destination and moved into place only when every check
    # has passed: a failure removes only that folder, never what was at --out before.
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    try:
        _export(trained, staging, options, earlier)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _move_into_place(staging, out_dir)
    record_model(out_dir.parent, out_dir)
    return load_manifest(out_dir)  # the card as written: its paths made portable


def _check_destination(out_dir: Path) -> None:
    """--out may be new, empty, or an earlier export of a model; anything else is refused
    before any work (a mistyped `--out model_store` must not replace the store)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a directory")
    if any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILENAME).is_file():
        raise ExportError(
            f"{out_dir} exists and is not a model directory (no {MANIFEST_FILENAME}); "
            "export to a new folder inside the store instead"
        )


def _move_into_place(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    replaced = out_dir.with_name(f".{out_dir.name}.replaced-{staging.name}")
    out_dir.rename(replaced)
    staging.rename(out_dir)
    shutil.rmtree(replaced, ignore_errors=True)


def _earlier_card(out_dir: Path) -> ModelManifest | None:
    """The card of the model being replaced at `out_dir`: its history carries on. A card that
    no longer reads (another schema, a graph gone) has no history to give, and is replaced."""
    if not (out_dir / MANIFEST_FILENAME).is_file():
        return None
    try:
        return load_manifest(out_dir, verify_checksum=False)
    except ManifestError:
        return None


def _export(
    trained: TrainedRun, out_dir: Path, options: ExportOptions, earlier: ModelManifest | None
) -> ModelManifest:
    """The graphs and the card into `out_dir`, then the checks on them."""
    model, recipe = trained.model, trained.recipe
    onnx_path = out_dir / ONNX_FILENAME
    explain_path = out_dir / EXPLAIN_ONNX_FILENAME
    export_onnx(model, onnx_path, recipe.input_size)
    export_onnx(model, explain_path, recipe.input_size, explain=True)
    manifest = exported_card(trained, options, file_sha256(onnx_path), file_sha256(explain_path))
    changes = options.changes or (
        f"Trained ({trained.config.arch}, {trained.recipe.input_size} px; the command is in the "
        f"provenance) and exported from the run {trained.run.path.name}."
    )
    history = earlier.changelog if earlier is not None and earlier.id == manifest.id else []
    manifest = manifest.model_copy(
        update={"changelog": [*history, changelog_entry(manifest.version, changes)]}
    )
    write_card(manifest, out_dir)
    batch = preprocess_batch(
        parity_images(trained.config, trained.resolved, options.parity_count), recipe
    )
    difference = check_parity(model, out_dir, batch)
    if not difference <= PARITY_TOLERANCE:
        raise ExportError(
            f"onnxruntime differs from PyTorch by {difference:.2e} in probability "
            f"(tolerance {PARITY_TOLERANCE:.0e}) on {len(batch)} real images"
        )
    tta_runs, tta_where = _held_out_runs(trained.run, options.cv)
    # Test-time augmentation averages calibrated probabilities, which moves calls away from
    # the raw model's 0.5 that `uncalibrated_half` serves: those models keep TTA off.
    if options.measure_tta_gain and tta_runs and options.threshold_rule != "uncalibrated_half":
        card = measure_tta(tta_runs, recipe, out_dir, tta_where)
        manifest = manifest.model_copy(update={"test_time_augmentation": card})
        write_card(manifest, out_dir)
    return manifest


def _held_out_runs(run: RunDir, cv: CvDir | None) -> tuple[list[Path], str]:
    if cv is not None:
        folds = [fold.path for fold in cv.folds() if fold.has_validation_predictions()]
        return folds, f"the {len(folds)} cross-validation models, each on its held-out subjects"
    if run.has_validation_predictions():
        return [run.path], "the run's held-out subjects"
    return [], ""
