import numpy as np
import pytest

from app.inference import OnnxCellClassifier
from app.preprocessing import preprocess


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


def test_cuda_is_asked_for_first_only_when_onnxruntime_has_it(monkeypatch):
    import onnxruntime

    from app.inference import providers_for

    assert providers_for("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert providers_for("cuda") == ["CPUExecutionProvider"]
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert providers_for("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
