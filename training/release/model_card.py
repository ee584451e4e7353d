"""The model card (manifest.json): composed and written here only, for every way a model
directory is made or amended in training/: an export from a run (`exported_card`), a site
adaptation of a served model (`adapted_card`), and an unseen-subject evaluation recorded into
an existing card (`record_in_card`). `write_card` is the one place a card is written."""

from __future__ import annotations

import platform
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from app.core.manifest import (
    EXPLAIN_ONNX_FILENAME,
    UNSEEN_SUBJECTS_PROTOCOL,
    Adaptation,
    ModelInput,
    ModelManifest,
    Provenance,
    SubjectCounts,
    ThresholdChoice,
    TrainingData,
    changelog_entry,
    file_sha256,
    load_manifest,
    write_manifest,
)
from app.core.model_registry import STORE_INDEX, record_model
from app.core.quality_checks import QualityReference, build_reference, measure_cell
from app.core.recipe import PreprocessConfig
from training.data.dataset_index import (
    EXTERNAL_PRELIM,
    LABEL_NAMES,
    PRELIM_FOLD,
    DatasetError,
    list_images,
    read_image,
    subject_label,
)
from training.evaluation.external_evaluation import (
    PART_ALL,
    PART_PRELIM,
    PART_TITLES,
    PART_TRAINING_FOLDS,
    ExternalReport,
    ScorerReport,
)
from training.fit.artifacts import RunConfig
from training.fit.models import count_parameters
from training.fit.train_config import TrainConfig
from training.release.card_evaluations import (
    card_evaluations,
    external_evaluation_of,
    population_evaluation,
    unseen_people_evaluation,
)
from training.release.card_inputs import AdaptedFrom, ExportOptions, TrainedRun
from training.release.decision_rule import choose_decision_rule, held_out_predictions
from training.release.init_weights import describe_init_weights, without_local_path
from training.release.site_reviews import reviews_source_name


def write_card(manifest: ModelManifest, model_dir: Path) -> Path:
    """Write `manifest` as the card of the model in `model_dir`: every card training/ writes
    goes through here."""
    return write_manifest(manifest, model_dir)


def unseen_limitation(scorer: ScorerReport) -> str:
    """Where the model fails on new patients, in plain words, from the figures."""
    words = []
    for part in (PART_TRAINING_FOLDS, PART_PRELIM):
        figures = scorer.parts.get(part)
        if figures is None:
            continue
        auc = figures.roc_auc
        verdict = "no better than chance" if auc.low <= 0.5 else "better than chance"
        words.append(
            f"ROC AUC {auc.value:.2f} (95% {auc.low:.2f} to {auc.high:.2f}, {verdict}) on the "
            f"{PART_TITLES[part]} ({figures.cells} cells, {figures.subjects_all} ALL and "
            f"{figures.subjects_hem} HEM subjects)"
        )
    return (
        "On patients it never saw (C-NMC subjects outside its training data): "
        + "; ".join(words)
        + ". The preliminary-test patients differ from the training subjects in cell size and "
        "brightness, and a model that learned those cues fails there: do not rely on it for a "
        "population it was not checked on."
    )


def record_in_card(model_dir: Path, report: ExternalReport, *, selection: str | None) -> Path:
    """Write the served model's unseen-subject evaluation (and, given, the selection note)
    into its card, replacing an earlier one; the graphs are untouched."""
    manifest = load_manifest(model_dir)
    scorer = report.scorers[0]
    trained_on = {row.subject for row in manifest.training_data.subjects}
    seen = sorted(trained_on & {row.subject for row in scorer.per_subject})
    if seen:
        # Rates on people it learned from are not rates on unseen patients (and would replace
        # the card's out-of-fold ones, which the blast-share correction reads).
        raise DatasetError(
            f"{model_dir.name} was trained on {len(seen)} of these people ({', '.join(seen[:5])}"
            f"{', ...' if len(seen) > 5 else ''}): not recorded as unseen subjects"
        )
    evaluations = [
        e for e in manifest.evaluations if not e.protocol.startswith(UNSEEN_SUBJECTS_PROTOCOL)
    ]
    limitations = [
        text for text in manifest.limitations if not text.startswith("On patients it never saw")
    ]
    overall = scorer.parts[PART_ALL].roc_auc
    entry = changelog_entry(
        manifest.version,
        f"Measured on {report.cells[PART_ALL]} cells of {report.subjects[PART_ALL]} subjects "
        f"outside its training data: ROC AUC {overall.value:.3f} (95% {overall.low:.2f} to "
        f"{overall.high:.2f}); recorded with a limitation saying where it fails.",
        card_only=True,
    )
    updated = manifest.model_copy(
        update={
            "evaluations": [*evaluations, external_evaluation_of(report, scorer)],
            "limitations": [unseen_limitation(scorer), *limitations],
            "changelog": [*manifest.changelog, entry],
            **({"selection": selection} if selection else {}),
        }
    )
    written = write_card(ModelManifest.model_validate(updated.model_dump()), model_dir)
    if (model_dir.parent / STORE_INDEX).is_file():  # the store must know the card's new checksum
        record_model(model_dir.parent, model_dir)
    return written


