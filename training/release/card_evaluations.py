"""The evaluations a model card records, each under the protocol it was measured with: the
cross-validation's pooled and per-fold figures, the served rule on held-out predictions, the
figures per population and on unseen people, and an external report's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from app.core.manifest import UNSEEN_SUBJECTS_PROTOCOL, Evaluation
from training.data.dataset_index import EXTERNAL_FOLDS, EXTERNAL_PRELIM, populations_of
from training.data.predictions import Predictions
from training.evaluation.external_evaluation import (
    PART_ALL,
    PART_TITLES,
    ExternalReport,
    PartFigures,
    ScorerReport,
)
from training.evaluation.population_report import (
    DEFAULT_RESAMPLES,
    EXTERNAL,
    FIXED_THRESHOLD,
    PopulationFigures,
    population_report,
)
from training.fit.artifacts import CvDir, CvSummary, RunDir
from training.metrics.classification_metrics import binary_metrics, per_subject_accuracy
from training.metrics.subject_resampling import Interval
from training.release.decision_rule import DecisionRule, HeldOut


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


CARD_PARTS = {
    EXTERNAL: "all",
    EXTERNAL_FOLDS: "training_folds",
    EXTERNAL_PRELIM: "preliminary_test",
}
"""Population -> the part names the card's unseen-subject metrics use (model page, blast share)."""


CARD_FIGURES = ("roc_auc", "subject_roc_auc", "balanced_accuracy", "sensitivity", "specificity")
PART_FIGURES = ("roc_auc", "balanced_accuracy", "sensitivity", "specificity")
"""What the card keeps of an external report's part (no subject-level AUC there)."""


UNSEEN_OUT_OF_FOLD = (
    f"{UNSEEN_SUBJECTS_PROTOCOL}, out of fold: the external people (other acquisition batches "
    "than fold 1), each cell scored by the cross-validation model that never saw its person, "
    "calibrated, at the served threshold; 95% intervals from {resamples} resamples of whole "
    "people. The served model was trained on them too"
)


PER_POPULATION = (
    "out-of-fold per population: each cell scored by the cross-validation model that never saw "
    "its person, uncalibrated, at the fixed threshold 0.5; cell-level and subject-level ROC AUC "
    "and the error rates for each population on its own, 95% intervals from {resamples} "
    "resamples of whole people"
)


def population_evaluation(
    predictions: Predictions, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> Evaluation | None:
    """The cross-validation's figures for every population (fold 1 and the external parts), for
    the card: a pooled figure would hide the populations that differ. None with one population."""
    if len(populations_of(predictions.images)) < 2:
        return None
    report = population_report(
        "out of fold",
        "out-of-fold",
        predictions.images,
        predictions.probabilities,
        FIXED_THRESHOLD,
        resamples=resamples,
        seed=seed,
    )
    metrics: dict[str, float | int | list[list[int]]] = {}
    for population, figures in report.populations.items():
        key = population.replace("-", "_")
        metrics |= _card_metrics(key, figures, (figures.people_all, figures.people_hem))
    return Evaluation(protocol=PER_POPULATION.format(resamples=resamples), metrics=metrics)


def unseen_people_evaluation(
    predictions: Predictions,
    probabilities: Callable[[np.ndarray], np.ndarray],
    threshold: float,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Evaluation | None:
    """The card's error rates on people of other batches, out of fold, at the served rule: what
    the model page's "patients it never saw" and the blast-share correction read. None without
    external people among the predictions."""
    external = [i for i, image in enumerate(predictions.images) if image.population in CARD_PARTS]
    if not external:
        return None
    images = [predictions.images[i] for i in external]
    served = probabilities(predictions.logits[external])
    report = population_report(
        "served", "out-of-fold", images, served, threshold, resamples=resamples, seed=seed
    )
    metrics: dict[str, float | int | list[list[int]]] = {}
    for population, part in CARD_PARTS.items():
        figures = report.populations.get(population)
        if figures is not None:
            metrics |= _card_metrics(part, figures, (figures.people_all, figures.people_hem))
    everyone = report.populations[EXTERNAL]
    assert everyone.confusion_matrix is not None
    metrics["confusion_matrix"] = everyone.confusion_matrix
    metrics["threshold"] = threshold
    return Evaluation(
        protocol=UNSEEN_OUT_OF_FOLD.format(resamples=resamples),
        metrics=metrics,
        per_subject_accuracy=everyone.per_person,
    )


def external_evaluation_of(report: ExternalReport, scorer: ScorerReport) -> Evaluation:
    """The report of one served model as a model-card evaluation: every part's figures with
    their intervals, and each subject's accuracy."""
    metrics: dict[str, float | int | list[list[int]]] = {}
    for part, figures in scorer.parts.items():
        subjects = (figures.subjects_all, figures.subjects_hem)
        metrics |= _card_metrics(part, figures, subjects, PART_FIGURES)
    everyone = scorer.parts.get(PART_ALL)
    if scorer.threshold is not None and everyone is not None and everyone.confusion_matrix:
        # What the blast-share correction reads: the counts on every unseen cell, at the
        # threshold the model serves.
        metrics["confusion_matrix"] = everyone.confusion_matrix
        metrics["threshold"] = scorer.threshold
    return Evaluation(
        protocol=f"{UNSEEN_SUBJECTS_PROTOCOL} ({Path(report.root).name}; parts: "
        f"{', '.join(PART_TITLES[p] for p in scorer.parts)}): {report.protocol}; "
        f"{report.resamples} resamples",
        metrics=metrics,
        per_subject_accuracy={
            row.subject: row.accuracy for row in scorer.per_subject if row.accuracy is not None
        },
    )


def _card_metrics(
    key: str,
    figures: PopulationFigures | PartFigures,
    subjects: tuple[int, int],
    names: Sequence[str] = CARD_FIGURES,
) -> dict[str, float | int | list[list[int]]]:
    """One population's or part's figures as the card keys them: its cells, its ALL and HEM
    subjects, then each figure of `names` with its interval."""
    metrics: dict[str, float | int | list[list[int]]] = {
        f"cells_{key}": figures.cells,
        f"subjects_all_{key}": subjects[0],
        f"subjects_hem_{key}": subjects[1],
    }
    for name in names:
        interval: Interval | None = getattr(figures, name)
        if interval is not None:
            metrics[f"{name}_{key}"] = interval.value
            metrics[f"{name}_{key}_low"] = interval.low
            metrics[f"{name}_{key}_high"] = interval.high
    return metrics
