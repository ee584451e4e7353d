"""The recipe and the quality checks against an earlier commit's code, image by image.

    python -m bench.recipe_equivalence --ref 5b557d6 --data ../shared/data/C-NMC_Leukemia
    python -m bench.recipe_equivalence --ref 5b557d6 --write-fixture-reference
    python -m bench.recipe_equivalence --ref 08426de --data DIR --name recipe_equivalence-vs-08426de

The earlier `app/core/preprocessing.py` and `app/core/quality_checks.py` (`app/preprocessing.py`
and `app/quality_checks.py` before they moved into app/core/; the ref must predate the recipe's
split into app/core/recipe.py, cell_colour.py and image_decoding.py)
are read from git (`git show`) and
loaded beside today's in one process. The first form compares the two trees' decoding of every
file, then gives both recipes the same decoded pixels and reports, for every bundled model's
recipe, the largest difference between the two tensors and whether the warnings are identical;
the second writes the earlier code's answers on the test fixtures (and a few synthetic edge
cases) to `tests/fixtures/recipe_reference.npz`, which CI compares today's code against.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from app.core import quality_checks
from app.core import recipe as preprocessing
from app.core.image_decoding import decode_image
from app.core.manifest import load_manifest
from app.core.model_registry import ModelRegistry
from app.core.recipe import ContrastMethod, CropMethod, PreprocessConfig
from app.settings import bundled_model_store
from bench.common import write_result

ROOT = Path(__file__).parents[1]
FIXTURES = ROOT / "tests/fixtures/cnmc"
REFERENCE_FILE = ROOT / "tests/fixtures/recipe_reference.npz"
MEASUREMENT_FIELDS = ("foreground_fraction", "area", "objects", "touches_border", "sharpness")


def source_at(ref: str, relative: str) -> str:
    """The file at `ref`, at today's path or, for a commit from before the move, at app/<name>."""
    for candidate in (relative, f"app/{Path(relative).name}"):
        shown = subprocess.run(
            ["git", "show", f"{ref}:{candidate}"], cwd=ROOT, capture_output=True, text=True
        )
        if shown.returncode == 0:
            return shown.stdout
    raise FileNotFoundError(f"{relative} at {ref}")


EARLIER_RECIPE_MODULES = ("app.core.preprocessing", "app.preprocessing")


def load_module_at(
    ref: str, relative: str, name: str, folder: Path, *, recipe_module: str | None = None
) -> ModuleType:
    """`relative` as it was at `ref`, imported under `name` beside today's package. Its own
    imports are third-party, except (once the recipe was sped up) the quality checks' import of
    the recipe: with `recipe_module`, that import is of the earlier recipe loaded under that
    name."""
    source = source_at(ref, relative)
    if recipe_module is not None:
        for earlier in EARLIER_RECIPE_MODULES:
            source = source.replace(f"from {earlier} import", f"from {recipe_module} import")
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def fixture_configs() -> dict[str, PreprocessConfig]:
    """The bundled models' recipes plus variants that reach every branch of the recipe."""
    store = bundled_model_store()
    configs = {
        model_id: load_manifest(store / model_id).preprocessing
        for model_id in ModelRegistry.load(store).models
    }
    configs["center-he-64"] = PreprocessConfig(
        contrast=ContrastMethod.HISTOGRAM_EQUALIZATION, crop=CropMethod.CENTER, input_size=64
    )
    configs["bbox-none-std-64"] = PreprocessConfig(
        contrast=ContrastMethod.NONE,
        crop=CropMethod.BBOX,
        standardize_cell_colour=True,
        input_size=64,
    )
    configs["bbox-clahe4-96"] = PreprocessConfig(
        crop=CropMethod.BBOX, bbox_margin=0.3, clahe_tile_grid=4, input_size=96
    )
    configs["cell-std-512"] = PreprocessConfig(
        crop=CropMethod.CELL, crop_size=512, standardize_cell_colour=True, input_size=64
    )
    return configs


def synthetic_images() -> dict[str, np.ndarray]:
    """Edge cases the fixtures lack: nothing, everything, a cut-off cell, two cells, a sliver."""
    rng = np.random.default_rng(13)
    blank = np.zeros((96, 80, 3), np.uint8)
    noisy_black = rng.integers(0, 16, (96, 80, 3), dtype=np.uint8)
    full = rng.integers(20, 255, (64, 64, 3), dtype=np.uint8)
    corner = noisy_black.copy()
    cv2.circle(corner, (2, 3), 30, (180, 90, 200), -1)
    two = noisy_black.copy()
    cv2.circle(two, (20, 30), 12, (150, 60, 170), -1)
    cv2.circle(two, (60, 70), 9, (90, 200, 40), -1)
    two[40:44, 10:70] += rng.integers(0, 60, (4, 60, 3), dtype=np.uint8)
    sliver = np.zeros((30, 200, 3), np.uint8)
    sliver[14:16, 50:150] = (200, 10, 90)
    return {
        "blank": blank,
        "noisy_black": noisy_black,
        "full": full,
        "corner": corner,
        "two": two,
        "sliver": sliver,
    }


def fixture_images() -> dict[str, np.ndarray]:
    paths = sorted(FIXTURES.rglob("*.png"))
    return {path.stem: decode_image(path.read_bytes()) for path in paths}


def measurement_row(measured: object) -> list[float]:
    values = [float(getattr(measured, field)) for field in MEASUREMENT_FIELDS]
    return values + [float(v) for v in measured.stain_rgb]  # type: ignore[attr-defined]