SOFTWARE = ("torch", "timm", "onnx", "onnxruntime", "opencv-python-headless", "numpy")


KNOWN_LIMITATIONS = [
    "Expects one segmented cell on a black background, as in C-NMC; whole smear fields or "
    "unsegmented cells are out of scope.",
    "Few subjects, HEM subjects especially: metrics vary strongly from subject to subject.",
    "Probabilities are not calibrated unless the card says so.",
]


def default_model_id(config: TrainConfig) -> str:
    return f"{config.arch}-{config.img_size}-{config.crop.value}".lower().replace("_", "-")


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


def _provenance(trained: TrainedRun, command: str) -> Provenance:
    """How the run was made, with the starting weights named by package and sha256."""
    run_config = trained.resolved.as_card_json()
    path = trained.config.init_weights
    if path is None or not path.is_file():
        return Provenance(training_command=command, run_config=run_config, software=_software())
    weights = describe_init_weights(path)
    portable_config = without_local_path(run_config, path, weights)
    assert isinstance(portable_config, dict)
    return Provenance(
        training_command=str(without_local_path(command, path, weights)),
        run_config=portable_config,
        software=_software(),
        init_weights=weights,
    )


def exported_card(
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
        provenance=_provenance(trained, options.training_command),
        onnx_sha256=onnx_sha256,
        explain_onnx_file=EXPLAIN_ONNX_FILENAME,
        explain_onnx_sha256=explain_onnx_sha256,
    )


def adapted_card(
    manifest: ModelManifest,
    staging: Path,
    made: AdaptedFrom,
    *,
    model_id: str,
    version: str,
    command: str,
) -> ModelManifest:
    """The parent's card with the new decision rule, the adaptation and its own history."""
    cells, held_out = made.cells, made.held_out
    subjects = len({c.subject for c in cells})
    counts = Counter((c.subject, c.label) for c in cells)
    gain = held_out.gain
    figures = (
        f"gain in balanced accuracy over {manifest.id} on the lab's held-out samples "
        f"{gain.value:+.3f} (95% {gain.low:+.3f} to {gain.high:+.3f}, samples resampled)"
        if gain is not None
        else "no gain measured"
    )
    verdict = "recommended" if held_out.recommended else "NOT RECOMMENDED"
    adapted = manifest.model_copy(
        update={
            "id": model_id,
            "version": version,
            "created": datetime.now(UTC),
            "threshold": ThresholdChoice(
                value=made.final.threshold,
                source="best balanced accuracy (Youden's J) on the lab's reviewed cells; "
                "its held-out figures are in the card's adaptation",
            ),
            "calibration": made.final.calibration,
            "test_time_augmentation": None,
            "selection": f"adapted from {manifest.id} v{manifest.version} ({made.strength})",
            "limitations": [
                *(
                    []
                    if held_out.recommended
                    else [
                        f"Not recommended: {figures}; its interval does not lie above 0, so "
                        f"it may do worse than {manifest.id} for the lab's next patient. Keep "
                        "using the parent; the store refuses to make it the default unless "
                        "forced."
                    ]
                ),
                f"Adapted on {len(cells)} reviewed cells of {subjects} "
                "subjects of one lab: it is meant for that lab's population only.",
                *manifest.limitations,
            ],
            "changelog": [
                changelog_entry(
                    version,
                    f"Adapted from {manifest.id} v{manifest.version} ({made.strength}) on "
                    f"{len(cells)} reviewed cells of {subjects} samples; {verdict}: {figures}.",
                )
            ],
            "onnx_sha256": file_sha256(staging / manifest.onnx_file),
            "explain_onnx_sha256": (
                file_sha256(staging / manifest.explain_onnx_file)
                if manifest.explain_onnx_file
                else None
            ),
            "adaptation": Adaptation(
                parent_id=manifest.id,
                parent_version=manifest.version,
                parent_onnx_sha256=manifest.onnx_sha256,
                strength=made.strength,
                reviews_source=reviews_source_name(made.reviews),
                reviewed_cells=[
                    SubjectCounts(subject=s, label=LABEL_NAMES[y], images=n)
                    for (s, y), n in sorted(counts.items())
                ],
                minimum_subjects_per_class=made.minimum_subjects_per_class,
                held_out_protocol=held_out.protocol,
                before=held_out.before,
                after=held_out.after,
                better_on_held_out=held_out.better,
                recommended=held_out.recommended,
                gain=held_out.gain,
                local_before=held_out.local_before,
                local_after=held_out.local_after,
                head_l2=made.final.head_l2,
            ),
            "provenance": manifest.provenance.model_copy(
                update={"training_command": command or "python -m training adapt"}
            ),
        }
    )
    return ModelManifest.model_validate(adapted.model_dump())
