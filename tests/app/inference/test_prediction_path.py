import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.domain.outcomes import Refusal, RefusalKind, RefusedError
from app.core.domain.predictions import Prediction
from app.core.model_registry import ModelRegistry
from app.inference import prediction_path
from app.inference.budget import WorkBudget
from app.inference.prediction_path import (
    PredictOptions,
    Upload,
    predict_prepared,
    predict_uploads,
    prepare,
)
from app.inference.upload_checks import UploadLimits
from app.settings import bundled_model_store

LIMITS = UploadLimits(max_bytes=10**7, max_pixels=10**7)


@pytest.fixture
def classifier(model_store):
    return ModelRegistry.load(model_store).get()


def predict_one(classifier, upload: Upload) -> Prediction:
    (outcome,) = predict_uploads([upload], classifier, LIMITS, PredictOptions())
    assert isinstance(outcome, Prediction), outcome
    return outcome


def test_batch_inference_equals_one_by_one(classifier, cnmc_root):
    files = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))[:5]
    uploads = [Upload(f.name, f.read_bytes(), "image/png") for f in files]
    together = predict_uploads(uploads, classifier, LIMITS, PredictOptions())
    alone = [predict_one(classifier, upload) for upload in uploads]
    assert all(isinstance(p, Prediction) for p in together)
    for a, b in zip(together, alone, strict=True):
        assert a.probability_all == pytest.approx(b.probability_all, abs=1e-6)


def test_refusals_keep_their_place(classifier, real_cell_png):
    outcomes = predict_uploads(
        [Upload("bad", b"nope"), Upload("good", real_cell_png), Upload("empty", b"")],
        classifier,
        LIMITS,
        PredictOptions(),
    )
    assert isinstance(outcomes[1], Prediction)
    assert outcomes[0] == Refusal(
        RefusalKind.UNREADABLE, "not a readable BMP, PNG, JPEG or TIFF image"
    )
    assert outcomes[2] == Refusal(RefusalKind.EMPTY, "empty file")


def test_all_refused_needs_no_inference(classifier, monkeypatch):
    monkeypatch.setattr(classifier, "predict", lambda *a, **k: pytest.fail("inference ran"))
    outcomes = predict_uploads(
        [Upload("a", b"x"), Upload("b", b"y")], classifier, LIMITS, PredictOptions()
    )
    assert all(isinstance(o, Refusal) for o in outcomes)


def test_prepare_raises_the_refusal(classifier):
    with pytest.raises(RefusedError) as refused:
        prepare(Upload("a", b""), classifier, LIMITS)
    assert refused.value.kind is RefusalKind.EMPTY


def test_the_observer_hears_every_inference(classifier, real_cell_png):
    heard = []
    prepared = prepare(Upload("c.png", real_cell_png), classifier, LIMITS)
    predict_prepared(
        [prepared] * 3, classifier, PredictOptions(), observe=lambda *a: heard.append(a)
    )
    predict_prepared(
        [prepared], classifier, PredictOptions(tta=True), observe=lambda *a: heard.append(a)
    )
    assert [(model, images) for model, images, _ in heard] == [("brightness", 3), ("brightness", 8)]


@pytest.mark.parametrize(("client_gone", "late"), [(True, False), (False, True)])
def test_explanations_are_drawn_only_while_the_client_is_there(real_cell_png, client_gone, late):
    """A batch is answered either way (its rows are audited for the work done); the maps, which
    take milliseconds each to draw, only for a client still waiting, however late."""
    classifier = ModelRegistry.load(bundled_model_store()).get(None)
    prepared = prepare(Upload("cell.png", real_cell_png), classifier, UploadLimits(10**7, 10**7))
    budget = WorkBudget(60.0)
    if late:
        budget.deadline = 0.0
    if client_gone:
        budget.client_gone()
    answers = predict_prepared(
        [prepared, prepared], classifier, PredictOptions(explain=True), budget=budget
    )
    assert all(isinstance(answer, Prediction) for answer in answers)
    drawn = [answer.explanation is not None for answer in answers]  # type: ignore[union-attr]
    assert drawn == [not client_gone] * 2


