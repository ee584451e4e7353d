"""A prediction's side of its threshold is what the records keep, assessable or not."""

import pytest

from app.core.domain.predictions import ModelRef, Prediction, Timings


def prediction(probability: float, threshold: float, **fields) -> Prediction:
    return Prediction(
        label=None,
        probability_all=probability,
        threshold=threshold,
        model=ModelRef(id="m", version="1"),
        warnings=[],
        timings_ms=Timings(decode=0, preprocess=0, inference=0, total=0),
        request_id="r",
        **fields,
    )


@pytest.mark.parametrize(("probability", "side"), [(0.3, "HEM"), (0.4, "ALL"), (0.9, "ALL")])
def test_the_side_of_the_threshold_counts_the_threshold_itself_as_all(probability, side):
    assert prediction(probability, 0.4).side_of_threshold == side


def test_a_not_assessable_answer_keeps_its_side_for_the_records():
    answer = prediction(0.8, 0.5, assessable=False, state="not_assessable")
    assert answer.label is None
    assert answer.side_of_threshold == "ALL"


def test_a_probability_outside_0_to_1_is_refused():
    with pytest.raises(ValueError, match="less than or equal to 1"):
        prediction(1.5, 0.5)
