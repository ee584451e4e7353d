"""What a person sees of a prediction: PNG data URIs a browser shows as they are, no larger than
a page needs, and the heat as an overlay whose opacity is the heat."""

import base64

import cv2
import numpy as np

from app.core.gradcam import HeatMap
from app.inference.display_images import (
    DISPLAY_MAX_SIDE,
    composite,
    display_copy,
    display_images,
    overlay_rgba,
    png_data_uri,
    render_explanation,
)


def decoded(data_uri: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert data_uri.startswith(prefix)
    raw = np.frombuffer(base64.b64decode(data_uri[len(prefix) :]), np.uint8)
    return cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)


def test_a_data_uri_holds_the_image_pixel_for_pixel_in_rgb_order():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    back = decoded(png_data_uri(rgb))
    assert back.shape == (4, 5, 3)
    assert (back[..., 2] == 200).all()  # OpenCV reads BGR
    assert (back[..., :2] == 0).all()


def test_display_copies_are_shrunk_to_the_page_and_never_enlarged():
    large = np.zeros((2 * DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE, 3), np.uint8)
    small = np.zeros((40, 30, 3), np.uint8)
    assert display_copy(large).shape == (DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE // 2, 3)
    assert display_copy(small) is small
    views = display_images(large, large, small)
    assert decoded(views.original).shape[:2] == (DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE // 2)
    assert decoded(views.cropped).shape[:2] == (40, 30)


def test_the_overlay_is_as_opaque_as_the_heat_and_cold_heat_leaves_the_crop_as_it_was():
    heat = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    assert (overlay_rgba(heat)[..., 3] == np.round(heat * 255)).all()
    crop = np.full((4, 4, 3), 77, np.uint8)
    assert (composite(np.zeros((4, 4), np.float32), crop) == crop).all()
    assert not (composite(np.ones((4, 4), np.float32), crop) == crop).all()


def test_an_explanation_carries_how_much_heat_lies_on_the_cell():
    heat = HeatMap(heat=np.ones((8, 8), np.float32), heat_in_cell=0.95)
    explanation = render_explanation(heat, np.zeros((8, 8, 3), np.uint8))
    assert (explanation.heat_in_cell, explanation.on_cell) == (0.95, True)
    assert decoded(explanation.overlay).shape == (8, 8, 4)
    assert decoded(explanation.heatmap).shape == (8, 8, 3)
