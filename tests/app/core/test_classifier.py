import shutil
from pathlib import Path

import numpy as np
import pytest

from app.core.classifier import INT8_CARD_FILENAME, Int8Card, OnnxCellClassifier
from app.core.image_decoding import decode_image
from app.core.manifest import file_sha256
from app.core.recipe import preprocess


def test_predict_returns_logits_and_probabilities_per_image(brightness_model_dir):
    classifier = OnnxCellClassifier(brightness_model_dir)
    batch = np.stack([np.full((3, 32, 32), value, np.float32) for value in (0.1, 0.35, 0.0)])
    output = classifier.predict(batch)
    np.testing.assert_allclose(output.logits, [0.0, 1.0, -0.4], atol=1e-5)
    np.testing.assert_allclose(output.probabilities, 1 / (1 + np.exp(-output.logits)), atol=1e-6)


def test_predict_images_applies_the_manifest_recipe(brightness_model_dir):
    classifier = OnnxCellClassifier(brightness_model_dir)
    recipe = classifier.manifest.preprocessing
    black = np.zeros((100, 80, 3), np.uint8)
    bright = np.full((100, 80, 3), 255, np.uint8)
    output = classifier.predict_images([black, bright])
    assert output.probabilities.shape == (2,)
    assert output.logits[0] == pytest.approx(-0.4, abs=1e-5)
    # The 100x80 image sits inside the recipe's black-padded crop window.
    expected_mean = preprocess(bright, recipe).mean()
    assert 0.0 < expected_mean < 1.0
    assert output.logits[1] == pytest.approx(4 * (expected_mean - 0.1), abs=1e-5)


BUNDLED_DEFAULT = Path(__file__).parents[3] / "model_store" / "efficientnet-lite0-128-cell"


def write_int8_card(model_dir: Path, graph: str, sha256: str) -> None:
    card = Int8Card(
        onnx_file=graph,
        onnx_sha256=sha256,
        # Stand-in evidence: only the graph the card names matters here.
        **dict.fromkeys(("method", "calibration", "measured_on"), "test"),
        **dict.fromkeys(("speedup_batch1", "label_agreement"), 1.0),
        **dict.fromkeys(("roc_auc_float32", "roc_auc_int8"), 0.5),
        max_abs_probability_change=0.0,
    )
    (model_dir / INT8_CARD_FILENAME).write_text(card.model_dump_json())


def test_the_int8_graph_is_served_only_when_asked_for(brightness_model_dir):
    twin = brightness_model_dir / "model.int8.onnx"
    shutil.copy(brightness_model_dir / "model.onnx", twin)
    write_int8_card(brightness_model_dir, twin.name, file_sha256(twin))
    assert OnnxCellClassifier(brightness_model_dir).precision == "float32"
    chosen = OnnxCellClassifier(brightness_model_dir, int8=True)
    assert chosen.precision == "int8"
    assert chosen.int8_card is not None
    assert chosen.int8_card.onnx_file == twin.name


def test_a_model_without_an_int8_graph_stays_float32(brightness_model_dir):
    assert OnnxCellClassifier(brightness_model_dir, int8=True).precision == "float32"


def test_an_int8_graph_that_differs_from_its_card_is_refused(brightness_model_dir):
    twin = brightness_model_dir / "model.int8.onnx"
    shutil.copy(brightness_model_dir / "model.onnx", twin)
    write_int8_card(brightness_model_dir, twin.name, "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        OnnxCellClassifier(brightness_model_dir, int8=True)


def test_the_bundled_int8_graph_agrees_with_float32_on_the_fixture_cells(cnmc_root):
    float32 = OnnxCellClassifier(BUNDLED_DEFAULT, intra_op_threads=1)
    int8 = OnnxCellClassifier(BUNDLED_DEFAULT, intra_op_threads=1, int8=True)
    assert int8.precision == "int8"
    card = int8.int8_card
    assert card is not None
    assert card.speedup_batch1 >= 1.3
    assert abs(card.roc_auc_int8 - card.roc_auc_float32) <= 0.002
    recipe = float32.manifest.preprocessing
    images = [decode_image(p.read_bytes()) for p in sorted(cnmc_root.rglob("*.png"))]
    batch = np.stack([preprocess(image, recipe) for image in images])
    reference = float32.predict(batch).probabilities
    quantised = int8.predict(batch).probabilities
    threshold = float32.manifest.threshold.value
    assert np.abs(reference - quantised).max() <= card.max_abs_probability_change + 0.05
    assert ((reference >= threshold) == (quantised >= threshold)).mean() >= 0.9


def test_cuda_is_asked_for_first_only_when_onnxruntime_has_it(monkeypatch):
    import onnxruntime

    from app.core.classifier import providers_for

    assert providers_for("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert providers_for("cuda") == ["CPUExecutionProvider"]
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert providers_for("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.mark.parametrize(("tta", "gradcam"), [(False, False), (True, False), (False, True)])
def test_a_large_batch_runs_in_chunks_with_the_same_answers(cnmc_root, tta, gradcam, monkeypatch):
    """Peak memory follows the chunk, not the batch (64 Grad-CAM maps once took 4.5 GB)."""
    from app.core import classifier as classifier_module
    from app.settings import bundled_model_store

    model = OnnxCellClassifier(bundled_model_store() / "efficientnet-lite0-128-cell")
    cells = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))
    batch = np.stack(
        [preprocess(decode_image(c.read_bytes()), model.manifest.preprocessing) for c in cells]
    )
    whole = model.predict(batch, tta=tta, gradcam=gradcam)
    sizes: list[int] = []
    run = model._run
    monkeypatch.setattr(model, "_run", lambda b, g: sizes.append(len(b)) or run(b, g))
    monkeypatch.setattr(classifier_module, "CHUNK_IMAGES", 5)
    monkeypatch.setattr(classifier_module, "EXPLAIN_CHUNK_IMAGES", 3)
    chunked = model.predict(batch, tta=tta, gradcam=gradcam)
    assert max(sizes) <= (3 if gradcam else 5)
    assert sum(sizes) >= len(batch)
    np.testing.assert_allclose(chunked.probabilities, whole.probabilities, atol=1e-6)
    if gradcam:
        np.testing.assert_allclose(chunked.gradcam, whole.gradcam, atol=1e-5)
