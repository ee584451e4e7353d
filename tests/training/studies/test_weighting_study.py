import numpy as np


def test_the_weighting_study_scales_external_people_and_scores_every_cell_once(
    cnmc_root, external_people_root
):
    from training.data.dataset_index import index_training_data
    from training.studies.weighting_study import out_of_fold_probabilities, weighting_reports

    images = index_training_data(cnmc_root, [external_people_root]).images
    rng = np.random.default_rng(0)
    # features that carry the label for fold 1 only: weighting cannot make them carry over
    features = rng.normal(size=(len(images), 4))
    for row, image in zip(features, images, strict=True):
        if image.population == "fold1":
            row[0] += 8 * image.label
    scores = out_of_fold_probabilities(features, images, folds=2, seed=0, external_factor=1)
    assert np.isfinite(scores).all()  # every cell held out exactly once
    reports = weighting_reports(features, images, [0, 3], folds=2, resamples=20)
    assert [r.name.split("x")[-1] for r in reports] == ["0", "3"]
    assert reports[0].populations["fold1"].roc_auc.value > 0.85
