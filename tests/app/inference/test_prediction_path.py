from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.model_registry import ModelRegistry
from app.inference.budget import WorkBudget, current_budget
from app.inference.prediction_path import PredictionPipeline, Upload
from app.inference.upload_checks import UploadLimits, UploadRejectedError
from app.schemas import Prediction
from app.settings import bundled_model_store


@pytest.fixture
def pipeline(model_store):
    return PredictionPipeline(
        ModelRegistry.load(model_store), UploadLimits(max_bytes=10**7, max_pixels=10**7)
    )


def test_batch_inference_equals_one_by_one(pipeline, cnmc_root):
    files = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))[:5]
    uploads = [Upload(f.name, f.read_bytes(), "image/png") for f in files]
    together = pipeline.predict_many(uploads)
    alone = [pipeline.predict_one(upload) for upload in uploads]
    assert all(isinstance(p, Prediction) for p in together)
    for a, b in zip(together, alone, strict=True):
        assert a.probability_all == pytest.approx(b.probability_all, abs=1e-6)


def test_rejections_keep_their_place(pipeline, real_cell_png):
    outcomes = pipeline.predict_many(
        [Upload("bad", b"nope"), Upload("good", real_cell_png), Upload("empty", b"")]
    )
    assert isinstance(outcomes[0], UploadRejectedError)
    assert isinstance(outcomes[1], Prediction)
    assert [o.status_code for o in (outcomes[0], outcomes[2])] == [400, 400]


def test_all_rejected_needs_no_inference(pipeline):
    outcomes = pipeline.predict_many([Upload("a", b"x"), Upload("b", b"y")])
    assert all(isinstance(o, UploadRejectedError) for o in outcomes)


def test_predict_one_raises_the_rejection(pipeline):
    with pytest.raises(UploadRejectedError):
        pipeline.predict_one(Upload("a", b""))


@contextmanager
def within_request(*, client_gone: bool, late: bool = False) -> Iterator[None]:
    budget = WorkBudget(60.0)
    if late:
        budget.deadline = 0.0
    if client_gone:
        budget.client_gone()
    token = current_budget.set(budget)
    try:
        yield
    finally:
        current_budget.reset(token)


@pytest.mark.parametrize(("client_gone", "late"), [(True, False), (False, True)])
def test_explanations_are_drawn_only_while_the_client_is_there(real_cell_png, client_gone, late):
    """A batch is answered either way (its rows are audited for the work done); the maps, which
    take milliseconds each to draw, only for a client still waiting, however late."""
    pipeline = PredictionPipeline(
        ModelRegistry.load(bundled_model_store()), UploadLimits(10**7, 10**7)
    )
    classifier = pipeline.registry.get(None)
    prepared = pipeline.prepare(Upload("cell.png", real_cell_png), classifier, views=False)
    with within_request(client_gone=client_gone, late=late):
        answers = pipeline.answer_prepared([prepared, prepared], classifier, explain=True)
    assert all(isinstance(answer, Prediction) for answer in answers)
    drawn = [answer.explanation is not None for answer in answers]  # type: ignore[union-attr]
    assert drawn == [not client_gone] * 2


def test_label_follows_the_threshold(pipeline, encode_png):
    dark = np.zeros((100, 100, 3), np.uint8)
    dark[40:60, 40:60] = 30
    bright = np.zeros((400, 400, 3), np.uint8)
    bright[20:380, 20:380] = 250
    low = pipeline.predict_one(Upload("dark", encode_png(dark)))
    high = pipeline.predict_one(Upload("bright", encode_png(bright)))
    assert low.probability_all < 0.5 <= high.probability_all
    assert (low.label, high.label) == ("HEM", "ALL")


def _seed_images() -> list[bytes]:
    import cv2

    image = np.zeros((96, 96, 3), np.uint8)
    cv2.circle(image, (48, 48), 30, (170, 80, 150), -1)
    return [cv2.imencode(ext, image)[1].tobytes() for ext in (".png", ".jpg", ".bmp", ".tiff")]


SEEDS = _seed_images()


@pytest.fixture(scope="module")
def fuzz_pipeline(module_model_store):
    return PredictionPipeline(ModelRegistry.load(module_model_store), UploadLimits(10**7, 10**7))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_mutated_images_are_answered_or_rejected_never_crash(fuzz_pipeline, seed, edits, cut):
    """Fuzzing the whole guarded path: header checks, decoding, preprocessing."""
    pipeline = fuzz_pipeline
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    classifier = pipeline.registry.get()
    try:
        prepared = pipeline.prepare(Upload("fuzz", bytes(data)), classifier, views=True)
    except UploadRejectedError as rejection:
        status = rejection.status_code
    else:
        status = 200
        assert prepared.tensor.shape == (3, 32, 32)
        assert np.isfinite(prepared.tensor).all()
    assert status == 200 or 400 <= status < 500


@given(
    data=st.binary(max_size=2048), content_type=st.sampled_from([None, "image/png", "text/plain"])
)
@settings(max_examples=150, deadline=None)
def test_random_bytes_are_rejected_cleanly(fuzz_pipeline, data, content_type):
    pipeline = fuzz_pipeline
    with pytest.raises(UploadRejectedError):
        pipeline.prepare(Upload("fuzz", data, content_type), pipeline.registry.get(), views=False)


def test_a_batch_budget_is_per_file(pipeline, real_cell_png, monkeypatch):
    """Each file may spend most of the budget: the next one starts with all of it again."""
    decode = pipeline.decode

    def decode_spending_most_of_the_budget(data, header):
        budget = current_budget.get()
        budget.deadline -= 0.6 * budget.seconds
        return decode(data, header)

    monkeypatch.setattr(pipeline, "decode", decode_spending_most_of_the_budget)
    with within_request(client_gone=False):
        outcomes = pipeline.predict_many([Upload(f"{n}.png", real_cell_png) for n in range(3)])
    assert all(isinstance(o, Prediction) for o in outcomes), outcomes


def test_a_jpeg_still_decoding_at_the_budget_is_stopped_and_refused(model_store, monkeypatch):
    from app.inference import upload_checks
    from app.inference.decoder_processes import DecoderProcesses
    from bench.hostile_uploads import jpeg_scan_bomb

    monkeypatch.setattr(upload_checks, "MAX_JPEG_SCANS", 10**6)  # past the structural check
    decoders = DecoderProcesses(1)
    slow = PredictionPipeline(
        ModelRegistry.load(model_store), UploadLimits(max_bytes=10**7), decoders=decoders
    )
    budget = WorkBudget(0.5)
    token = current_budget.set(budget)
    try:
        outcome = slow.predict_many([Upload("bomb.jpg", jpeg_scan_bomb(1024, 200_000))])[0]
    finally:
        current_budget.reset(token)
        decoders.close()
    assert isinstance(outcome, UploadRejectedError)
    assert outcome.status_code == 413
    assert "decoding took longer" in outcome.detail
