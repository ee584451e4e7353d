"""A model's graphs with every GELU in the order onnxruntime fuses (`training.gelu_fusion`),
against the graphs as they were: speed in the same run, and how far the answers move.

    python -m bench.gelu_fusion --data ../shared/data/C-NMC_Leukemia \
        --external ../shared/data/C-NMC_external
    python -m bench.gelu_fusion ... --baseline REF   # "before" = the graphs committed at REF

Without `--baseline` the "before" graphs are the model folder's own and the "after" graphs
their rewrite; `--install` then puts the rewrite in the folder (same weights, same card
version, a changelog entry, new checksums in the card and store.json). Op by op (no
onnxruntime optimisation) both graphs must give the same bits; with fusion, onnxruntime runs
its own GELU kernel, so the benchmark reports the largest change in logit, served probability
and Grad-CAM map, and the labels that flip, on every image given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from app.core.classifier import OnnxCellClassifier
from app.core.manifest import (
    GRADCAM_OUTPUT,
    changelog_entry,
    file_sha256,
    load_manifest,
    write_manifest,
)
from app.core.model_registry import ModelRegistry, record_model
from app.settings import bundled_model_store
from bench.common import check_install_target, interleaved_p50_ms, ort_session, write_result
from bench.same_run import ROOT, git
from training.data.dataset_index import list_images, read_image
from training.data.image_batches import batched, preprocess_batch
from training.evaluation.external_evaluation import index_external
from training.release.gelu_fusion import reorder_gelu_for_fusion

EXPLAINED_IMAGES = 32


def graphs_before(model_dir: Path, files: list[str], baseline: str | None) -> dict[str, bytes]:
    if baseline is None:
        return {name: (model_dir / name).read_bytes() for name in files}
    folder = model_dir.resolve().relative_to(ROOT)
    git("rev-parse", "--verify", f"{baseline}^{{commit}}")
    return {
        name: subprocess.run(
            ["git", "show", f"{baseline}:{folder / name}"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
        for name in files
    }


def rewritten(graph: bytes) -> tuple[bytes, int]:
    model = onnx.load_from_string(graph)
    count = reorder_gelu_for_fusion(model)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(), count


def unoptimised_outputs(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    unoptimised = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort_session(path, 0, level=unoptimised).run(None, feed)


def kernels(graph: Path, folder: Path, feed: dict[str, np.ndarray]) -> dict[str, object]:
    """The node types onnxruntime runs after all its optimisations, and each type's share of
    kernel time in its own profile (one thread, 20 calls on `feed`)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(folder / f"optimised-{graph.name}")
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / f"profile-{graph.stem}")
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    for _ in range(20):
        session.run(None, feed)
    profile = json.loads(Path(session.end_profiling()).read_text())
    time_by_type: Counter[str] = Counter()
    for event in profile:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            time_by_type[event["args"]["op_name"]] += event["dur"]
    total = sum(time_by_type.values())
    nodes = Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)
    return {
        "nodes": dict(nodes.most_common()),
        "kernel_time_share": {
            op: round(duration / total, 3) for op, duration in time_by_type.most_common()
        },
    }


def tensors_of(paths: list[Path], classifier: OnnxCellClassifier) -> np.ndarray:
    return preprocess_batch([read_image(path) for path in paths], classifier.manifest.preprocessing)


def served(
    classifier: OnnxCellClassifier, graph: Path, tensors: np.ndarray
) -> dict[str, np.ndarray]:
    """Logits and served (calibrated) probabilities of one graph, batches of 64."""
    classifier.session = ort_session(graph, 2)
    outputs = [classifier.predict(batch) for batch in batched(tensors, 64)]
    return {
        "logit": np.concatenate([output.logits for output in outputs]),
        "probability": np.concatenate([output.probabilities for output in outputs]),
    }


def answer_changes(
    classifier: OnnxCellClassifier, before: Path, after: Path, tensors: np.ndarray
) -> dict[str, object]:
    old, new = served(classifier, before, tensors), served(classifier, after, tensors)
    threshold = classifier.manifest.threshold.value
    flips = int(((old["probability"] >= threshold) != (new["probability"] >= threshold)).sum())
    return {
        "images": len(tensors),
        "max_abs_logit_change": float(np.abs(old["logit"] - new["logit"]).max()),
        "max_abs_served_probability_change": float(
            np.abs(old["probability"] - new["probability"]).max()
        ),
        "labels_changed": flips,
    }


