import io
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from app.core.cell_colour import foreground_mask, standardize_cell_colour
from app.core.image_decoding import (
    PNG_CHUNKS_TO_READ,
    ImageDecodeError,
    decode_image,
    is_8_bit_rgb_png,
    to_rgb_uint8,
)
from app.core.recipe import (
    ContrastMethod,
    CropMethod,
    PreprocessConfig,
    center_crop,
    channel_statistics,
    normalize_to_tensor,
    prepare_image,
    preprocess,
    rescale_for_display,
    rgb_to_lab,
    square_window_crop,
)
from bench.reference_crops import enhance_contrast, preprocess_with_views, recipe_crop


def encode(image_bgr: np.ndarray, extension: str) -> bytes:
    ok, buffer = cv2.imencode(extension, image_bgr)
    assert ok
    return buffer.tobytes()


def disc_image(size: int, radius: int, center: tuple[int, int], value: int = 200) -> np.ndarray:
    image = np.zeros((size, size, 3), dtype=np.uint8)
    cv2.circle(image, (center[1], center[0]), radius, (value, value // 2, value), thickness=-1)
    return image


class TestDecodeImage:
    @pytest.mark.parametrize("extension", [".png", ".bmp", ".tiff", ".jpg"])
    def test_formats_decode_to_rgb_uint8(self, extension):
        rgb = np.zeros((40, 30, 3), dtype=np.uint8)
        rgb[:, :, 0] = 200  # red in RGB order
        decoded = decode_image(encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), extension))
        assert decoded.shape == (40, 30, 3)
        assert decoded.dtype == np.uint8
        tolerance = 3 if extension == ".jpg" else 0
        assert np.abs(decoded.astype(int) - rgb.astype(int)).max() <= tolerance

    def test_grayscale_becomes_three_equal_channels(self):
        gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
        decoded = decode_image(encode(gray, ".png"))
        assert decoded.shape == (16, 16, 3)
        assert (decoded[:, :, 0] == gray).all()
        assert (decoded[:, :, 1] == gray).all()
        assert (decoded[:, :, 2] == gray).all()

    def test_sixteen_bit_is_scaled_to_eight(self):
        values = np.array([[0, 257, 257 * 128, 65535]], dtype=np.uint16)
        decoded = decode_image(encode(values, ".png"))
        assert decoded[0, :, 0].tolist() == [0, 1, 128, 255]

    def test_rgba_is_composited_over_black(self):
        bgra = np.full((4, 4, 4), 200, dtype=np.uint8)
        bgra[:2, :, 3] = 0  # transparent top half
        bgra[2:, :, 3] = 255
        decoded = decode_image(encode(bgra, ".png"))
        assert (decoded[:2] == 0).all()
        assert (decoded[2:] == 200).all()

    @pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
    def test_undecodable_data_raises_a_clear_error(self, data):
        with pytest.raises(ImageDecodeError):
            decode_image(data)


def as_stored(data: bytes) -> np.ndarray:
    """The general path: decoded as stored, then brought to RGB."""
    return to_rgb_uint8(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED))


