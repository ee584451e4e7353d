import pytest

from app.core.model_registry import ModelRegistry
from app.settings import bundled_model_store
from app.web.model_card_view import card_view, readable_metric, without_local_paths


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("predictions of /tmp/bo/effl0-cv, calibrated", "predictions of <effl0-cv>, calibrated"),
        ("--data ../shared/data/C-NMC_Leukemia --x", "--data <C-NMC_Leukemia> --x"),
        ("0.928 +/- 0.008, channel mean/std", "0.928 +/- 0.008, channel mean/std"),
    ],
)
def test_local_paths_are_cut_to_their_last_name(text, shown):
    assert without_local_paths(text) == shown


def test_metric_names_are_readable():
    assert readable_metric("roc_auc_mean") == "ROC AUC (area under the ROC curve), mean of folds"
    assert readable_metric("specificity").startswith("specificity")


def test_the_bundled_default_in_plain_numbers():
    manifest = ModelRegistry.load(bundled_model_store(), None).get().manifest
    view = card_view(manifest)
    (tn, fp), (fn, tp) = view.confusion
    assert tn + fp + fn + tp == view.images
    assert view.flagged_of_100_all == round(100 * tp / (tp + fn))
    assert view.flagged_of_100_hem == round(100 * fp / (tn + fp))
    served = [
        e
        for e in manifest.evaluations
        if "confusion_matrix" in e.metrics and not e.protocol.startswith("unseen subjects")
    ][-1]
    assert view.worst_subject.accuracy == min(served.per_subject_accuracy.values())
    assert [p.served for p in view.operating_points].count(True) == 1
    assert "not a diagnosis" in view.summary
    assert f"flags about {view.flagged_of_100_all}" in view.summary


def test_the_box_shows_the_rates_the_blast_share_correction_uses():
    from app.core.blast_share import held_out_counts

    manifest = ModelRegistry.load(bundled_model_store(), None).get().manifest
    view = card_view(manifest)
    counts = held_out_counts(manifest)
    assert view.correction_on_unseen
    assert view.correction_sensitivity == counts.sensitivity
    assert view.correction_specificity == counts.specificity
    assert view.correction_specificity == view.unseen_specificity


def test_the_unseen_patients_are_shown_per_part_with_their_interval():
    manifest = ModelRegistry.load(bundled_model_store(), None).get().manifest
    (unseen,) = [e for e in manifest.evaluations if e.protocol.startswith("unseen subjects")]
    view = card_view(manifest)
    by_title = {part.title.split(" ")[0]: part for part in view.unseen_parts}
    assert set(by_title) == {"all", "patients", "preliminary-test"}
    prelim = by_title["preliminary-test"]
    assert prelim.roc_auc == unseen.metrics["roc_auc_preliminary_test"]
    assert prelim.low <= prelim.roc_auc <= prelim.high
    assert prelim.cells == unseen.metrics["cells_preliminary_test"]
    assert view.unseen_specificity == unseen.metrics["specificity_all"]
    assert f"{prelim.roc_auc:.2f} on the preliminary-test patients" in view.summary
