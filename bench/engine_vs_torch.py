"""onnxruntime against PyTorch eager for the same network and inputs, and the fraction of this
machine's measured float32 matrix-multiply rate that each reaches.

    python -m bench.engine_vs_torch [--model model_store/<id>] [--threads 2]

The network is the bundled model's architecture and input size; its weights do not change
its speed, so a fresh timm instance is exported here and both engines run that same graph.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode

from app.core.manifest import load_manifest
from app.core.model_registry import ModelRegistry
from app.settings import bundled_model_store
from bench.common import summary_ms, time_calls, write_result
from training.fit.models import create_classifier
from training.release.onnx_export import export_onnx


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 GEMM rate through torch (MKL/OpenBLAS), the physical yardstick."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = min(time_calls(lambda: a @ b, repeats))
    return 2 * size**3 / seconds / 1e9


def forward_flops(model: torch.nn.Module, size: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="model directory (default: the store's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    model_dir = (
        args.model or bundled_model_store() / ModelRegistry.load(bundled_model_store()).default_id
    )
    manifest = load_manifest(model_dir)
    size = manifest.input.size

    torch.set_num_threads(args.threads)
    model = create_classifier(manifest.architecture, manifest.head).eval()
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = Path(folder) / "model.onnx"
        export_onnx(model, onnx_path, size)
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    results: dict[str, object] = {
        "model": manifest.id,
        "architecture": manifest.architecture,
        "input_size": size,
        "threads": args.threads,
    }
    flops = forward_flops(model, size)
    peak = matmul_gflops(args.threads)
    results["flops_per_image"] = flops
    results["matmul_gflops"] = round(peak, 2)
    rng = np.random.default_rng(0)
    for batch in (1, 16):
        inputs = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        tensor = torch.from_numpy(inputs)
        with torch.no_grad():
            torch_times = time_calls(lambda t=tensor: model(t), args.repeats)
        ort_times = time_calls(
            lambda x=inputs: session.run(["probability_all"], {"image": x}), args.repeats
        )
        torch_ms, ort_ms = summary_ms(torch_times), summary_ms(ort_times)
        entry = {
            "torch_eager": torch_ms,
            "onnxruntime": ort_ms,
            "speedup_p50": round(torch_ms["p50_ms"] / ort_ms["p50_ms"], 2),
        }
        for engine, timing in (("torch_eager", torch_ms), ("onnxruntime", ort_ms)):
            images_per_second = batch / (timing["p50_ms"] / 1000)
            entry[f"{engine}_images_per_second"] = round(images_per_second, 1)
            entry[f"{engine}_fraction_of_matmul_peak"] = round(
                flops * images_per_second / (peak * 1e9), 4
            )
        results[f"batch_{batch}"] = entry
    path = write_result("engine_vs_torch", results)
    print(path.read_text())


if __name__ == "__main__":
    main()
