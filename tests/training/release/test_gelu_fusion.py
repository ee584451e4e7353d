import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from app.core.manifest import load_manifest
from app.core.model_registry import StoreIndex
from app.settings import bundled_model_store
from training.release.gelu_fusion import reorder_gelu_for_fusion


def session(graph: onnx.ModelProto, level: ort.GraphOptimizationLevel) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    return ort.InferenceSession(
        graph.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def outputs(graph: onnx.ModelProto, x: np.ndarray, level: ort.GraphOptimizationLevel):
    return session(graph, level).run(None, {graph.graph.input[0].name: x})


@pytest.fixture(scope="module")
def torch_gelu_graph(tmp_path_factory) -> onnx.ModelProto:
    """Two exact GELUs as torch's exporter writes them, between two linear layers."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 16), nn.GELU())
    path = tmp_path_factory.mktemp("gelu") / "gelu.onnx"
    torch.onnx.export(
        network.eval(),
        (torch.zeros(2, 8),),
        str(path),
        input_names=["x"],
        opset_version=18,
        dynamic_shapes={"input": {0: torch.export.Dim("batch")}},
        dynamo=True,
        verbose=False,
    )
    return onnx.load(str(path))


def inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32) * 4
    x[:4] = [[0.0] * 8, [-0.0] * 8, [1e-30] * 8, [-12.0] * 8]
    return x


def hand_written_gelu(
    *, divisor: float = math.sqrt(2), half: float = 0.5, leak: str | None = None
) -> onnx.ModelProto:
    """x * (half * (1 + erf(x / divisor))) as torch writes it; `leak` also makes one of the
    intermediate values a graph output ("...:output") or feeds it to a second node ("...:node")."""
    constants = [
        numpy_helper.from_array(np.array(value, np.float32), name)
        for name, value in (("divisor", divisor), ("one", 1.0), ("half", half))
    ]
    nodes = [
        helper.make_node("Div", ["x", "divisor"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["sum"]),
        helper.make_node("Mul", ["half", "sum"], ["halved"]),
        helper.make_node("Mul", ["x", "halved"], ["y"]),
    ]
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 8])  # noqa: E731
    outputs = [value("y")]
    if leak is not None:
        leaked, how = leak.split(":")
        if how == "output":
            outputs.append(value(leaked))
        else:
            nodes.append(helper.make_node("Neg", [leaked], ["also"]))
            outputs.append(value("also"))
    graph = helper.make_graph(nodes, "gelu", [value("x")], outputs, constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def edge_values() -> np.ndarray:
    """Zeros, subnormals, the smallest normals, where erf saturates, infinities and NaN."""
    tiny = np.finfo(np.float32).tiny
    special = [0.0, -0.0, 1e-45, -1e-45, tiny, -tiny, 2 * tiny, 3e-38, 1e-30, -1e-30]
    special += [5.0, -5.0, 6.0, -6.0, 12.0, -12.0, 1e30, -1e30, np.inf, -np.inf, np.nan]
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [np.array(special, np.float32), rng.standard_normal(6 * 8 * 8 - len(special)) * 4]
    )
    return values.astype(np.float32).reshape(-1, 8)


def test_every_gelu_torch_exports_is_rewritten_once(torch_gelu_graph):
    graph = onnx.ModelProto.FromString(torch_gelu_graph.SerializeToString())
    assert reorder_gelu_for_fusion(graph) == 2
    onnx.checker.check_model(graph, full_check=True)
    assert reorder_gelu_for_fusion(graph) == 0


def test_op_by_op_the_rewrite_gives_the_same_bits(torch_gelu_graph):
    graph = onnx.ModelProto.FromString(torch_gelu_graph.SerializeToString())
    reorder_gelu_for_fusion(graph)
    unoptimised = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    (before,) = outputs(torch_gelu_graph, inputs(), unoptimised)
    (after,) = outputs(graph, inputs(), unoptimised)
    assert np.array_equal(before, after)


def test_onnxruntime_fuses_the_rewrite_and_not_the_export(
    torch_gelu_graph, tmp_path, op_types_after_fusion
):
    exported, rewritten = tmp_path / "exported.onnx", tmp_path / "rewritten.onnx"
    onnx.save(torch_gelu_graph, str(exported))
    graph = onnx.ModelProto.FromString(torch_gelu_graph.SerializeToString())
    reorder_gelu_for_fusion(graph)
    onnx.save(graph, str(rewritten))
    assert op_types_after_fusion(exported).count("Erf") == 2
    fused = op_types_after_fusion(rewritten)
    assert "Erf" not in fused
    assert fused.count("Gelu") == 2
    # onnxruntime's own GELU kernel: the same function to float32 rounding.
    everything = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    (before,) = outputs(torch_gelu_graph, inputs(), everything)
    (after,) = outputs(graph, inputs(), everything)
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)


def test_op_by_op_the_same_bits_on_edge_values():
    graph = hand_written_gelu()
    rewritten = hand_written_gelu()
    assert reorder_gelu_for_fusion(rewritten) == 1
    unoptimised = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    (before,) = outputs(graph, edge_values(), unoptimised)
    (after,) = outputs(rewritten, edge_values(), unoptimised)
    assert before.tobytes() == after.tobytes()  # NaN and -0 included


@pytest.mark.parametrize(
    "leak", ["erf:node", "sum:output", "sum:node", "halved:output", "halved:node"]
)
def test_a_gelu_whose_parts_feed_anything_else_is_left_alone(leak):
    graph = hand_written_gelu(leak=leak)
    original = graph.SerializeToString()
    assert reorder_gelu_for_fusion(graph) == 0
    assert graph.SerializeToString() == original


def test_a_chain_with_other_constants_is_not_rewritten():
    assert reorder_gelu_for_fusion(hand_written_gelu(divisor=2.0)) == 0
    assert reorder_gelu_for_fusion(hand_written_gelu(half=float(np.float32(0.5) + 2**-24))) == 0
    assert reorder_gelu_for_fusion(hand_written_gelu()) == 1


def test_a_graph_with_subgraphs_is_left_whole():
    graph = hand_written_gelu()
    branch = helper.make_graph(
        [helper.make_node("Identity", ["halved"], ["from_branch"])],
        "branch",
        [],
        [helper.make_tensor_value_info("from_branch", TensorProto.FLOAT, ["n", 8])],
    )
    graph.graph.initializer.append(numpy_helper.from_array(np.array(True), "condition"))
    graph.graph.node.append(
        helper.make_node("If", ["condition"], ["chosen"], then_branch=branch, else_branch=branch)
    )
    graph.graph.output.append(helper.make_tensor_value_info("chosen", TensorProto.FLOAT, ["n", 8]))
    assert reorder_gelu_for_fusion(graph) == 0


@pytest.mark.parametrize("model_id", sorted(StoreIndex.read(bundled_model_store()).card_checksums))
def test_bundled_graphs_leave_no_gelu_unfused(model_id, op_types_after_fusion):
    model_dir = bundled_model_store() / model_id
    manifest = load_manifest(model_dir)
    for name in (manifest.onnx_file, manifest.explain_onnx_file):
        assert name is not None
        graph = Path(model_dir / name)
        assert reorder_gelu_for_fusion(onnx.load(str(graph))) == 0
        assert "Erf" not in op_types_after_fusion(graph)
