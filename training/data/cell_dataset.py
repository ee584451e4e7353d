"""The torch Dataset over indexed cells, built on the serving preprocessing.

Without augmentation an item is bitwise the tensor the server computes for the same file;
augmentation works on the prepared uint8 image, before the shared normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from app.core.recipe import PreprocessConfig, normalize_to_tensor, prepare_image
from training.data.dataset_index import CellImage, read_image

Augmentation = Callable[[np.ndarray], np.ndarray]
PreparedCache = dict[Path, np.ndarray]
"""Prepared images by file. Preparation does not depend on the mean/std measured per split,
so datasets of one recipe (train and validation, every fold of a cross-validation) share one."""


CellBatch = tuple[torch.Tensor, torch.Tensor]
"""(images, labels): what a loader over a `CellDataset` yields."""


class CellDataset(Dataset[CellBatch]):
    def __init__(
        self,
        images: Sequence[CellImage],
        config: PreprocessConfig,
        augmentation: Augmentation | None = None,
        *,
        cache: bool | PreparedCache = True,
    ) -> None:
        self.images = list(images)
        self.config = config
        self.augmentation = augmentation
        self._cache: PreparedCache | None = (
            cache if isinstance(cache, dict) else ({} if cache else None)
        )

    def __len__(self) -> int:
        return len(self.images)

    def prepared(self, index: int) -> np.ndarray:
        """Enhanced, cropped and resized uint8 image; cached because CLAHE costs per epoch."""
        path = self.images[index].path
        if self._cache is not None and path in self._cache:
            return self._cache[path]
        prepared = prepare_image(read_image(path), self.config)
        if self._cache is not None:
            self._cache[path] = prepared
        return prepared

    def iter_prepared(self) -> Iterator[np.ndarray]:
        return (self.prepared(i) for i in range(len(self)))

    def labels(self) -> np.ndarray:
        return np.asarray([image.label for image in self.images], dtype=np.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.prepared(index)
        if self.augmentation is not None:
            image = self.augmentation(image)
        tensor = torch.from_numpy(normalize_to_tensor(image, self.config))
        return tensor, torch.tensor(float(self.images[index].label))


def morphology_preserving_augmentation(
    *,
    affine_degrees: float = 15.0,
    translate: float = 0.05,
    scale: tuple[float, float] = (0.95, 1.05),
    color_jitter: float = 0.1,
    before: Augmentation | None = None,
) -> Augmentation:
    """Flips, 90-degree turns, a small affine and mild colour jitter: a cell has no up or
    down. `scale` defaults to a few percent; wider ranges make absolute size unreliable.
    `before` runs first, on the prepared image (the cell-appearance randomisation)."""
    geometric = [
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        v2.RandomChoice([v2.RandomRotation((angle, angle)) for angle in (0, 90, 180, 270)]),
        v2.RandomAffine(degrees=affine_degrees, translate=(translate, translate), scale=scale),
    ]
    photometric = (
        [
            v2.ColorJitter(
                brightness=color_jitter,
                contrast=color_jitter,
                saturation=color_jitter,
                hue=min(color_jitter / 5, 0.5),
            )
        ]
        if color_jitter > 0
        else []
    )
    pipeline = v2.Compose(geometric + photometric)

    def augment(image: np.ndarray) -> np.ndarray:
        if before is not None:
            image = before(image)
        chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        augmented: torch.Tensor = pipeline(chw)
        return np.asarray(augmented.permute(1, 2, 0).contiguous().numpy())

    return augment
