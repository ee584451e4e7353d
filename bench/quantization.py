"""An int8 variant of a model: static (QDQ, calibrated on fold-1 images) or dynamic
quantisation, its speed against float32 in the same run, and the change in its answers.

    python -m bench.quantization --data ../shared/data/C-NMC_Leukemia [--model model_store/<id>]
    python -m bench.quantization --data ../shared/data/C-NMC_Leukemia --method dynamic
    python -m bench.quantization --data ... --install DIR  # DIR: a copy of the model folder

Static: `quant_pre_process`, then `quantize_static` in the QDQ format (int8 weights per
channel, uint8 activations) with min-max ranges from every `--calibration-every`-th fold-1
image. Both graphs then score the same images with the served calibration applied, so any
change in ROC AUC or in labels is the quantisation's. Timings interleave the two graphs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from sklearn.metrics import roc_auc_score

from app.core.classifier import INT8_CARD_FILENAME, Int8Card, OnnxCellClassifier
from app.core.manifest import file_sha256
from app.core.model_registry import ModelRegistry
from app.core.recipe import preprocess
from app.settings import bundled_model_store
from bench.common import check_install_target, interleaved_p50_ms, ort_session, write_result
from training.data.dataset_index import list_images, read_image

FIXTURES = Path(__file__).parents[1] / "tests/fixtures/cnmc"
SHIP_SPEEDUP = 1.3
SHIP_AUC_CHANGE = 0.002


class FoldImages(CalibrationDataReader):
    """Preprocessed fold-1 tensors, one per call, as onnxruntime's calibrator reads them."""

    def __init__(self, input_name: str, tensors: np.ndarray) -> None:
        self.input_name = input_name
        self.items = iter(tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self.items, None)
        return None if tensor is None else {self.input_name: tensor[None]}


def quantize(method: str, source: Path, target: Path, calibration: np.ndarray, name: str) -> None:
    if method == "dynamic":
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        return
    prepared = target.with_name("prepared.onnx")
    quant_pre_process(str(source), str(prepared))
    quantize_static(
        str(prepared),
        str(target),
        FoldImages(name, calibration),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
    )


INT8_GRAPH_FILENAME = "model.int8.onnx"


