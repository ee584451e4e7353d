"""Export a training run to ONNX plus its model card, refusing exports that do not match.

The ONNX graph is checked with onnx.checker, and onnxruntime must reproduce PyTorch's
probabilities on real images from the run's data to within 1e-4, or nothing is written.
The model is written to a temporary folder beside --out and moved into place only once every
check has passed; then its card's sha256 is recorded in the parent folder's store.json (made
if missing), which the server requires.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import torch

from app.core.classifier import OnnxCellClassifier
from app.core.manifest import (
    EXPLAIN_ONNX_FILENAME,
    GRADCAM_OUTPUT,
    INPUT_NAME,
    LOGIT_OUTPUT,
    MANIFEST_FILENAME,
    ONNX_FILENAME,
    PROBABILITY_OUTPUT,
    Evaluation,
    ManifestError,
    ModelInput,
    ModelManifest,
    Provenance,
    SubjectCounts,
    TrainingData,
    changelog_entry,
    file_sha256,
    load_manifest,
    write_manifest,
)
from app.core.preprocessing import PreprocessConfig
from app.core.quality_checks import QualityReference, build_reference, measure_cell
from app.service.model_registry import record_model
from training.artifacts import CvDir, CvSummary, RunConfig, RunDir
from training.checkpoints import load_trained_model
from training.classification_metrics import binary_metrics, per_subject_accuracy
from training.dataset_index import (
    EXTERNAL_PRELIM,
    LABEL_NAMES,
    PRELIM_FOLD,
    list_images,
    read_image,
    subject_label,
)
from training.decision_rule import (
    DecisionRule,
    HeldOut,
    ThresholdRule,
    choose_decision_rule,
    held_out_predictions,
)
from training.gelu_fusion import reorder_gelu_for_fusion
from training.image_batches import preprocess_batch
from training.models import (
    CellClassifier,
    ExplainedProbabilityExport,
    ProbabilityExport,
    count_parameters,
    predict_probabilities,
)
from training.population_report import population_evaluation, unseen_people_evaluation
from training.predictions import Predictions
from training.train_config import TrainConfig
from training.tta_evaluation import measure_tta

PARITY_TOLERANCE = 1e-4
ONNX_OPSET = 18
SOFTWARE = ("torch", "timm", "onnx", "onnxruntime", "opencv-python-headless", "numpy")
KNOWN_LIMITATIONS = [
    "Expects one segmented cell on a black background, as in C-NMC; whole smear fields or "
    "unsegmented cells are out of scope.",
    "Few subjects, HEM subjects especially: metrics vary strongly from subject to subject.",
    "Probabilities are not calibrated unless the card says so.",
]


class ExportError(RuntimeError):
    """The export failed a check; --out was left as it was."""


def default_model_id(config: TrainConfig) -> str:
    return f"{config.arch}-{config.img_size}-{config.crop.value}".lower().replace("_", "-")


def parity_images(config: TrainConfig, resolved: RunConfig, count: int) -> list[np.ndarray]:
    """Real cells from the run's data, validation subjects first."""
    images = list_images(config.data)
    held_out = set(resolved.validation_subjects)
    images.sort(key=lambda image: image.subject not in held_out)
    step = max(1, len(images) // max(count, 1)) if not held_out else 1
    return [read_image(image.path) for image in images[::step][:count]]


def check_parity(model: torch.nn.Module, onnx_dir: Path, batch: np.ndarray) -> float:
    """Both graphs' own probability output against PyTorch, before any calibration."""
    expected = predict_probabilities(model, batch)
    classifier = OnnxCellClassifier(onnx_dir)
    differences = []
    for session in (classifier.session, classifier.explain_session()):
        (actual,) = session.run([PROBABILITY_OUTPUT], {INPUT_NAME: batch})
        differences.append(float(np.max(np.abs(actual - expected))))
    return max(differences)


def export_onnx(
    model: CellClassifier, path: Path, input_size: int, *, explain: bool = False
) -> None:
    example = torch.zeros(2, 3, input_size, input_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    wrapper = ExplainedProbabilityExport(model) if explain else ProbabilityExport(model)
    outputs = [LOGIT_OUTPUT, PROBABILITY_OUTPUT] + ([GRADCAM_OUTPUT] if explain else [])
    torch.onnx.export(
        wrapper.eval(),
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=outputs,
        opset_version=ONNX_OPSET,
        dynamic_shapes={"images": {0: batch}},
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    graph = onnx.load(str(path))
    rewritten = reorder_gelu_for_fusion(graph)
    onnx.checker.check_model(graph, full_check=True)
    if rewritten:
        onnx.save(graph, str(path))


def card_evaluations(
    run: RunDir,
    cv: CvDir | None,
    held_out: HeldOut | None,
    rule: DecisionRule,
    epoch_choice: str,
) -> list[Evaluation]:
    """The card's held-out figures: the cross-validation's own, and the served rule on the
    predictions it was chosen on (when those are out of fold) and on the run's validation
    subjects."""
    evaluations: list[Evaluation] = []
    if cv is not None:
        summary = cv.read_summary()
        evaluations.append(
            Evaluation(protocol=summary.protocol + " (pooled)", metrics=summary.pooled.as_dict())
        )
        evaluations.extend(_held_out_evaluations(cv, summary))
    if held_out is None:
        return evaluations
    if cv is not None:
        evaluations.append(
            _served_rule_on(
                f"{held_out.description}, calibrated, at the served threshold; threshold and "
                "calibration were fitted on these same predictions, so threshold-dependent "
                "metrics are optimistic",
                held_out.predictions,
                rule,
            )
        )
    if run.has_validation_predictions():
        evaluations.append(
            _served_rule_on(
                f"held-out subjects of the training run, {epoch_choice}, calibrated; "
                + (
                    "the threshold was chosen on these predictions, so threshold-dependent "
                    "metrics are optimistic"
                    if cv is None
                    else "threshold from the cross-validation"
                ),
                run.read_validation_predictions(),
                rule,
            )
        )
    return evaluations


def _served_rule_on(protocol: str, predictions: Predictions, rule: DecisionRule) -> Evaluation:
    probabilities = rule.probabilities(predictions.logits)
    labels = predictions.labels
    return Evaluation(
        protocol=protocol,
        metrics=binary_metrics(labels, probabilities, rule.threshold).as_dict(),
        per_subject_accuracy=per_subject_accuracy(
            predictions.subjects, labels.tolist(), probabilities.tolist(), rule.threshold
        ),
    )


def _held_out_evaluations(cv: CvDir, summary: CvSummary) -> list[Evaluation]:
    """Per-fold mean ± std (a single subject can swing a fold), the colour counterfactual and
    where the Grad-CAM heat lies, each as the cross-validation measured it."""
    spread: dict[str, float | int | list[list[int]]] = {}
    for metric, values in summary.mean_std.items():
        spread[f"{metric}_mean"] = values.mean
        spread[f"{metric}_std"] = values.std
    folds = len(summary.per_fold)
    evaluations = [
        Evaluation(
            protocol=f"the same cross-validation, mean and std over its {folds} folds",
            metrics=spread,
        )
    ]
    counterfactual = cv.read_counterfactual()
    if counterfactual is not None:
        evaluations.append(
            Evaluation(
                protocol=f"colour counterfactual, pooled: {counterfactual.protocol}; a model "
                "that answers colour rather than the cell loses ROC AUC here",
                metrics={k: v for k, v in counterfactual.pooled.items() if v is not None},
            )
        )
    heat = cv.read_heat()
    if heat is not None:
        evaluations.append(
            Evaluation(
                protocol=f"Grad-CAM heat on the cell, pooled: {heat.protocol}",
                metrics={k: v for k, v in heat.pooled.items() if v is not None},
            )
        )
    return evaluations


def known_limitations(
    training_data: TrainingData, recipe: PreprocessConfig, off_cell_heat_penalty: float = 0.0
) -> list[str]:
    hem = sum(1 for row in training_data.subjects if row.label == "HEM")
    subjects = len(training_data.subjects)
    limitations = [
        f"Trained on {subjects} subjects ({subjects - hem} ALL, {hem} HEM) of C-NMC "
        "2019: one centre, one staining protocol, one microscope and camera; other stains, "
        "scanners or patient groups can shift its output, and with so few HEM subjects the "
        "specificity on new subjects is uncertain.",
        *KNOWN_LIMITATIONS,
    ]
    if recipe.standardize_cell_colour:
        limitations.append(
            "Each cell's colour and brightness are standardised away before the model sees it "
            "(they were a subject/batch effect in the training data), so any real colour "
            "difference between blasts and normal cells is not used either."
        )
    if off_cell_heat_penalty > 0:
        limitations.append(
            "Its Grad-CAM maps were trained to lie on the cell (a penalty on heat off the cell), "
            "so their place on the cell is partly by design; whether their hot parts matter "
            "more than others is the deletion check in the evaluations."
        )
    return limitations


def quality_reference_for(config: TrainConfig, resolved: RunConfig) -> QualityReference:
    """The spread of the training subjects' cells, for the server's input warnings."""
    subjects = set(resolved.train_subjects)
    images = [i for i in list_images(config.data) if i.subject in subjects]
    return build_reference(
        measure_cell(read_image(image.path), config.foreground_threshold) for image in images
    )


def _training_data(resolved: RunConfig, config: TrainConfig) -> TrainingData:
    populations = resolved.subject_populations
    rows = [
        SubjectCounts(
            subject=s, label=LABEL_NAMES[subject_label(s)], images=n, population=populations.get(s)
        )
        for s, n in resolved.train_subjects.items()
    ]
    roots = [config.data, *config.extra_data]
    folds = sorted({p.name for root in roots for p in root.glob("**/fold_*") if p.is_dir()})
    if any(populations.get(s) == EXTERNAL_PRELIM for s in resolved.train_subjects):
        folds.append(PRELIM_FOLD)
    people = Counter(populations[s] for s in resolved.train_subjects if s in populations)
    return TrainingData(
        folds=folds or ["unknown"],
        people_per_population=dict(people) if len(people) > 1 else {},
        subjects=rows,
        images_all=sum(r.images for r in rows if r.label == "ALL"),
        images_hem=sum(r.images for r in rows if r.label == "HEM"),
        duplicates_removed=resolved.duplicates_removed,
    )


def _software() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class ExportOptions:
    """What `export_run` writes besides the run's model: the card's names, where the decision
    rule and its figures come from, and which checks it measures."""

    model_id: str | None = None
    """Default: arch-size-crop (`default_model_id`)."""
    version: str = "1"
    cv_dir: Path | None = None
    """A cross-validation of the same recipe: its out-of-fold predictions choose the
    calibration and threshold, and its figures go into the card."""
    training_command: str = ""
    selection: str | None = None
    """How this model was chosen against the others, in words for the card."""
    parity_count: int = 16
    """Real cells on which onnxruntime must match PyTorch."""
    measure_tta_gain: bool = True
    threshold_rule: ThresholdRule = "best_balanced_accuracy"
    """How the threshold is chosen on the held-out predictions (training/decision_rule.py)."""
    changes: str = ""
    """What is new in this version, for the card's changelog (a default names the run)."""

    @property
    def cv(self) -> CvDir | None:
        return None if self.cv_dir is None else CvDir(self.cv_dir)


@dataclass(frozen=True)
class TrainedRun:
    """A run directory with its configuration and its kept checkpoint, read once."""

    run: RunDir
    resolved: RunConfig
    model: CellClassifier

    @classmethod
    def load(cls, run_dir: Path) -> TrainedRun:
        return cls(RunDir(run_dir), RunDir(run_dir).read_config(), load_trained_model(run_dir))

    @property
    def config(self) -> TrainConfig:
        return self.resolved.train

    @property
    def recipe(self) -> PreprocessConfig:
        return self.resolved.preprocessing


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
        manifest = _export(trained, staging, options, earlier)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _move_into_place(staging, out_dir)
    record_model(out_dir.parent, out_dir)
    return manifest


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
    manifest = _model_card(trained, options, file_sha256(onnx_path), file_sha256(explain_path))
    changes = options.changes or (
        f"Trained ({trained.config.arch}, {trained.recipe.input_size} px; the command is in the "
        f"provenance) and exported from the run {trained.run.path.name}."
    )
    history = earlier.changelog if earlier is not None and earlier.id == manifest.id else []
    manifest = manifest.model_copy(
        update={"changelog": [*history, changelog_entry(manifest.version, changes)]}
    )
    write_manifest(manifest, out_dir)
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
        write_manifest(manifest, out_dir)
    return manifest


def _model_card(
    trained: TrainedRun, options: ExportOptions, onnx_sha256: str, explain_onnx_sha256: str
) -> ModelManifest:
    config, recipe, cv = trained.config, trained.recipe, options.cv
    held_out = held_out_predictions(trained.run, cv)
    rule = choose_decision_rule(held_out, options.threshold_rule)
    evaluations = card_evaluations(trained.run, cv, held_out, rule, config.epoch_choice)
    if cv is not None and held_out is not None:
        per_population = population_evaluation(held_out.predictions)
        if per_population is not None:
            evaluations.append(per_population)
    # The external people's rates are recorded only where nothing was fitted to them: with the
    # uncalibrated-0.5 rule the calls are the raw model's (calibration keeps their order); the
    # best-balanced-accuracy threshold is chosen on the same pooled predictions.
    if cv is not None and held_out is not None and options.threshold_rule == "uncalibrated_half":
        unseen = unseen_people_evaluation(held_out.predictions, rule.probabilities, rule.threshold)
        if unseen is not None:
            evaluations.append(unseen)
    training_data = _training_data(trained.resolved, config)
    return ModelManifest(
        id=options.model_id or default_model_id(config),
        version=options.version,
        created=datetime.now(UTC),
        architecture=config.arch,
        head=config.head,
        parameters=count_parameters(trained.model),
        input=ModelInput(size=recipe.input_size),
        threshold=rule.threshold_choice(),
        preprocessing=recipe,
        training_data=training_data,
        evaluations=evaluations,
        calibration=rule.calibration,
        quality_reference=quality_reference_for(config, trained.resolved),
        selection=options.selection,
        limitations=known_limitations(training_data, recipe, config.off_cell_heat_penalty),
        provenance=Provenance(
            training_command=options.training_command,
            run_config=trained.resolved.as_card_json(),
            software=_software(),
        ),
        onnx_sha256=onnx_sha256,
        explain_onnx_file=EXPLAIN_ONNX_FILENAME,
        explain_onnx_sha256=explain_onnx_sha256,
    )


def _held_out_runs(run: RunDir, cv: CvDir | None) -> tuple[list[Path], str]:
    if cv is not None:
        folds = [fold.path for fold in cv.folds() if fold.has_validation_predictions()]
        return folds, f"the {len(folds)} cross-validation models, each on its held-out subjects"
    if run.has_validation_predictions():
        return [run.path], "the run's held-out subjects"
    return [], ""