def pillow_encoded(rgb: np.ndarray, image_format: str, mode: str = "RGB", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert(mode).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def png_with_chunk(png: bytes, chunk_type: bytes, payload: bytes) -> bytes:
    """A chunk inserted right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    crc = zlib.crc32(chunk_type + payload).to_bytes(4, "big")
    chunk = len(payload).to_bytes(4, "big") + chunk_type + payload + crc
    return png[:33] + chunk + png[33:]


def rgb_pngs() -> dict[str, bytes]:
    rgb = np.random.default_rng(7).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    plain = pillow_encoded(rgb, "PNG")
    rotated = Image.Exif()
    rotated[0x0112] = 6  # "rotate 90 degrees": the decoder must not apply it
    return {
        "png": plain,
        "png with gAMA": png_with_chunk(plain, b"gAMA", (100_000).to_bytes(4, "big")),
        "png with EXIF orientation": pillow_encoded(rgb, "PNG", exif=rotated.tobytes()),
    }


@pytest.mark.parametrize("name", list(rgb_pngs()))
def test_rgb_pngs_decode_straight_to_the_same_pixels(name):
    data = rgb_pngs()[name]
    assert is_8_bit_rgb_png(data)
    assert np.array_equal(decode_image(data), as_stored(data))


def test_the_real_cells_decode_straight_to_the_same_pixels(cnmc_root):
    paths = sorted(cnmc_root.rglob("*.png"))
    assert len(paths) == 18
    for path in paths:
        data = path.read_bytes()
        assert is_8_bit_rgb_png(data), path.name
        assert np.array_equal(decode_image(data), as_stored(data)), path.name


def other_layouts() -> dict[str, bytes]:
    rgb = np.random.default_rng(8).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((12, 10), 128, np.uint8)])
    return {
        "grey png": encode(rgb[:, :, 0], ".png"),
        "rgba png": encode(rgba, ".png"),
        "16-bit png": encode(rgb.astype(np.uint16) * 257, ".png"),
        "palette png": pillow_encoded(rgb, "PNG", mode="P"),
        "24-bit bmp": encode(rgb, ".bmp"),
        "32-bit bmp": encode(rgba, ".bmp"),
        "jpeg": encode(rgb, ".jpg"),
        "tiff": encode(rgb, ".tiff"),
        "rgb png with a transparent colour": transparent_white_png(rgb),
        "signature without IHDR": b"\x89PNG\r\n\x1a\n" + b"\0" * 20,
    }


def transparent_white_png(rgb: np.ndarray) -> bytes:
    """An RGB PNG whose tRNS chunk makes white transparent, with a white pixel at (0, 0)."""
    keyed = rgb.copy()
    keyed[0, 0] = 255
    return pillow_encoded(keyed, "PNG", transparency=(255, 255, 255))


def test_a_png_of_many_chunks_is_not_searched_to_its_end(real_cell_png):
    """Past the chunks worth reading the general path takes over, with the same pixels."""
    padded = real_cell_png
    for _ in range(PNG_CHUNKS_TO_READ):
        padded = png_with_chunk(padded, b"tEXt", b"k\0v")
    assert not is_8_bit_rgb_png(padded)
    assert np.array_equal(decode_image(padded), decode_image(real_cell_png))


def test_a_transparent_colour_is_composited_over_black():
    rgb = np.full((6, 5, 3), 100, np.uint8)
    decoded = decode_image(transparent_white_png(rgb))
    assert decoded[0, 0].tolist() == [0, 0, 0]
    assert (decoded.reshape(-1, 3)[1:] == 100).all()


@pytest.mark.parametrize("keep", [25, 33, 0.5, -13])
def test_a_cut_rgb_png_is_refused_on_either_path(real_cell_png, keep):
    """Cut inside IHDR, right after it, halfway through the image data, before IEND."""
    end = int(len(real_cell_png) * keep) if isinstance(keep, float) else keep
    with pytest.raises(ImageDecodeError):
        decode_image(real_cell_png[:end])


@pytest.mark.parametrize("name", list(other_layouts()))
def test_other_layouts_take_the_general_path(name):
    data = other_layouts()[name]
    assert not is_8_bit_rgb_png(data)


class TestContrast:
    def test_none_is_identity(self):
        rgb = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
        config = PreprocessConfig(contrast=ContrastMethod.NONE)
        assert enhance_contrast(rgb, config) is rgb

    @pytest.mark.parametrize(
        "method", [ContrastMethod.CLAHE, ContrastMethod.HISTOGRAM_EQUALIZATION]
    )
    def test_equalisation_spreads_a_dim_image(self, method):
        rng = np.random.default_rng(1)
        dim = rng.integers(40, 80, (64, 64, 3), dtype=np.uint8)
        enhanced = enhance_contrast(dim, PreprocessConfig(contrast=method))
        assert enhanced.shape == dim.shape
        assert enhanced.dtype == np.uint8
        assert np.ptp(enhanced) > np.ptp(dim)

    def test_clahe_keeps_the_background_near_black(self, real_cell_png):
        rgb = decode_image(real_cell_png)
        enhanced = enhance_contrast(rgb, PreprocessConfig())
        background = ~foreground_mask(rgb, 15)
        assert enhanced[background].max() <= 15


@st.composite
def blobs_on_exact_black(draw) -> np.ndarray:
    """Exact black (the C-NMC background) with blobs and stray pixels anywhere, edges too."""
    height = draw(st.integers(1, 80))
    width = draw(st.integers(1, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    image = np.zeros((height, width, 3), dtype=np.uint8)
    for _ in range(draw(st.integers(0, 3))):
        centre = (int(rng.integers(-10, width + 10)), int(rng.integers(-10, height + 10)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(1, 30)), colour, -1)
    for _ in range(draw(st.integers(0, 3))):
        row, col, channel = (int(rng.integers(0, n)) for n in (height, width, 3))
        image[row, col, channel] = int(rng.integers(1, 256))
    return image


@settings(max_examples=200, deadline=None)
@given(image=blobs_on_exact_black())
def test_lab_over_the_non_black_box_equals_the_whole_frame_conversion(image):
    assert np.array_equal(rgb_to_lab(image), cv2.cvtColor(image, cv2.COLOR_RGB2LAB))


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3)])
def test_lab_of_an_empty_frame_fails_as_opencv_does(shape):
    with pytest.raises(cv2.error):
        rgb_to_lab(np.zeros(shape, np.uint8))


def test_lab_of_views_and_other_depths_equals_opencv():
    rng = np.random.default_rng(3)
    frame = np.zeros((40, 50, 3), np.uint8)
    frame[10:20, 30:45] = rng.integers(0, 256, (10, 15, 3), dtype=np.uint8)
    for view in (frame[::2, ::3], frame[:, ::-1], frame[..., ::-1], np.asfortranarray(frame)):
        assert np.array_equal(rgb_to_lab(view), cv2.cvtColor(view, cv2.COLOR_RGB2LAB))
    scaled = frame.astype(np.float32) / 255
    assert np.array_equal(rgb_to_lab(scaled), cv2.cvtColor(scaled, cv2.COLOR_RGB2LAB))


def test_lab_of_a_real_frame_equals_the_whole_frame_conversion(real_cell_png):
    rgb = decode_image(real_cell_png)
    lab = rgb_to_lab(rgb)
    assert np.array_equal(lab, cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB))
    lab[0, 0] = 1  # a copy: the shared black frame is never handed out
    assert np.array_equal(
        rgb_to_lab(np.zeros_like(rgb)), cv2.cvtColor(np.zeros_like(rgb), cv2.COLOR_RGB2LAB)
    )


class TestCellColourStandardisation:
    def test_brightness_and_stain_no_longer_reach_the_model(self, real_cell_png):
        rgb = decode_image(real_cell_png)
        mask = foreground_mask(rgb, 15)
        darker = rgb.copy()
        # A darker, bluer acquisition of the same cell (as another subject's batch might be).
        darker[mask] = np.clip(rgb[mask] * np.array([0.7, 0.75, 0.9]) + 8, 16, 255).astype(np.uint8)
        # Without CLAHE, which amplifies the rounding of the darker copy's pixels.
        plain = PreprocessConfig(input_size=64, contrast=ContrastMethod.NONE)
        standardized = plain.model_copy(update={"standardize_cell_colour": True})
        cell = foreground_mask(prepare_image(rgb, plain), 15)
        before = np.abs(preprocess(rgb, plain) - preprocess(darker, plain))[:, cell].mean()
        after = np.abs(preprocess(rgb, standardized) - preprocess(darker, standardized))
        assert after[:, cell].mean() < before / 5

    def test_sets_the_cell_statistics_and_keeps_mask_and_background(self, real_cell_png):
        rgb = decode_image(real_cell_png)
        mask = foreground_mask(rgb, 15)
        out = standardize_cell_colour(rgb, mask, 15)
        pixels = out[mask].astype(np.float64)
        np.testing.assert_allclose(pixels.mean(axis=0), 128.0, atol=3.0)
        # Clipping the few far-out pixels of the dim rim takes a little of the spread.
        assert (pixels.std(axis=0) > 24.0).all()
        assert (pixels.std(axis=0) < 32.5).all()
        assert np.array_equal(foreground_mask(out, 15), mask)
        assert (out[~mask] == rgb[~mask]).all()

    def test_an_empty_image_is_left_alone(self):
        black = np.zeros((20, 20, 3), dtype=np.uint8)
        assert standardize_cell_colour(black, foreground_mask(black, 15), 15) is black

    def test_is_off_unless_asked_so_older_manifests_keep_their_recipe(self):
        assert PreprocessConfig().standardize_cell_colour is False


class TestCrops:
    def test_window_outside_the_image_is_black(self):
        image = np.full((10, 10, 3), 7, dtype=np.uint8)
        window = square_window_crop(image, (0, 0), 6)
        assert window.shape == (6, 6, 3)
        assert (window[:3, :] == 0).all()
        assert (window[:, :3] == 0).all()
        assert (window[3:, 3:] == 7).all()

    def test_center_crop_pads_small_images(self):
        image = np.full((4, 4, 3), 9, dtype=np.uint8)
        cropped = center_crop(image, 8)
        assert cropped.shape == (8, 8, 3)
        assert cropped.sum() == 9 * 4 * 4 * 3

    def test_cell_crop_centres_the_cell_and_keeps_its_size(self):
        image = disc_image(450, 40, (150, 300))
        config = PreprocessConfig(crop=CropMethod.CELL, crop_size=200)
        mask = foreground_mask(image, config.foreground_threshold)
        cropped = recipe_crop(image, mask, config)
        cropped_mask = foreground_mask(cropped, config.foreground_threshold)
        assert cropped.shape == (200, 200, 3)
        assert cropped_mask.sum() == mask.sum()
        rows, cols = np.nonzero(cropped_mask)
        assert abs(rows.mean() - 100) <= 1
        assert abs(cols.mean() - 100) <= 1

    def test_cell_crop_tells_small_from_large_cells(self):
        config = PreprocessConfig(crop=CropMethod.CELL, crop_size=300, input_size=100)
        small = prepare_image(disc_image(450, 40, (225, 225)), config)
        large = prepare_image(disc_image(450, 80, (225, 225)), config)
        area = lambda image: foreground_mask(image, 15).mean()  # noqa: E731
        assert area(large) == pytest.approx(4 * area(small), rel=0.1)

    def test_bbox_crop_erases_absolute_size(self):
        config = PreprocessConfig(crop=CropMethod.BBOX, input_size=100, bbox_margin=0.1)
        small = prepare_image(disc_image(450, 40, (100, 100)), config)
        large = prepare_image(disc_image(450, 80, (300, 250)), config)
        area = lambda image: foreground_mask(image, 15).mean()  # noqa: E731
        assert area(large) == pytest.approx(area(small), rel=0.05)

    def test_empty_image_falls_back_to_the_centre(self):
        black = np.zeros((50, 50, 3), dtype=np.uint8)
        for crop in CropMethod:
            out = prepare_image(black, PreprocessConfig(crop=crop, crop_size=20, input_size=16))
            assert out.shape == (16, 16, 3)


class TestPreprocess:
    def test_is_deterministic_and_shaped_for_the_model(self, real_cell_png):
        config = PreprocessConfig(input_size=96)
        first = preprocess(decode_image(real_cell_png), config)
        second = preprocess(decode_image(real_cell_png), config)
        assert first.shape == (3, 96, 96)
        assert first.dtype == np.float32
        assert first.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(first, second)

    def test_normalisation_uses_the_configured_statistics(self):
        image = np.full((8, 8, 3), 51, dtype=np.uint8)  # 0.2 after scaling
        config = PreprocessConfig(mean=(0.1, 0.2, 0.3), std=(0.1, 0.5, 0.25))
        tensor = normalize_to_tensor(image, config)
        np.testing.assert_allclose(tensor[:, 0, 0], [1.0, 0.0, -0.4], atol=1e-6)

    def test_views_are_for_display_and_the_tensor_is_unchanged(self, real_cell_png):
        rgb = decode_image(real_cell_png)
        config = PreprocessConfig(input_size=64)
        views = preprocess_with_views(rgb, config)
        np.testing.assert_array_equal(views.tensor, preprocess(rgb, config))
        assert views.enhanced_view.shape == rgb.shape
        assert views.cropped_view.shape == (64, 64, 3)
        assert views.cropped_view.min() == 0
        assert views.cropped_view.max() == 255

    def test_rescale_for_display_of_a_flat_image(self):
        assert (rescale_for_display(np.full((3, 3, 3), 5, np.uint8)) == 0).all()

    def test_config_rejects_nonsense(self):
        with pytest.raises(ValidationError):
            PreprocessConfig(std=(0.0, 1.0, 1.0))
        with pytest.raises(ValidationError):
            PreprocessConfig(crop="middle")
        with pytest.raises(ValidationError):
            PreprocessConfig(unknown_field=1)


def test_channel_statistics_match_numpy():
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(4)]
    mean, std = channel_statistics(images)
    pixels = np.concatenate([i.reshape(-1, 3) for i in images]).astype(np.float64) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-6)


layouts = st.sampled_from(["gray", "gray1", "bgr", "bgra", "gray16", "bgr16"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 500),
    width=st.integers(1, 500),
    layout=layouts,
    crop=st.sampled_from(list(CropMethod)),
    contrast=st.sampled_from(list(ContrastMethod)),
    seed=st.integers(0, 2**16),
)
def test_any_size_and_layout_gives_a_finite_model_input(
    height, width, layout, crop, contrast, seed
):
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if layout.endswith("16") else np.uint8
    channels = {"gray": None, "gray1": 1, "bgr": 3, "bgra": 4, "gray16": None, "bgr16": 3}[layout]
    shape = (height, width) if channels is None else (height, width, channels)
    image = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    config = PreprocessConfig(crop=crop, contrast=contrast, crop_size=64, input_size=32)
    rgb = decode_image(encode(image, ".png"))
    assert rgb.shape == (height, width, 3)
    tensor = preprocess(rgb, config)
    assert tensor.shape == (3, 32, 32)
    assert np.isfinite(tensor).all()


# -- the faster recipe gives the model the same input as before ------------------------------

FIXTURE_ROOT = Path(__file__).parents[2] / "fixtures" / "cnmc"
RECIPE_REFERENCE = Path(__file__).parents[2] / "fixtures" / "recipe_reference.npz"
"""What the recipe gave before it was made faster (commit 5b557d6), on the 18 fixture cells and
six synthetic edge cases, for the bundled recipes and four variants; written once by
`python -m bench.recipe_equivalence --ref 5b557d6 --write-fixture-reference`."""


def reference_inputs(reference: np.lib.npyio.NpzFile) -> dict[str, np.ndarray]:
    images = {
        path.stem: decode_image(path.read_bytes()) for path in sorted(FIXTURE_ROOT.rglob("*.png"))
    }
    for key in reference.files:
        if key.startswith("input/"):
            images[key.removeprefix("input/")] = reference[key]
    return images


@pytest.fixture(scope="module")
def recipe_reference():
    with np.load(RECIPE_REFERENCE) as reference:
        configs = {
            str(name): PreprocessConfig.model_validate_json(str(config))
            for name, config in zip(reference["config_names"], reference["configs"], strict=True)
        }
        yield reference, configs, reference_inputs(reference)


def earlier_normalisation(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """normalize_to_tensor as it was: per-pixel float32 arithmetic."""
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    scaled = image.astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(((scaled - mean) / std).transpose(2, 0, 1))


class TestSameModelInputAsBefore:
    def test_the_reference_covers_every_image_and_recipe(self, recipe_reference):
        _, configs, images = recipe_reference
        assert len(images) == 24
        assert len(configs) == 6
        assert {c.crop for c in configs.values()} == set(CropMethod)
        assert {c.contrast for c in configs.values()} == set(ContrastMethod)
        assert {c.standardize_cell_colour for c in configs.values()} == {True, False}

    def test_prepared_images_are_bitwise_equal(self, recipe_reference):
        reference, configs, images = recipe_reference
        for config_name, config in configs.items():
            for name, image in images.items():
                expected = reference[f"prepared/{config_name}/{name}"]
                assert np.array_equal(prepare_image(image, config), expected), (config_name, name)

    def test_tensors_are_bitwise_equal(self, recipe_reference):
        reference, configs, images = recipe_reference
        for config_name, config in configs.items():
            for name, image in images.items():
                expected = earlier_normalisation(
                    reference[f"prepared/{config_name}/{name}"], config
                )
                tensor = preprocess(image, config)
                assert tensor.dtype == np.float32
                assert np.array_equal(tensor, expected), (config_name, name)
                views = preprocess_with_views(image, config)
                assert np.array_equal(views.tensor, expected), (config_name, name)

    def test_the_colour_match_on_any_mask_is_unchanged(self, recipe_reference):
        _, _, images = recipe_reference
        for image in images.values():
            mask = foreground_mask(image, 15)
            assert np.array_equal(
                standardize_cell_colour(image, mask, 15), earlier_colour_match(image, mask, 15)
            )


def earlier_colour_match(rgb: np.ndarray, mask: np.ndarray, threshold: int) -> np.ndarray:
    """standardize_cell_colour as it was, over the whole frame."""
    if not mask.any():
        return rgb
    pixels = rgb[mask].astype(np.float32)
    z_scores = (pixels - pixels.mean(axis=0)) / np.maximum(pixels.std(axis=0), np.float32(1.0))
    matched = rgb.copy()
    target = z_scores * np.full(3, np.float32(32.0)) + np.full(3, np.float32(128.0))
    matched[mask] = np.clip(np.round(target), threshold + 1, 255).astype(np.uint8)
    return matched


def test_a_large_bright_cell_keeps_numpys_float32_statistics():
    """Above 2**24 the float32 sums round: the sequential order must still be numpy's."""
    rng = np.random.default_rng(7)
    image = rng.integers(150, 256, (700, 650, 3), dtype=np.uint8)
    mask = foreground_mask(image, 15)
    assert int(image[mask].sum(axis=0, dtype=np.int64).max()) > 2**24
    assert np.array_equal(
        standardize_cell_colour(image, mask, 15), earlier_colour_match(image, mask, 15)
    )


def earlier_recipe(rgb: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """prepare_image as it was: whole-frame mask, colour match, conversions, then the crop."""
    mask = rgb.max(axis=2) > config.foreground_threshold
    if config.standardize_cell_colour:
        rgb = earlier_colour_match(rgb, mask, config.foreground_threshold)
    enhanced = rgb
    if config.contrast is not ContrastMethod.NONE:
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
        if config.contrast is ContrastMethod.CLAHE:
            grid = (config.clahe_tile_grid, config.clahe_tile_grid)
            clahe = cv2.createCLAHE(clipLimit=config.clahe_clip_limit, tileGridSize=grid)
            lab[:, :, 0] = clahe.apply(lab[:, :, 0])
        else:
            lab[:, :, 0] = cv2.equalizeHist(lab[:, :, 0])
        enhanced = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    rows, cols = np.nonzero(mask)
    height, width = rgb.shape[:2]
    centre, side = (height // 2, width // 2), config.crop_size
    if rows.size and config.crop is CropMethod.CELL:
        centre = (round(rows.mean()), round(cols.mean()))
    elif config.crop is CropMethod.BBOX and not rows.size:
        side = max(height, width)
    elif config.crop is CropMethod.BBOX:
        box_height = int(rows.max() - rows.min() + 1)
        box_width = int(cols.max() - cols.min() + 1)
        side = max(1, round(max(box_height, box_width) * (1.0 + 2.0 * config.bbox_margin)))
        centre = (int(rows.min()) + box_height // 2, int(cols.min()) + box_width // 2)
    window = np.zeros((side, side, 3), np.uint8)
    top, left = centre[0] - side // 2, centre[1] - side // 2
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + side, height), min(left + side, width)
    if src_bottom > src_top and src_right > src_left:
        window[src_top - top : src_bottom - top, src_left - left : src_right - left] = enhanced[
            src_top:src_bottom, src_left:src_right
        ]
    if side == config.input_size:
        return window
    interpolation = cv2.INTER_AREA if side > config.input_size else cv2.INTER_LINEAR
    return cv2.resize(window, (config.input_size, config.input_size), interpolation=interpolation)


@st.composite
def cells_on_black(draw) -> np.ndarray:
    """Blobs of any colour, anywhere (cut off by the border too), on near-black noise."""
    height = draw(st.integers(4, 90))
    width = draw(st.integers(4, 90))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    image = rng.integers(0, draw(st.integers(1, 40)), (height, width, 3), dtype=np.uint8)
    for _ in range(draw(st.integers(0, 3))):
        centre = (int(rng.integers(-10, width + 10)), int(rng.integers(-10, height + 10)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(1, 40)), colour, -1)
    noise = rng.integers(0, draw(st.integers(1, 60)), (height, width, 3), dtype=np.uint8)
    return cv2.add(image, noise)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    image=cells_on_black(),
    crop=st.sampled_from(list(CropMethod)),
    contrast=st.sampled_from(list(ContrastMethod)),
    standardize=st.booleans(),
    crop_size=st.integers(8, 120),
    input_size=st.sampled_from([8, 24, 64]),
    threshold=st.integers(0, 60),
)
def test_any_image_gets_the_same_model_input_as_the_earlier_recipe(
    image, crop, contrast, standardize, crop_size, input_size, threshold
):
    config = PreprocessConfig(
        crop=crop,
        contrast=contrast,
        standardize_cell_colour=standardize,
        crop_size=crop_size,
        input_size=input_size,
        foreground_threshold=threshold,
        clahe_tile_grid=4,
    )
    expected = earlier_recipe(image, config)
    original = image.copy()
    assert np.array_equal(prepare_image(image, config), expected)
    assert np.array_equal(preprocess(image, config), earlier_normalisation(expected, config))
    assert np.array_equal(image, original), "the recipe must not write into its input"
