"""Image files to model inputs, a batch at a time, exactly as the server makes them: the one
read-and-preprocess loop of the training package."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from app.core.recipe import PreprocessConfig, preprocess
from training.data.dataset_index import read_image

Item = TypeVar("Item")


def batched(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    """Consecutive slices of `size` items (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_batches(paths: Sequence[Path], batch_size: int) -> Iterator[list[np.ndarray]]:
    """The files decoded to RGB uint8, `batch_size` at a time."""
    for chunk in batched(paths, batch_size):
        yield [read_image(path) for path in chunk]


def preprocess_batch(images: Sequence[np.ndarray], recipe: PreprocessConfig) -> np.ndarray:
    """(N, 3, size, size) float32 model inputs for decoded RGB images."""
    return np.stack([preprocess(rgb, recipe) for rgb in images])


def preprocessed_batches(
    paths: Sequence[Path], recipe: PreprocessConfig, batch_size: int
) -> Iterator[np.ndarray]:
    """Model inputs for the files, `batch_size` at a time."""
    for images in read_batches(paths, batch_size):
        yield preprocess_batch(images, recipe)
