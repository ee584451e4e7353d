"""What a person sees of a prediction: the image at each step and the Grad-CAM heat, as PNG data
URIs that the browser and API clients can show without another request."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from app.core.domain.predictions import DisplayImages, Explanation
from app.core.gradcam import HeatMap

DISPLAY_MAX_SIDE = 512


def png_data_uri(image: np.ndarray) -> str:
    """RGB or RGBA uint8 as a PNG data URI."""
    code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, code))
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB image
        raise RuntimeError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def display_copy(rgb: np.ndarray) -> np.ndarray:
    """At most DISPLAY_MAX_SIDE per side: a page needs no more, and a data URI grows with it."""
    scale = DISPLAY_MAX_SIDE / max(rgb.shape[:2])
    if scale >= 1.0:
        return rgb
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def display_images(
    original: np.ndarray, enhanced: np.ndarray, cropped_view: np.ndarray
) -> DisplayImages:
    """The upload, the contrast-enhanced frame and the model's crop, as the recipe saw them."""
    return DisplayImages(
        original=png_data_uri(display_copy(original)),
        enhanced=png_data_uri(display_copy(enhanced)),
        cropped=png_data_uri(cropped_view),
    )


def render_explanation(heat: HeatMap, cropped_view: np.ndarray) -> Explanation:
    """The heat painted over the crop, and alone as an overlay a viewer can fade."""
    return Explanation(
        heatmap=png_data_uri(composite(heat.heat, cropped_view)),
        overlay=png_data_uri(overlay_rgba(heat.heat)),
        heat_in_cell=heat.heat_in_cell,
        on_cell=heat.on_cell,
    )


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """RGB colours of the heat (turbo colour map)."""
    scaled = np.round(heat * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)


def overlay_rgba(heat: np.ndarray) -> np.ndarray:
    """Colours with the heat as opacity, for a browser to lay over the crop."""
    alpha = np.round(heat * 255).astype(np.uint8)[:, :, None]
    return np.concatenate([heat_colours(heat), alpha], axis=2)


def composite(heat: np.ndarray, crop_rgb: np.ndarray, opacity: float = 0.6) -> np.ndarray:
    """The heat painted over the crop, strongest where the heat is."""
    weight = (heat * opacity)[:, :, None]
    blended = crop_rgb.astype(np.float32) * (1 - weight) + heat_colours(heat) * weight
    return np.round(blended).astype(np.uint8)
