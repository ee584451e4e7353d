"""Exact GELU rewritten into the operand order onnxruntime fuses.

torch's exporter writes `nn.GELU()` as `x * (0.5 * (1 + erf(x / sqrt 2)))`. onnxruntime's
GeluFusion only recognises `(x * 0.5) * (1 + erf(x / sqrt 2))`, so in a ConvNeXt every GELU ran
as five kernels, and the elementwise chain kept the convolutions from staying in onnxruntime's
blocked layout (docs/performance.md). Run node by node, the two orders give the same bits:
`a = 1 + erf(...)` is 0 or at least 2^-24, so `0.5 * a` is exact; `x * 0.5` is inexact only for
|x| < 2^-125, where `a` is exactly 1 and both orders round `x / 2`; infinities, NaN and -0 come
out alike. The rewrite changes what onnxruntime can fuse, not what the graph computes.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import onnx
from onnx import numpy_helper

SQRT_TWO = math.sqrt(2.0)
SQRT_TWO_TOLERANCE = 1e-6


def _scalar_constants(graph: onnx.GraphProto) -> dict[str, float]:
    """Every single-element initializer or Constant output, by name."""
    tensors = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = node.attribute[0].t
    scalars = {}
    for name, tensor in tensors.items():
        if math.prod(tensor.dims) != 1:
            continue
        array = numpy_helper.to_array(tensor)
        if np.issubdtype(array.dtype, np.floating):
            scalars[name] = float(array.reshape(()))
    return scalars


def _other_input(node: onnx.NodeProto, known: str) -> str | None:
    """The second input of a binary node, given its first (in either position)."""
    if len(node.input) != 2 or known not in node.input:
        return None
    first, second = (str(name) for name in node.input)
    return second if first == known else first


def reorder_gelu_for_fusion(model: onnx.ModelProto) -> int:
    """Rewrite every exact GELU written as `x * (0.5 * (1 + erf(x / sqrt 2)))` in place as
    `(x * 0.5) * (1 + erf(x / sqrt 2))`; returns how many were rewritten. A chain whose
    intermediate values feed anything else is left alone, so no other node sees a change; a
    graph with subgraphs (If, Loop, Scan), whose bodies may read any outer value, is left whole."""
    graph = model.graph
    if any(
        attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for node in graph.node
        for attribute in node.attribute
    ):
        return 0
    scalars = _scalar_constants(graph)
    producers = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    graph_outputs = {output.name for output in graph.output}

    def only_consumer(name: str, op_type: str) -> onnx.NodeProto | None:
        users = consumers.get(name, [])
        if len(users) != 1 or name in graph_outputs or users[0].op_type != op_type:
            return None
        return users[0]

    def is_exactly(name: str | None, value: float) -> bool:
        # The bitwise argument needs exactly 1 and 0.5; only the divisor is the exporter's
        # rounding of sqrt 2.
        return name in scalars and scalars[name] == value

    def is_square_root_of_two(name: str) -> bool:
        return name in scalars and abs(scalars[name] - SQRT_TWO) <= SQRT_TWO_TOLERANCE

    rewritten = 0
    for erf in [node for node in graph.node if node.op_type == "Erf"]:
        divide = producers.get(erf.input[0])
        if divide is None or divide.op_type != "Div" or not is_square_root_of_two(divide.input[1]):
            continue
        source = divide.input[0]
        add_one = only_consumer(erf.output[0], "Add")
        if add_one is None or not is_exactly(_other_input(add_one, erf.output[0]), 1.0):
            continue
        halve = only_consumer(add_one.output[0], "Mul")
        half = _other_input(halve, add_one.output[0]) if halve is not None else None
        if halve is None or half is None or not is_exactly(half, 0.5):
            continue
        times_source = only_consumer(halve.output[0], "Mul")
        if times_source is None or _other_input(times_source, halve.output[0]) != source:
            continue
        # `halve` becomes x * 0.5 (same name and shape) and `times_source` its product with
        # 1 + erf(...); both keep their places in the node list, which stays valid.
        halve.ClearField("input")
        halve.input.extend([source, half])
        times_source.ClearField("input")
        times_source.input.extend([halve.output[0], add_one.output[0]])
        rewritten += 1
    return rewritten
