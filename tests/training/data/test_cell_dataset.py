import numpy as np
import pytest
import torch

from app.core.image_decoding import decode_image
from app.core.recipe import ContrastMethod, CropMethod, PreprocessConfig, preprocess
from training.data.cell_dataset import CellDataset, morphology_preserving_augmentation
from training.data.dataset_index import index_dataset


@pytest.mark.parametrize("crop", list(CropMethod))
@pytest.mark.parametrize("contrast", list(ContrastMethod))
def test_loader_tensor_is_bitwise_the_serving_tensor(cnmc_root, crop, contrast):
    """Training and serving must see the same numbers for the same file."""
    images = index_dataset(cnmc_root).images
    config = PreprocessConfig(
        crop=crop, contrast=contrast, input_size=80, mean=(0.1, 0.06, 0.12), std=(0.14, 0.07, 0.16)
    )
    dataset = CellDataset(images, config)
    for position in (0, 7, 17):
        tensor, label = dataset[position]
        served = preprocess(decode_image(images[position].path.read_bytes()), config)
        assert tensor.dtype == torch.float32
        assert np.array_equal(tensor.numpy(), served)
        assert label.item() == images[position].label


def test_cache_does_not_change_items(cnmc_root):
    images = index_dataset(cnmc_root).images[:3]
    cached = CellDataset(images, PreprocessConfig(input_size=48))
    uncached = CellDataset(images, PreprocessConfig(input_size=48), cache=False)
    for position in range(3):
        first = cached[position][0]
        assert torch.equal(first, cached[position][0])
        assert torch.equal(first, uncached[position][0])


def test_augmentation_keeps_shape_and_dtype_and_varies():
    torch.manual_seed(0)
    augment = morphology_preserving_augmentation()
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[10:30, 5:20] = 180
    outputs = [augment(image) for _ in range(8)]
    assert all(out.shape == image.shape and out.dtype == np.uint8 for out in outputs)
    assert any(not np.array_equal(out, image) for out in outputs)


def test_augmentation_without_colour_jitter_only_moves_pixels():
    torch.manual_seed(1)
    augment = morphology_preserving_augmentation(
        affine_degrees=0, translate=0, scale=(1, 1), color_jitter=0
    )
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    out = augment(image)
    # Flips and quarter turns permute pixels: the multiset of colours is unchanged.
    assert sorted(map(tuple, out.reshape(-1, 3))) == sorted(map(tuple, image.reshape(-1, 3)))
