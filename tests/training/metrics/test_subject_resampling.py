import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.metrics.subject_resampling import roc_auc, subject_resamples


def test_fast_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        labels = rng.integers(0, 2, 40)
        scores = np.round(rng.random(40), 1)  # many ties
        if len(set(labels)) == 2:
            assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert np.isnan(roc_auc(np.ones(5, int), np.arange(5.0)))


def test_resamples_draw_whole_subjects_and_keep_the_class_mix():
    subjects = ["a", "a", "a", "b", "c", "c", "Hd", "Hd", "He"]
    labels = np.asarray([1, 1, 1, 1, 1, 1, 0, 0, 0])
    for draw in subject_resamples(subjects, labels, 200, seed=1):
        drawn = [subjects[i] for i in draw]
        for subject in set(drawn):
            # a subject comes with all of its cells, as many times as it was drawn
            assert drawn.count(subject) % subjects.count(subject) == 0
        whole = sum(drawn.count(s) // subjects.count(s) for s in set(drawn))
        assert whole == 5
        hem_draws = sum(drawn.count(s) // subjects.count(s) for s in set(drawn) if s[0] == "H")
        assert hem_draws == 2
