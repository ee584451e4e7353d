"""A served model's rates on people it never saw, re-recorded from a newer cross-validation of
its own recipe.

When the data grows, the served graph can stay while the figures that drive the blast-share
correction and the model page stand on more people. A model trained on some of the new people
cannot be scored on them as served, but its recipe refitted in a subject-grouped CV scores every
person with a fold model that never saw them: the card keeps those out-of-fold rates, at the
served calibration and threshold, and says which CV they come from.
"""

from __future__ import annotations

from pathlib import Path

from app.core.manifest import (
    UNSEEN_SUBJECTS_PROTOCOL,
    ModelManifest,
    changelog_entry,
    load_manifest,
)
from app.core.model_registry import STORE_INDEX, record_model
from training.data.dataset_index import DatasetError
from training.evaluation.population_report import DEFAULT_RESAMPLES
from training.fit.artifacts import CvDir
from training.fit.train_config import TrainConfig
from training.release.card_evaluations import (
    PER_POPULATION,
    population_evaluation,
    unseen_people_evaluation,
)
from training.release.decision_rule import DecisionRule
from training.release.model_card import write_card

RECIPE_FIELDS = (
    "arch",
    "head",
    "img_size",
    "contrast",
    "crop",
    "crop_size",
    "foreground_threshold",
    "standardize_cell_colour",
    "subject_balanced",
    "population_weights",
    "max_images_per_subject",
    "epochs",
    "head_epochs",
    "lr",
)
"""What makes a recipe: a CV that differs in any of these measured another model."""


def recipe_differences(served: TrainConfig, refitted: TrainConfig) -> list[str]:
    """The recipe fields in which the CV's config differs from the served model's."""
    differing = [f for f in RECIPE_FIELDS if getattr(served, f) != getattr(refitted, f)]
    served_weights = served.init_weights.name if served.init_weights else None
    refitted_weights = refitted.init_weights.name if refitted.init_weights else None
    if served_weights != refitted_weights:
        differing.append("init_weights")
    return differing


def record_recipe_rates(
    model_dir: Path, cv_dir: Path, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Path:
    """Replace the card's unseen-patient and per-population evaluations with those of `cv_dir`,
    a CV of the model's own recipe; the ONNX graphs, calibration and threshold are untouched."""
    manifest = load_manifest(model_dir)
    cv = CvDir(cv_dir)
    refitted = cv.read_summary().config
    served = TrainConfig.model_validate(manifest.provenance.run_config["train"])
    differing = recipe_differences(served, refitted)
    if differing:
        raise DatasetError(
            f"{cv_dir.name} is not {manifest.id}'s recipe: it differs in {', '.join(differing)}"
        )
    predictions = cv.read_out_of_fold()
    rule = DecisionRule(
        threshold=manifest.threshold.value,
        method=manifest.threshold.source,
        chosen_on=None,
        calibration=manifest.calibration,
    )
    unseen = unseen_people_evaluation(
        predictions, rule.probabilities, rule.threshold, resamples=resamples, seed=seed
    )
    per_population = population_evaluation(predictions, resamples=resamples, seed=seed)
    if unseen is None or per_population is None:
        raise DatasetError(f"{cv_dir.name} holds no external people: nothing to record")
    people = len({image.subject for image in predictions.images})
    external = {image.subject for image in predictions.images if image.population != "fold1"}
    seen = external & {row.subject for row in manifest.training_data.subjects}
    source = (
        f"; from the cross-validation {cv_dir.name}: the served model's recipe refitted on "
        f"{people} people ({len(predictions.images)} cells), each held out once (the served "
        f"model itself learned from {len(seen)} of these {len(external)} external people); "
        "the served graph, calibration and threshold are unchanged"
    )
    # The export's wording says the served model learned from every external person of its CV;
    # here `source` says how many of this CV's it learned from.
    protocol = unseen.protocol.replace(". The served model was trained on them too", "")
    unseen = unseen.model_copy(update={"protocol": protocol + source})
    per_population = per_population.model_copy(
        update={"protocol": per_population.protocol + source}
    )
    replaced = (UNSEEN_SUBJECTS_PROTOCOL, PER_POPULATION.split(":")[0])
    kept = [e for e in manifest.evaluations if not e.protocol.startswith(replaced)]
    sensitivity = unseen.number("sensitivity_all")
    specificity = unseen.number("specificity_all")
    entry = changelog_entry(
        manifest.version,
        f"Unseen-patient rates re-recorded from {cv_dir.name} ({people} people, "
        f"{unseen.number('cells_all'):.0f} external cells of "
        f"{unseen.number('subjects_all_all') + unseen.number('subjects_hem_all'):.0f} people): "
        f"sensitivity {sensitivity:.3f}, specificity {specificity:.3f} at the served threshold.",
        card_only=True,
    )
    updated = manifest.model_copy(
        update={
            "evaluations": [*kept, per_population, unseen],
            "changelog": [*manifest.changelog, entry],
        }
    )
    written = write_card(ModelManifest.model_validate(updated.model_dump()), model_dir)
    if (model_dir.parent / STORE_INDEX).is_file():  # the store must know the card's new checksum
        record_model(model_dir.parent, model_dir)
    return written