def write_fixture_reference(old_prep: ModuleType, old_checks: ModuleType) -> Path:
    arrays: dict[str, np.ndarray] = {}
    images = fixture_images() | {f"synthetic-{k}": v for k, v in synthetic_images().items()}
    configs = fixture_configs()
    for name, image in images.items():
        if name.startswith("synthetic-"):
            arrays[f"input/{name}"] = image
        for config_name, config in configs.items():
            old_config = old_prep.PreprocessConfig.model_validate(config.model_dump())
            arrays[f"prepared/{config_name}/{name}"] = old_prep.prepare_image(image, old_config)
        arrays[f"measured/{name}"] = np.asarray(measurement_row(old_checks.measure_cell(image, 15)))
        for model_id, reference in quality_references(old_checks).items():
            codes = warning_codes(old_checks, image, 15, reference)
            arrays[f"warnings/{model_id}/{name}"] = np.asarray(codes)
    arrays["configs"] = np.asarray([c.model_dump_json() for c in configs.values()])
    arrays["config_names"] = np.asarray(list(configs))
    np.savez_compressed(REFERENCE_FILE, **arrays)
    return REFERENCE_FILE


def quality_references(checks: ModuleType) -> dict[str, object]:
    """Each bundled model's quality reference, as the given module's own class."""
    store = bundled_model_store()
    return {
        model_id: checks.QualityReference.model_validate(
            load_manifest(store / model_id).quality_reference.model_dump()  # type: ignore[union-attr]
        )
        for model_id in ModelRegistry.load(store).models
    }


def warning_codes(checks: ModuleType, image: np.ndarray, threshold: int, reference: object) -> str:
    measured = checks.measure_cell(image, threshold)
    return ",".join(w.code for w in checks.input_warnings(measured, reference))


def compare_decoding(old_prep: ModuleType, paths: list[Path]) -> dict[str, object]:
    """Each file's bytes decoded by both trees' `decode_image` (the recipe below is then given
    today's pixels, so a decoding change is caught here, not there)."""
    equal = 0
    differing: list[str] = []
    for path in paths:
        data = path.read_bytes()
        if np.array_equal(decode_image(data), old_prep.decode_image(data)):
            equal += 1
        elif len(differing) < 20:
            differing.append(path.name)
    return {"images": len(paths), "bitwise_equal": equal, "images_decoded_otherwise": differing}


def compare_fold(ref: str, old_prep: ModuleType, old_checks: ModuleType, data: Path) -> dict:
    store = bundled_model_store()
    manifests = [load_manifest(store / m) for m in ModelRegistry.load(store).models]
    paths = sorted(data.rglob("*.bmp")) + sorted(data.rglob("*.png"))
    per_model: dict[str, dict[str, object]] = {}
    started = time.perf_counter()
    decoding = compare_decoding(old_prep, paths)
    for manifest in manifests:
        recipe = manifest.preprocessing
        old_recipe = old_prep.PreprocessConfig.model_validate(recipe.model_dump())
        old_reference = (
            old_checks.QualityReference.model_validate(
                manifest.quality_reference.model_dump() if manifest.quality_reference else None
            )
            if manifest.quality_reference
            else None
        )
        largest = 0.0
        bitwise = 0
        same_warnings = 0
        same_measurements = 0
        differing: list[str] = []
        for path in paths:
            image = decode_image(path.read_bytes())
            new_tensor = preprocessing.preprocess(image, recipe)
            old_tensor = old_prep.preprocess(image, old_recipe)
            difference = float(np.abs(new_tensor - old_tensor).max())
            largest = max(largest, difference)
            bitwise += bool(np.array_equal(new_tensor, old_tensor))
            threshold = recipe.foreground_threshold
            new_measured = measurement_row(quality_checks.measure_cell(image, threshold))
            old_measured = measurement_row(old_checks.measure_cell(image, threshold))
            same_measurements += new_measured == old_measured
            new_codes = warning_codes(quality_checks, image, threshold, manifest.quality_reference)
            old_codes = warning_codes(old_checks, image, threshold, old_reference)
            if new_codes == old_codes:
                same_warnings += 1
            elif len(differing) < 20:
                differing.append(path.name)
        per_model[manifest.id] = {
            "images": len(paths),
            "max_abs_tensor_difference": largest,
            "bitwise_equal_tensors": bitwise,
            "identical_measurements": same_measurements,
            "identical_warnings": same_warnings,
            "images_with_different_warnings": differing,
        }
    return {
        "reference_commit": ref,
        "data": str(data),
        "seconds": round(time.perf_counter() - started, 1),
        "decoding": decoding,
        "models": per_model,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ref", required=True, help="the earlier commit, e.g. 5b557d6")
    parser.add_argument("--data", type=Path, default=FIXTURES)
    parser.add_argument("--write-fixture-reference", action="store_true")
    parser.add_argument(
        "--name", default="recipe_equivalence", help="bench/results/NAME.json (keeps earlier runs)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        old_prep = load_module_at(
            args.ref, "app/core/preprocessing.py", "old_preprocessing", Path(folder)
        )
        old_checks = load_module_at(
            args.ref,
            "app/core/quality_checks.py",
            "old_quality_checks",
            Path(folder),
            recipe_module=old_prep.__name__,
        )
        if args.write_fixture_reference:
            print(write_fixture_reference(old_prep, old_checks))
            return
        result = compare_fold(args.ref, old_prep, old_checks, args.data)
    print(write_result(args.name, result).read_text())


if __name__ == "__main__":
    main()