def test_label_follows_the_threshold(classifier, encode_png):
    dark = np.zeros((100, 100, 3), np.uint8)
    dark[40:60, 40:60] = 30
    bright = np.zeros((400, 400, 3), np.uint8)
    bright[20:380, 20:380] = 250
    low = predict_one(classifier, Upload("dark", encode_png(dark)))
    high = predict_one(classifier, Upload("bright", encode_png(bright)))
    assert low.probability_all < 0.5 <= high.probability_all
    assert (low.label, high.label) == ("HEM", "ALL")


def _seed_images() -> list[bytes]:
    import cv2

    image = np.zeros((96, 96, 3), np.uint8)
    cv2.circle(image, (48, 48), 30, (170, 80, 150), -1)
    return [cv2.imencode(ext, image)[1].tobytes() for ext in (".png", ".jpg", ".bmp", ".tiff")]


SEEDS = _seed_images()


@pytest.fixture(scope="module")
def fuzz_classifier(module_model_store):
    return ModelRegistry.load(module_model_store).get()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_images_are_answered_or_refused_never_crash(fuzz_classifier, seed, edits, cut):
    """Fuzzing the whole guarded path: header checks, decoding, preprocessing."""
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    outcome = prediction_path.prepare_or_refuse(
        Upload("fuzz", bytes(data)), fuzz_classifier, LIMITS, views=True
    )
    if isinstance(outcome, Refusal):
        assert outcome.kind in {
            RefusalKind.EMPTY,
            RefusalKind.UNREADABLE,
            RefusalKind.TOO_LARGE,
            RefusalKind.UNSUPPORTED_TYPE,
        }
    else:
        assert outcome.tensor.shape == (3, 32, 32)
        assert np.isfinite(outcome.tensor).all()


@given(
    data=st.binary(max_size=2048), content_type=st.sampled_from([None, "image/png", "text/plain"])
)
@settings(max_examples=150, deadline=None)
def test_random_bytes_are_refused_cleanly(fuzz_classifier, data, content_type):
    with pytest.raises(RefusedError):
        prepare(Upload("fuzz", data, content_type), fuzz_classifier, LIMITS)


def test_a_batch_budget_is_per_file(classifier, real_cell_png, monkeypatch):
    """Each file may spend most of the budget: the next one starts with all of it again."""
    decode = prediction_path.decode

    def decode_spending_most_of_the_budget(data, header, budget, decoders):
        budget.deadline -= 0.6 * budget.seconds
        return decode(data, header, budget, decoders)

    monkeypatch.setattr(prediction_path, "decode", decode_spending_most_of_the_budget)
    outcomes = predict_uploads(
        [Upload(f"{n}.png", real_cell_png) for n in range(3)],
        classifier,
        LIMITS,
        PredictOptions(),
        budget=WorkBudget(60.0),
    )
    assert all(isinstance(o, Prediction) for o in outcomes), outcomes


def test_a_jpeg_still_decoding_at_the_budget_is_stopped_and_refused(classifier, monkeypatch):
    from app.inference import upload_checks
    from app.inference.decoder_processes import DecoderProcesses
    from bench.hostile_uploads import jpeg_scan_bomb

    monkeypatch.setattr(upload_checks, "MAX_JPEG_SCANS", 10**6)  # past the structural check
    decoders = DecoderProcesses(1)
    try:
        (outcome,) = predict_uploads(
            [Upload("bomb.jpg", jpeg_scan_bomb(1024, 200_000))],
            classifier,
            UploadLimits(max_bytes=10**7),
            PredictOptions(),
            budget=WorkBudget(0.5),
            decoders=decoders,
        )
    finally:
        decoders.close()
    assert isinstance(outcome, Refusal)
    assert outcome.kind is RefusalKind.OVER_BUDGET
    assert "decoding took longer" in outcome.reason
