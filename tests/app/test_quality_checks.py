import numpy as np

from app.preprocessing import PreprocessConfig, preprocess_with_views
from app.quality_checks import quality_warnings


def codes(rgb):
    return [
        w.code
        for w in quality_warnings(preprocess_with_views(rgb, PreprocessConfig(input_size=32)))
    ]


def test_a_real_cell_has_no_warning(real_cell_png):
    from app.preprocessing import decode_image

    assert codes(decode_image(real_cell_png)) == []


def test_a_black_image_has_no_cell():
    assert codes(np.zeros((100, 100, 3), np.uint8)) == ["no_cell"]


def test_a_photograph_without_black_surround():
    rng = np.random.default_rng(0)
    assert codes(rng.integers(60, 255, (100, 100, 3), dtype=np.uint8)) == ["no_background"]
