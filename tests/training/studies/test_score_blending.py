import numpy as np
import pytest

from training.evaluation.scorers import Scores
from training.studies.score_blending import BLEND_THRESHOLD, threshold_centred_blend


def test_scorers_on_their_own_thresholds_blend_to_the_blend_threshold():
    first = Scores("a", np.array([0.2, 0.9, 0.05]), 0.2)
    second = Scores("b", np.array([0.7, 0.99, 0.3]), 0.7)
    blended = threshold_centred_blend("a + b", [first, second])
    assert blended.threshold == BLEND_THRESHOLD
    assert blended.values[0] == pytest.approx(0.5)
    assert blended.values[1] > 0.5  # both above their thresholds
    assert blended.values[2] < 0.5  # both below


def test_equal_weights_and_order_does_not_matter():
    rng = np.random.default_rng(0)
    first = Scores("a", rng.uniform(0.01, 0.99, 50), 0.3)
    second = Scores("b", rng.uniform(0.01, 0.99, 50), 0.6)
    forward = threshold_centred_blend("x", [first, second]).values
    backward = threshold_centred_blend("x", [second, first]).values
    np.testing.assert_allclose(forward, backward)
    margin = lambda p, t: np.log(p / (1 - p)) - np.log(t / (1 - t))  # noqa: E731
    expected = 1 / (1 + np.exp(-(margin(first.values, 0.3) + margin(second.values, 0.6)) / 2))
    np.testing.assert_allclose(forward, expected)


def test_a_confident_scorer_can_outvote_a_hesitant_one():
    confident = Scores("a", np.array([0.999]), 0.5)
    hesitant = Scores("b", np.array([0.45]), 0.5)
    assert threshold_centred_blend("x", [confident, hesitant]).values[0] > 0.5


def test_baselines_and_single_scorers_are_refused():
    model = Scores("a", np.array([0.5]), 0.5)
    with pytest.raises(ValueError, match="at least two"):
        threshold_centred_blend("x", [model])
    with pytest.raises(ValueError, match="not a thresholded probability"):
        threshold_centred_blend("x", [model, Scores("area", np.array([3.0]), None, "baseline")])


def test_certain_probabilities_stay_finite_and_keep_their_side():
    first = Scores("a", np.array([0.0, 1.0, 1.0], dtype=np.float32), 0.4)
    second = Scores("b", np.array([0.0, 1.0, 0.5]), 0.6)
    blended = threshold_centred_blend("x", [first, second]).values
    assert np.isfinite(blended).all()
    assert blended[0] < 0.5 < blended[1]
    assert blended[2] > 0.5  # a certain ALL outweighs a hesitant HEM


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_a_threshold_without_a_logit_is_refused(threshold):
    model = Scores("a", np.array([0.5]), 0.5)
    with pytest.raises(ValueError, match="has no logit"):
        threshold_centred_blend("x", [model, Scores("b", np.array([0.5]), threshold)])
