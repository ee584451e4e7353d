import numpy as np

from app.core.image_decoding import decode_image
from app.core.recipe import PreprocessConfig, preprocess
from training.data.image_batches import (
    batched,
    preprocess_batch,
    preprocessed_batches,
    read_batches,
)


def test_batched_slices_keep_order_and_end_short():
    assert [list(chunk) for chunk in batched(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


def test_preprocessed_batches_are_the_servers_inputs(cnmc_root):
    paths = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))[:5]
    recipe = PreprocessConfig(input_size=32)
    batches = list(preprocessed_batches(paths, recipe, 2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    served = np.stack([preprocess(decode_image(path.read_bytes()), recipe) for path in paths])
    assert np.array_equal(np.concatenate(batches), served)
    rgbs = next(read_batches(paths, 5))
    assert np.array_equal(preprocess_batch(rgbs, recipe), served)
