"""An int8 (dynamic quantisation) variant of a model: speed ratio and metric change.

    python -m bench.quantization [--model model_store/<id>] [--data ../shared/data/C-NMC_Leukemia]

Weights of MatMul/Gemm nodes become int8 (onnxruntime.quantization.quantize_dynamic); the
float and int8 graphs then score the same images, so any metric change is the quantisation's.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic
from sklearn.metrics import roc_auc_score

from app.manifest import load_manifest
from app.model_registry import ModelRegistry
from app.preprocessing import preprocess
from app.settings import bundled_model_store
from bench.common import summary_ms, time_calls, write_result
from training.dataset_index import list_images, read_image

FIXTURES = Path(__file__).parents[1] / "tests/fixtures/cnmc"


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def probabilities(runner: ort.InferenceSession, batches: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([runner.run(["probability_all"], {"image": b})[0] for b in batches])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--data", type=Path, default=FIXTURES)
    parser.add_argument("--limit", type=int, default=4000, help="at most this many images")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model_dir = (
        args.model or bundled_model_store() / ModelRegistry.load(bundled_model_store()).default_id
    )
    manifest = load_manifest(model_dir)
    images = list_images(args.data)[: args.limit]
    labels = np.asarray([image.label for image in images])
    tensors = np.stack([preprocess(read_image(i.path), manifest.preprocessing) for i in images])
    batches = [tensors[start : start + 32] for start in range(0, len(tensors), 32)]

    with tempfile.TemporaryDirectory() as folder:
        quantized_path = Path(folder) / "model.int8.onnx"
        quantize_dynamic(
            str(model_dir / manifest.onnx_file), str(quantized_path), weight_type=QuantType.QInt8
        )
        runners = {
            "float32": session(model_dir / manifest.onnx_file, args.threads),
            "int8": session(quantized_path, args.threads),
        }
        sizes = {
            "float32": (model_dir / manifest.onnx_file).stat().st_size,
            "int8": quantized_path.stat().st_size,
        }
        outputs = {name: probabilities(runner, batches) for name, runner in runners.items()}
        speed: dict[str, object] = {}
        for batch in (1, 16):
            sample = tensors[:batch]
            timings = {
                name: summary_ms(
                    time_calls(
                        lambda r=runner, x=sample: r.run(["probability_all"], {"image": x}), 40
                    )
                )
                for name, runner in runners.items()
            }
            speed[f"batch_{batch}"] = timings | {
                "int8_speedup_p50": round(
                    timings["float32"]["p50_ms"] / timings["int8"]["p50_ms"], 2
                )
            }

    threshold = manifest.threshold.value
    float_labels = outputs["float32"] >= threshold
    int8_labels = outputs["int8"] >= threshold
    both_classes = len(np.unique(labels)) == 2
    results = {
        "model": manifest.id,
        "images": len(images),
        "data": str(args.data),
        "file_bytes": sizes,
        "speed": speed,
        "max_abs_probability_change": round(
            float(np.abs(outputs["float32"] - outputs["int8"]).max()), 5
        ),
        "label_agreement": round(float((float_labels == int8_labels).mean()), 5),
        "roc_auc": {
            name: round(float(roc_auc_score(labels, values)), 5) if both_classes else None
            for name, values in outputs.items()
        },
    }
    path = write_result("quantization", results)
    print(path.read_text())


if __name__ == "__main__":
    main()