def install(model_dir: Path, graph: bytes, results: dict) -> Path:
    """Put the int8 graph beside the model with the evidence it ships on (`int8.json`)."""
    if not results["meets_ship_rule"]:
        raise SystemExit(f"not installed: {results['ship_rule']} is not met")
    target = model_dir / INT8_GRAPH_FILENAME
    target.write_bytes(graph)
    speed = results["speed_p50_ms"]["threads_1_batch_1"]
    card = Int8Card(
        onnx_file=target.name,
        onnx_sha256=file_sha256(target),
        method="static QDQ (onnxruntime quantize_static): int8 weights per channel, uint8 "
        "activations, min-max calibration",
        calibration=f"{results['calibration_images']} fold-1 images (every "
        f"{results['calibration_every']}th of {results['images']})",
        speedup_batch1=speed["int8_speedup"],
        roc_auc_float32=results["roc_auc"]["float32"],
        roc_auc_int8=results["roc_auc"]["int8"],
        label_agreement=results["label_agreement"],
        max_abs_probability_change=results["max_abs_probability_change"],
        measured_on=f"{results['images']} fold-1 images, in-sample; python -m bench.quantization",
    )
    path = model_dir / INT8_CARD_FILENAME
    path.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--data", type=Path, default=FIXTURES)
    parser.add_argument("--method", choices=("static", "dynamic"), default="static")
    parser.add_argument("--calibration-every", type=int, default=14, help="every k-th image")
    parser.add_argument("--limit", type=int, default=4000, help="at most this many images")
    parser.add_argument("--calls", type=int, default=60, help="timed calls per graph and size")
    parser.add_argument("--keep", type=Path, help="also write the int8 graph here")
    parser.add_argument("--name", help="the result file's name (default: by method and model)")
    parser.add_argument(
        "--install",
        type=Path,
        metavar="MODEL_FOLDER",
        help="when it meets the ship rule, put the graph and int8.json in MODEL_FOLDER: a copy "
        "of the model's folder in a store of your own (never the bundled model_store/, which "
        "changes only by a reviewed commit)",
    )
    args = parser.parse_args()
    if args.install is not None:
        check_install_target(args.install)
    model_dir = (
        args.model or bundled_model_store() / ModelRegistry.load(bundled_model_store()).default_id
    )
    classifier = OnnxCellClassifier(model_dir, intra_op_threads=1)
    manifest = classifier.manifest
    images = list_images(args.data)[: args.limit]
    labels = np.asarray([image.label for image in images])
    tensors = np.stack([preprocess(read_image(i.path), manifest.preprocessing) for i in images])
    calibration = tensors[:: args.calibration_every]
    float_path = model_dir / manifest.onnx_file

    with tempfile.TemporaryDirectory() as folder:
        int8_path = Path(folder) / "model.int8.onnx"
        quantize(args.method, float_path, int8_path, calibration, manifest.input.name)
        if args.keep:
            args.keep.write_bytes(int8_path.read_bytes())
        int8_graph = int8_path.read_bytes()
        sizes = {"float32": float_path.stat().st_size, "int8": int8_path.stat().st_size}
        speed: dict[str, object] = {}
        for threads in (1, 2):
            runners = {
                "float32": ort_session(float_path, threads),
                "int8": ort_session(int8_path, threads),
            }
            for batch in (1, 16):
                feed = {manifest.input.name: tensors[:batch]}
                p50 = interleaved_p50_ms(runners, feed, args.calls)
                speed[f"threads_{threads}_batch_{batch}"] = p50 | {
                    "int8_speedup": round(p50["float32"] / p50["int8"], 2)
                }
        probabilities = {}
        for name, path in (("float32", float_path), ("int8", int8_path)):
            classifier.session = ort_session(path, 2)
            probabilities[name] = np.concatenate(
                [
                    classifier.predict(tensors[start : start + 64]).probabilities
                    for start in range(0, len(tensors), 64)
                ]
            )

    threshold = manifest.threshold.value
    agreement = float(
        ((probabilities["float32"] >= threshold) == (probabilities["int8"] >= threshold)).mean()
    )
    both_classes = len(np.unique(labels)) == 2
    auc = {
        name: round(float(roc_auc_score(labels, values)), 5) if both_classes else None
        for name, values in probabilities.items()
    }
    server_speedup = speed["threads_1_batch_1"]["int8_speedup"]  # type: ignore[index]
    auc_change = abs(auc["float32"] - auc["int8"]) if both_classes else None  # type: ignore[operator]
    results = {
        "model": manifest.id,
        "method": args.method,
        "images": len(images),
        "calibration_images": len(calibration),
        "calibration_every": args.calibration_every,
        "data": str(args.data),
        "file_bytes": sizes,
        "speed_p50_ms": speed,
        "roc_auc": auc,
        "roc_auc_change": None if auc_change is None else round(auc_change, 5),
        "max_abs_probability_change": round(
            float(np.abs(probabilities["float32"] - probabilities["int8"]).max()), 5
        ),
        "label_agreement": round(agreement, 5),
        "ship_rule": f"speed-up >= {SHIP_SPEEDUP} at batch 1, 1 thread, and AUC change <= "
        f"{SHIP_AUC_CHANGE}",
        "meets_ship_rule": bool(
            server_speedup >= SHIP_SPEEDUP
            and auc_change is not None
            and auc_change <= SHIP_AUC_CHANGE
        ),
    }
    path = write_result(args.name or f"quantization-{args.method}-{manifest.id}", results)
    print(path.read_text())
    if args.install is not None:
        print(install(args.install, int8_graph, results))


if __name__ == "__main__":
    main()
