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


def test_the_bundled_default_states_the_rates_its_blast_share_is_corrected_with():
    from app.core.blast_share import held_out_counts
    from app.core.error_rates import error_rates_sentence

    manifest = ModelRegistry.load(bundled_model_store(), None).get().manifest
    view = card_view(manifest)
    counts = held_out_counts(manifest)
    assert view.error_rates == error_rates_sentence(manifest)
    (tn, fp), (fn, tp) = view.rates_confusion
    assert (tn, fp, fn, tp) == (
        counts.true_negatives,
        counts.false_positives,
        counts.false_negatives,
        counts.true_positives,
    )
    assert view.rates_cells == tn + fp + fn + tp
    assert view.rates_healthy_people == len(counts.subject_specificities)


def test_the_box_names_every_person_at_the_lowest_accuracy():
    """The chart once showed five people at 0% correct and the box named one."""
    manifest = ModelRegistry.load(bundled_model_store(), None).get().manifest
    view = card_view(manifest)
    served = [
        e
        for e in manifest.evaluations
        if "confusion_matrix" in e.metrics and not e.protocol.startswith("unseen subjects")
    ][-1]
    lowest = min(served.per_subject_accuracy.values())
    expected = {s for s, a in served.per_subject_accuracy.items() if a == lowest}
    assert {bar.subject for bar in view.worst_subjects} == expected
    assert len(expected) == 5
    assert view.worst_people == "patient 27 and healthy donors H20, H28, H31, H34"


def test_operating_points_on_one_place_share_one_dot_and_one_label():
    """The labels "threshold 0.500" and "threshold 0.613 (served)" once overprinted on one dot."""
    from app.web.model_card_view import OperatingPoint, operating_dots

    dots = operating_dots(
        [
            OperatingPoint(0.5, 0.362, 0.831, served=False),
            OperatingPoint(0.6126, 0.362, 0.831, served=True),
            OperatingPoint(0.7, 0.2, 0.6, served=False),
        ]
    )
    assert [d.label for d in dots] == ["threshold 0.700", "thresholds 0.500 and 0.613 (served)"]
    assert [d.served for d in dots] == [False, True]
    manifest = ModelRegistry.load(bundled_model_store(), None).get().manifest
    (dot,) = card_view(manifest).dots
    assert dot.lines == ("thresholds 0.500", "and 0.613 (served)")  # one label, two lines
    assert not dot.label_on_left


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


@pytest.mark.parametrize(
    "model_id",
    ["efficientnet-lite0-linear-128-cell", "convnext-atto-128-cell", "efficientnet-lite0-128-cell"],
)
def test_the_roc_labels_of_every_bundled_card_neither_collide_nor_leave_the_plot(model_id):
    from app.web.model_card_view import LABEL_UNITS_PER_CHARACTER, LINE_HEIGHT

    manifest = ModelRegistry.load(bundled_model_store(), None).get(model_id).manifest
    boxes = []
    for dot in card_view(manifest).dots:
        width = LABEL_UNITS_PER_CHARACTER * max(len(line) for line in dot.lines)
        left = dot.label_x - width if dot.label_on_left else dot.label_x
        top = dot.label_y - 10
        boxes.append((left, left + width, top, top + LINE_HEIGHT * len(dot.lines)))
    for box in boxes:
        assert box[0] >= -45, box  # the plot's view box
        assert box[1] <= 220, box
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not (a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]), (a, b)
