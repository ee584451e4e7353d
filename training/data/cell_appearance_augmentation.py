"""Augmentations that make a cell's brightness, contrast and stain meaningless in training.

Measured on unseen patients (docs/model-selection.md): in fold 1 the ALL cells are brighter than
the HEM cells, in the preliminary-test patients they are darker, and a model that leaned on
brightness scored below chance there. Randomising appearance per cell, far beyond what one
batch of slides shows, leaves shape and texture as the only cues that stay put.

Only the cell's pixels change: the black surround stays black, so the crop and any
foreground mask computed later are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from skimage.color import hed2rgb, rgb2hed

from app.core.cell_colour import foreground_mask

Augmentation = Callable[[np.ndarray], np.ndarray]


def randomize_intensity(
    pixels: np.ndarray, strength: float, rng: np.random.Generator
) -> np.ndarray:
    """Gamma, contrast about the cell's mean, then brightness, each drawn within ±strength.

    `pixels` are float in [0, 1], shape (N, 3).
    """
    gamma = float(np.exp(rng.uniform(-strength, strength)))
    contrast = rng.uniform(1.0 - strength, 1.0 + strength)
    brightness = rng.uniform(1.0 - strength, 1.0 + strength)
    adjusted = np.power(pixels, gamma)
    mean = adjusted.mean(axis=0, keepdims=True)
    return np.asarray(((adjusted - mean) * contrast + mean) * brightness)


def randomize_stain(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Scale and shift each channel of the haematoxylin-eosin-DAB decomposition (Tellez et
    al., 2018): a stain-concentration change, not a hue rotation of the whole image."""
    hed = rgb2hed(pixels[np.newaxis])[0]
    scale = rng.uniform(1.0 - strength, 1.0 + strength, size=3)
    shift = rng.uniform(-strength, strength, size=3)
    return np.asarray(hed2rgb((hed * scale + shift)[np.newaxis])[0])


def cell_appearance_randomization(
    *,
    intensity: float,
    stain: float,
    foreground_threshold: int,
) -> Augmentation:
    """Randomise the cell's intensity (gamma/contrast/brightness) and stain; keep the surround.

    Cell pixels stay above `foreground_threshold` so that they remain cell pixels. Draws come
    from torch's generator, which `torch.manual_seed` and each DataLoader worker seed.
    """
    floor = (foreground_threshold + 1) / 255.0

    def augment(image: np.ndarray) -> np.ndarray:
        mask = foreground_mask(image, foreground_threshold)
        if not mask.any() or (intensity == 0 and stain == 0):
            return image
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        pixels = image[mask].astype(np.float64) / 255.0
        if stain > 0:
            pixels = randomize_stain(pixels, stain, rng)
        if intensity > 0:
            pixels = randomize_intensity(pixels, intensity, rng)
        augmented = image.copy()
        augmented[mask] = np.round(np.clip(pixels, floor, 1.0) * 255.0).astype(np.uint8)
        return augmented

    return augment
