"""Stage-by-stage cost from uploaded bytes to answer, for every bundled model, today's code
against an earlier commit's in the same run.

    python -m bench.pipeline [--data ../shared/data/C-NMC_Leukemia] [--images 40]
    python -m bench.pipeline --baseline 5b557d6 --repeats 3

Each tree's code is measured by `bench/pipeline_stages.py` in its own process (the earlier
commit from a temporary git worktree), the two alternating `--repeats` times so that a change
in the machine's load hits both alike; each stage's figure is the median over the repeats, and
every speed-up is the ratio of two such medians from this one run. Results, with the machine
description, go to `bench/results/pipeline.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from bench.common import write_result
from bench.same_run import ROOT, checkout, describe, tree_environment

FIXTURES = ROOT / "tests/fixtures/cnmc"
STAGES_SCRIPT = Path(__file__).with_name("pipeline_stages.py")


def sample_images(data: Path, count: int) -> list[Path]:
    """`count` images spread evenly over the sorted list (both classes, many subjects)."""
    paths = sorted(data.rglob("*.bmp")) + sorted(data.rglob("*.png"))
    if not paths:
        raise SystemExit(f"no images under {data}")
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def measure(tree: Path, images: list[Path], rounds: int) -> dict:
    completed = subprocess.run(
        [sys.executable, str(STAGES_SCRIPT), "--rounds", str(rounds), "--images"]
        + [str(p) for p in images],
        cwd=tree,
        # One BLAS thread: the GEMM floor is then per core, as the server's inference runs.
        env=tree_environment(tree, {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout)


def merge(runs: list[dict]) -> dict:
    """Median over repeated runs of every number (the structure of each run is the same)."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: merge([run[key] for run in runs if key in run]) for key in first}
    if isinstance(first, int | float) and not isinstance(first, bool):
        return round(statistics.median(runs), 4)
    return first


def ratios(baseline: dict, current: dict) -> dict[str, object]:
    """baseline / current per stage: above 1 means today's code is faster."""
    out: dict[str, object] = {}
    for model_id, entry in current["models"].items():
        old = baseline["models"].get(model_id)
        if old is None:
            continue
        out[model_id] = {
            stage: round(old["stages"][stage]["ms"] / values["ms"], 2)
            for stage, values in entry["stages"].items()
            if stage in old["stages"] and values["ms"] > 0
        }
    out["decode"] = {
        name: round(baseline["decode"][name]["ms"] / values["ms"], 2)
        for name, values in current["decode"].items()
    }
    return out


def model_gflop(model_dir: Path) -> float:
    """Multiply-adds x 2 of one image through the graph (Conv, Gemm and MatMul nodes), from
    onnx shape inference at batch 1: the arithmetic floor of inference."""
    import onnx
    from onnx import shape_inference

    from app.core.manifest import load_manifest

    manifest = load_manifest(model_dir, verify_checksum=False)
    model = onnx.load(str(model_dir / manifest.onnx_file))
    for dimension in model.graph.input[0].type.tensor_type.shape.dim:
        if not dimension.dim_value:
            dimension.dim_value = 1
    inferred = shape_inference.infer_shapes(model)
    shapes = {
        value.name: [d.dim_value for d in value.type.tensor_type.shape.dim]
        for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    shapes |= {init.name: list(init.dims) for init in model.graph.initializer}
    total = 0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            weight = shapes[node.input[1]]
            total += 2 * int(np.prod(out)) * int(np.prod(weight[1:]))
        elif node.op_type in {"Gemm", "MatMul"}:
            left, right = shapes[node.input[0]], shapes[node.input[1]]
            total += (
                2
                * int(np.prod(left))
                * int(
                    right[-1]
                    if node.op_type == "MatMul"
                    else (
                        right[0]
                        if any(a.name == "transB" and a.i for a in node.attribute)
                        else right[-1]
                    )
                )
            )
    return total / 1e9


def budget(result: dict) -> dict[str, object]:
    """The issue's target: recipe plus checks against the model's own inference, per image."""
    out: dict[str, object] = {}
    for model_id, entry in result["models"].items():
        stages = entry["stages"]
        inference = stages["inference_batch1"]["ms"]
        timings = entry["timings_ms_median"]
        out[model_id] = {
            "recipe_plus_checks_ms": round(
                stages["recipe_preprocess"]["ms"] + stages["checks_measure_cell"]["ms"], 4
            ),
            "served_recipe_plus_checks_ms": stages["served_recipe_plus_checks_own_timer"]["ms"],
            "inference_batch1_ms": inference,
            "served_over_inference": round(
                stages["served_recipe_plus_checks_own_timer"]["ms"] / inference, 2
            ),
            "timings_ms_preprocess_over_inference": round(
                timings["preprocess"] / timings["inference"], 2
            ),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=FIXTURES)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5, help="passes per stage per run")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per tree")
    parser.add_argument("--baseline", help="an earlier commit to measure in the same run")
    parser.add_argument("--name", default="pipeline", help="result file name")
    args = parser.parse_args()
    images = sample_images(args.data, args.images)
    with ExitStack() as stack:
        trees = {"current": ROOT}
        if args.baseline:
            trees["baseline"] = stack.enter_context(checkout(args.baseline))
        runs: dict[str, list[dict]] = {name: [] for name in trees}
        for repeat in range(args.repeats):
            order = list(trees) if repeat % 2 == 0 else list(reversed(trees))
            for name in order:
                print(f"repeat {repeat + 1}/{args.repeats}: {name}", file=sys.stderr)
                runs[name].append(measure(trees[name], images, args.rounds))
        results: dict[str, object] = {
            "data": str(args.data),
            "images": [p.name for p in images],
            "rounds": args.rounds,
            "repeats": args.repeats,
            "trees": {name: describe(tree) for name, tree in trees.items()},
        }
        merged = {name: merge(values) for name, values in runs.items()}
    results |= {name: merged[name] for name in merged}
    store = ROOT / "model_store"
    results["model_gflop_per_image"] = {
        path.parent.name: round(model_gflop(path.parent), 4)
        for path in sorted(store.glob("*/manifest.json"))
    }
    results["budget"] = {name: budget(value) for name, value in merged.items()}
    if "baseline" in merged:
        results["speedup_baseline_over_current"] = ratios(merged["baseline"], merged["current"])
    path = write_result(args.name, results)
    print(path.read_text())


if __name__ == "__main__":
    main()
