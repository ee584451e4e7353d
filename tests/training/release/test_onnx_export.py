import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow


def test_the_explain_graph_of_an_efficientnet_matches_autograd(tmp_path):
    """The default model is an EfficientNet-Lite0: its map (after the fifth block group) is
    computed by the same finite differences, through more layers than ConvNeXt's."""
    import onnxruntime as ort

    from training.fit.models import autograd_gradcam, create_classifier
    from training.release.onnx_export import export_onnx

    torch.manual_seed(0)
    model = create_classifier("tf_efficientnet_lite0").eval()
    path = tmp_path / "explain.onnx"
    export_onnx(model, path, 64, explain=True)
    images = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (maps,) = session.run(["gradcam"], {"image": images})
    reference = autograd_gradcam(model, torch.from_numpy(images)).numpy()
    assert maps.shape == reference.shape == (3, 4, 4)
    assert reference.std() > 0
    assert np.corrcoef(maps.ravel(), reference.ravel())[0, 1] >= 0.99
