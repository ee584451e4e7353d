from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from training.fit.models import CellClassifier


class BrightnessBackbone(nn.Module):
    """A map that is the red channel itself at 1/4: evidence exactly where the pixels are
    bright (the cell) or, read with a negative weight, where they are dark (the surround)."""

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(images[:, :1], 4)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=(2, 3))


@pytest.fixture
def brightness_classifier() -> Callable[[float], CellClassifier]:
    """A classifier whose Grad-CAM lies on the cell (weight > 0) or off it (weight < 0)."""

    def build(weight: float) -> CellClassifier:
        head = nn.Linear(1, 1)
        with torch.no_grad():
            head.weight.fill_(weight)
            head.bias.zero_()
        return CellClassifier(BrightnessBackbone(), head)

    return build


@pytest.fixture
def external_root(tmp_path, cnmc_root):
    """Laid out like ../shared/data/C-NMC_external: a training-fold part (PNG in fold_0/2) and
    a preliminary-test part (numbered PNGs; a labels CSV that lists more rows than are present,
    naming them `.bmp`). Subjects are renamed so that none is a fixture's own; one image sits
    in both parts, so de-duplication has something to remove."""
    import shutil

    root = tmp_path / "external"
    sources = sorted((cnmc_root / "training_data/fold_1").glob("*/*.png"))
    renamed = {"16": "60", "23": "61", "30": "62", "H10": "H70", "H14": "H71", "H22": "H72"}
    rows = ["Patient_ID,new_names,labels"]
    number = 0
    for position, source in enumerate(sources):
        subject = source.stem.split("_")[1]
        new_subject = renamed[subject]
        name = source.name.replace(f"UID_{subject}_", f"UID_{new_subject}_")
        label = 1 if source.stem.endswith("_all") else 0
        if subject in ("16", "H10"):  # the preliminary-test part
            number += 1
            target = root / "C-NMC_test_prelim_phase_data" / f"{number}.png"
            rows.append(f"{Path(name).with_suffix('.bmp').name},{number}.bmp,{label}")
        else:
            fold = "fold_0" if position % 2 else "fold_2"
            target = root / "training_data" / fold / source.parent.name / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    duplicate = sorted((root / "training_data").rglob("*.png"))[0]
    number += 1
    shutil.copy(duplicate, root / "C-NMC_test_prelim_phase_data" / f"{number}.png")
    label = 1 if duplicate.stem.endswith("_all") else 0
    rows.append(f"{duplicate.with_suffix('.bmp').name},{number}.bmp,{label}")
    rows += [f"UID_99_1_{n}_all.bmp,{n}.bmp,1" for n in range(number + 1, number + 4)]
    (root / "C-NMC_test_prelim_phase_data_labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def external_people_root(external_root):
    """`external_root` whose cells are mirrored: new pixels, so that beside the fixture's
    fold 1 they are other people's cells rather than duplicates (its own duplicate stays)."""
    import cv2

    for path in external_root.rglob("*.png"):
        cv2.imwrite(str(path), cv2.flip(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), 1))
    return external_root


@pytest.fixture
def op_types_after_fusion(tmp_path) -> Callable[[Path], list[str]]:
    """The node types of a graph as onnxruntime runs it on the CPU after its fusions (the
    layout-independent level, so the result does not depend on this machine's vector units)."""
    import onnx
    import onnxruntime as ort

    def op_types(graph: Path) -> list[str]:
        optimised = tmp_path / f"optimised-{graph.name}"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(optimised)
        ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        return [node.op_type for node in onnx.load(str(optimised)).graph.node]

    return op_types