def install(model_dir: Path, graphs: dict[str, bytes], fold_1: dict[str, object]) -> None:
    """The rewritten graphs into the model folder, their checksums into its card and store."""
    manifest = load_manifest(model_dir)
    for name, graph in graphs.items():
        (model_dir / name).write_bytes(graph)
    changes = (
        "Same weights, recipe, threshold and calibration; both graphs rewritten so that "
        "onnxruntime fuses every GELU (python -m bench.gelu_fusion --install): op by op the "
        "graphs give the same bits as before; fused, the largest change measured was "
        f"{fold_1['max_abs_served_probability_change']:.1e} in a served probability over "
        f"{fold_1['images']} fold-1 images, {fold_1['labels_changed']} labels changed."
    )
    updated = manifest.model_copy(
        update={
            "onnx_sha256": file_sha256(model_dir / manifest.onnx_file),
            "explain_onnx_sha256": (
                file_sha256(model_dir / manifest.explain_onnx_file)
                if manifest.explain_onnx_file
                else None
            ),
            "changelog": [*manifest.changelog, changelog_entry(manifest.version, changes)],
        }
    )
    write_manifest(updated, model_dir)
    record_model(model_dir.parent, model_dir)
    load_manifest(model_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="a model folder (default: the bundled default)")
    parser.add_argument("--data", type=Path, required=True, help="C-NMC images (fold 1)")
    parser.add_argument("--external", type=Path, help="also compare answers on these cells")
    parser.add_argument("--baseline", help="take the 'before' graphs from this git ref")
    parser.add_argument("--calls", type=int, default=40, help="timed calls per graph and size")
    parser.add_argument(
        "--install", action="store_true", help="write the rewrite into --model (a copy)"
    )
    parser.add_argument("--name", help="the result file's name (default: by model)")
    args = parser.parse_args()
    if args.install and args.baseline:
        parser.error("--install rewrites the model folder's own graphs: leave out --baseline")
    if args.install:
        if args.model is None:
            parser.error(
                "--install needs --model: a copy of the model folder, outside model_store/"
            )
        check_install_target(args.model)
    store = bundled_model_store()
    model_dir = args.model or store / ModelRegistry.load(store).default_id
    classifier = OnnxCellClassifier(model_dir, intra_op_threads=1)
    manifest = classifier.manifest
    files = [manifest.onnx_file] + (
        [manifest.explain_onnx_file] if manifest.explain_onnx_file else []
    )
    before = graphs_before(model_dir, files, args.baseline)
    after: dict[str, bytes] = {}
    rewrites: dict[str, int] = {}
    for name, graph in before.items():
        after[name], rewrites[name] = rewritten(graph)
    fold_images = [image.path for image in list_images(args.data)]
    fold_tensors = tensors_of(fold_images, classifier)
    input_name = manifest.input.name
    results: dict[str, object] = {
        "model": manifest.id,
        "baseline": args.baseline or "the model folder's graphs",
        "gelus_rewritten": rewrites,
        "timed_calls": args.calls,
    }
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for tree, graphs in (("before", before), ("after", after)):
            for name, graph in graphs.items():
                paths[tree, name] = Path(folder) / f"{tree}-{name}"
                paths[tree, name].write_bytes(graph)
        feed = {input_name: fold_tensors[:64]}
        identical = {
            name: all(
                np.array_equal(old, new)
                for old, new in zip(
                    unoptimised_outputs(paths["before", name], feed),
                    unoptimised_outputs(paths["after", name], feed),
                    strict=True,
                )
            )
            for name in files
        }
        results["op_by_op_identical"] = identical
        speed: dict[str, object] = {}
        for threads in (1, 2):
            runners = {
                tree: ort_session(paths[tree, manifest.onnx_file], threads)
                for tree in ("before", "after")
            }
            for batch in (1, 16):
                p50 = interleaved_p50_ms(runners, {input_name: fold_tensors[:batch]}, args.calls)
                speed[f"threads_{threads}_batch_{batch}"] = p50 | {
                    "speedup": round(p50["before"] / p50["after"], 3)
                }
        results["speed_p50_ms"] = speed
        batch_16 = {input_name: fold_tensors[:16]}
        results["as_onnxruntime_runs_it_batch_16"] = {
            tree: kernels(paths[tree, manifest.onnx_file], Path(folder), batch_16)
            for tree in ("before", "after")
        }
        graph = manifest.onnx_file
        fold_1 = answer_changes(
            classifier, paths["before", graph], paths["after", graph], fold_tensors
        )
        results["fold_1"] = fold_1
        if args.external:
            external = [image.path for image in index_external(args.external).images]
            results["external"] = answer_changes(
                classifier,
                paths["before", graph],
                paths["after", graph],
                tensors_of(external, classifier),
            )
        if manifest.explain_onnx_file:
            explain = manifest.explain_onnx_file
            explained = {input_name: fold_tensors[:: max(1, len(fold_tensors) // EXPLAINED_IMAGES)]}
            maps = [
                ort_session(paths[tree, explain], 2).run([GRADCAM_OUTPUT], explained)[0]
                for tree in ("before", "after")
            ]
            scale = np.abs(maps[0]).max(axis=(1, 2), keepdims=True) + 1e-12
            results["explain"] = {
                "images": len(maps[0]),
                "max_gradcam_change_relative_to_map_peak": float(
                    (np.abs(maps[0] - maps[1]) / scale).max()
                ),
                "speed_p50_ms_threads_1_batch_1": interleaved_p50_ms(
                    {tree: ort_session(paths[tree, explain], 1) for tree in ("before", "after")},
                    {input_name: fold_tensors[:1]},
                    max(5, args.calls // 4),
                ),
            }
    path = write_result(args.name or f"gelu_fusion-{manifest.id}", results)
    print(path.read_text())
    if args.install:
        if not sum(rewrites.values()):
            raise SystemExit("nothing to install: the graphs are already in the fused order")
        if not all(identical.values()):
            raise SystemExit("not installed: op by op the rewrite changed an output")
        install(model_dir, after, fold_1)
        print(f"installed in {model_dir}")


if __name__ == "__main__":
    main()
