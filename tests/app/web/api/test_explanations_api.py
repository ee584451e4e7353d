"""Grad-CAM, test-time augmentation and calibration through the API, on the bundled model."""

import base64

import cv2
import numpy as np
import pytest

from app.core.cell_colour import foreground_mask
from app.core.classifier import OnnxCellClassifier
from app.core.gradcam import HEAT_ON_CELL_GOAL
from app.core.image_decoding import decode_image
from app.core.recipe import prepare_image, preprocess
from app.core.tta_transforms import dihedral_transforms


def decode_data_uri(uri: str) -> np.ndarray:
    data = base64.b64decode(uri.split(",", 1)[1])
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def default_classifier(client) -> OnnxCellClassifier:
    service = client.app.state.service
    return service.registry.get()


def heat_on_fixture_cells(client, cnmc_root, model_id: str) -> tuple[list[float], list[float]]:
    """Each fixture cell's share of heat inside the cell, and the cell's share of the crop."""
    classifier = client.app.state.service.registry.get(model_id)
    recipe = classifier.manifest.preprocessing
    fractions, cell_shares = [], []
    for path in sorted((cnmc_root / "training_data/fold_1").glob("*/*.png")):
        response = client.post(
            f"/api/v1/predict?explain=true&model={model_id}",
            files={"file": (path.name, path.read_bytes())},
        )
        assert response.status_code == 200
        body = response.json()
        size = recipe.input_size
        assert decode_data_uri(body["explanation"]["heatmap"]).shape == (size, size, 3)
        assert decode_data_uri(body["explanation"]["overlay"]).shape == (size, size, 4)
        assert "heatmap" not in body  # one heatmap per answer: the explanation's
        explanation = body["explanation"]
        assert explanation["on_cell"] == (explanation["heat_in_cell"] >= HEAT_ON_CELL_GOAL)
        fractions.append(explanation["heat_in_cell"])
        crop = prepare_image(decode_image(path.read_bytes()), recipe)
        cell_shares.append(float(foreground_mask(crop, recipe.foreground_threshold).mean()))
    assert all(0.0 <= f <= 1.0 for f in fractions)
    return fractions, cell_shares


@pytest.mark.parametrize("model_id", ["efficientnet-lite0-128-cell", "convnext-atto-128-cell"])
def test_every_bundled_model_reports_where_its_heat_lies(bundled_client, cnmc_root, model_id):
    """Where the heat lies is a measured, reported property, never a gate on a real model
    (a map trained onto the cell became a centred blob): the answer carries the share and
    its flag for every real fixture cell, and the crop leaves room to miss the cell."""
    fractions, cell_shares = heat_on_fixture_cells(bundled_client, cnmc_root, model_id)
    assert len(fractions) == 18
    assert np.mean(cell_shares) < 0.5  # the crop is mostly surround: a map could miss the cell


def test_explain_is_refused_for_a_model_without_the_map(client, real_cell_png):
    response = client.post("/api/v1/predict?explain=true", files={"file": ("c.png", real_cell_png)})
    assert response.status_code == 422
    assert "Grad-CAM" in response.json()["detail"]


def test_tta_averages_the_eight_views(bundled_client, real_cell_png):
    classifier = default_classifier(bundled_client)
    tensor = preprocess(decode_image(real_cell_png), classifier.manifest.preprocessing)
    views = classifier.predict(dihedral_transforms(tensor)).probabilities
    response = bundled_client.post(
        "/api/v1/predict?tta=true", files={"file": ("c.png", real_cell_png)}
    )
    body = response.json()
    assert body["tta"] is True
    assert body["probability_all"] == pytest.approx(float(views.mean()), abs=1e-6)
    plain = bundled_client.post(
        "/api/v1/predict?tta=false", files={"file": ("c.png", real_cell_png)}
    )
    assert plain.json()["tta"] is False
    assert plain.json()["probability_all"] == pytest.approx(float(views[0]), abs=1e-6)


def test_served_probabilities_are_calibrated(bundled_client, real_cell_png):
    classifier = default_classifier(bundled_client)
    calibration = classifier.manifest.calibration
    assert calibration is not None
    tensor = preprocess(decode_image(real_cell_png), classifier.manifest.preprocessing)
    (raw_logit,) = classifier.session.run(["logit"], {"image": tensor[None]})
    expected = 1 / (1 + np.exp(-(raw_logit[0] / calibration.temperature + calibration.bias)))
    response = bundled_client.post(
        "/api/v1/predict?tta=false", files={"file": ("c.png", real_cell_png)}
    )
    assert response.json()["probability_all"] == pytest.approx(float(expected), abs=1e-6)


def test_the_batch_returns_each_items_views_and_explanation(bundled_client, cnmc_root):
    """A viewer of a batch needs no second request: the same map as the single endpoint."""
    cells = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))[:2]
    response = bundled_client.post(
        "/api/v1/predict/batch?views=true&explain=true&tta=false",
        files=[("files", (p.name, p.read_bytes())) for p in cells],
    )
    assert response.status_code == 200
    results = response.json()["results"]
    for path, item in zip(cells, results, strict=True):
        prediction = item["prediction"]
        assert set(prediction["views"]) == {"original", "enhanced", "cropped"}
        single = bundled_client.post(
            "/api/v1/predict?explain=true&tta=false",
            files={"file": (path.name, path.read_bytes())},
        ).json()
        assert prediction["probability_all"] == pytest.approx(single["probability_all"], abs=1e-5)
        assert prediction["explanation"]["heat_in_cell"] == pytest.approx(
            single["explanation"]["heat_in_cell"], abs=1e-4
        )
