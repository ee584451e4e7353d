from collections.abc import Callable

import pytest
import torch
from torch import nn

from training.models import CellClassifier


class BrightnessBackbone(nn.Module):
    """A map that is the red channel itself at 1/4: evidence exactly where the pixels are
    bright (the cell) or, read with a negative weight, where they are dark (the surround)."""

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(images[:, :1], 4)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=(2, 3))


@pytest.fixture
def brightness_classifier() -> Callable[[float], CellClassifier]:
    """A classifier whose Grad-CAM lies on the cell (weight > 0) or off it (weight < 0)."""

    def build(weight: float) -> CellClassifier:
        head = nn.Linear(1, 1)
        with torch.no_grad():
            head.weight.fill_(weight)
            head.bias.zero_()
        return CellClassifier(BrightnessBackbone(), head)

    return build
