"""Right for the right reasons: a training penalty on Grad-CAM heat that lies off the cell.

Fine-tuned from ImageNet, EfficientNet-Lite0 put about three quarters of its Grad-CAM heat on
the black surround of held-out cells (the ConvNeXt trained from scratch about a tenth), so its
maps could not show a clinician which parts of the cell mattered. Prior knowledge says the
answer lies in the cell; penalising explanations that contradict prior knowledge is the
method of Ross et al. 2017 ("Right for the right reasons") and Rieger et al. 2020 (CDEP, on
skin-lesion images). The penalty is the share of the map's heat outside the cell, on the same
Grad-CAM the explain graph exports, differentiable through autograd's `create_graph`.

Batch normalisation runs on its running statistics while the penalty is on, as it does when
served: with per-batch statistics the penalty was met in training (7% of the heat off the cell
at the last epoch) by a network whose served maps, on the same training images, put 53% off
the cell (fold 0 of fold 1, measured).

Whether the maps then lie on the cell is measured on held-out subjects (`heat-in-cell --cv`),
never on the images the penalty saw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from app.core.recipe import PreprocessConfig
from training.fit.models import CellClassifier


def cell_share_per_position(
    images: torch.Tensor, recipe: PreprocessConfig, size: tuple[int, int]
) -> torch.Tensor:
    """(N, h, w): the share of cell pixels under each position of an h x w map.

    The mask is the recipe's foreground mask, recovered from the normalised batch after
    augmentation (rotations fill with black, so it follows the cell)."""
    mean = torch.tensor(recipe.mean, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(recipe.std, dtype=images.dtype).view(1, 3, 1, 1)
    pixels = (images * std + mean) * 255.0
    mask = (pixels.amax(dim=1, keepdim=True) > recipe.foreground_threshold).to(images.dtype)
    return F.adaptive_avg_pool2d(mask, size).squeeze(1)


def logits_and_heat_off_cell(
    model: CellClassifier, images: torch.Tensor, recipe: PreprocessConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits and, per image, the share of Grad-CAM heat off the cell (differentiable)."""
    features = model.feature_map(images)
    if not features.requires_grad:  # a frozen backbone: only the head learns from the penalty
        features = features.detach().requires_grad_(True)
    logits = model.logit_from_features(features)
    (gradient,) = torch.autograd.grad(logits.sum(), features, create_graph=True)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    gradcam = torch.relu((weights * features).sum(dim=1))
    height, width = gradcam.shape[-2:]
    inside = cell_share_per_position(images, recipe, (int(height), int(width)))
    total = gradcam.sum(dim=(1, 2))
    off_cell = (gradcam * (1.0 - inside)).sum(dim=(1, 2)) / total.clamp_min(1e-8)
    return logits, off_cell


def use_running_batch_norm_statistics(model: nn.Module) -> None:
    """Batch norm as served (running statistics, not updated); everything else trains."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
