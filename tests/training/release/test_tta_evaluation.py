import numpy as np
import torch

from app.core.image_decoding import decode_image
from app.core.recipe import PreprocessConfig, preprocess
from app.core.tta_transforms import dihedral_transforms
from training.fit.models import create_classifier, predict_probabilities
from training.release.tta_evaluation import plain_and_tta_probabilities


class MeanBrightness(torch.nn.Module):
    """A logit that no flip or turn can change."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(1, 2, 3))


def test_views_are_the_servers_eight_and_averaged_per_image(cnmc_root):
    paths = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))[:3]
    recipe = PreprocessConfig(input_size=32)
    torch.manual_seed(0)
    model = create_classifier("convnext_atto").eval()
    plain, averaged = plain_and_tta_probabilities(model, paths, recipe)
    batch = np.stack([preprocess(decode_image(path.read_bytes()), recipe) for path in paths])
    assert np.array_equal(plain, predict_probabilities(model, batch))
    views = [predict_probabilities(model, dihedral_transforms(image)).mean() for image in batch]
    assert np.allclose(averaged, views, atol=1e-6)  # batched together, the same up to rounding
    invariant_plain, invariant_averaged = plain_and_tta_probabilities(
        MeanBrightness(), paths, recipe
    )
    assert np.allclose(invariant_plain, invariant_averaged, atol=1e-6)
