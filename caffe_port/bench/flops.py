"""The backward's arithmetic: FLOPs counted from the graph, and one backward timed layer by layer.

FLOPs are the input diffs of Conv, Gemm and MatMul layers as 2·MACs of the transposed ops, no
weight gradients:

    Conv   2 · |top| · (C/G) · kh · kw        (each top element scatters into (C/G)·kh·kw bottoms)
    Gemm   2 · M · N · P  per differentiable operand, op(A) (M, P), op(B) (P, N)
    MatMul 2 · |top| · P  per differentiable operand, A (…, M, P), B (…, P, N)

numpy and the walker load inside the functions: ``caffe-port`` builds its parser from this package.
"""
from __future__ import annotations

import time

from caffe_port.errors import ShapeError

FLOP_OPS = ("Conv", "Gemm", "MatMul")


def element_count(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def backward_flops(graph, shapes, start_blob, k=1) -> list:
    """The layers a diff injected at ``start_blob`` reaches, walking back as ``walker.walk`` does,
    with the FLOPs of their input diffs: ``[(layer, op_type, flops), …]`` in backward order, one row
    per reached Conv, Gemm or MatMul layer; ``k`` stacked diffs multiply every count.

    graph: a ``caffe_port.graph.Graph``; shapes: blob name → shape (``graph.shapes(...)``).
    """
    reached = {start_blob}
    rows = []
    for node in reversed(graph.nodes):
        if not any(o in reached for o in node.outputs if o) or not graph.needs_backward(node):
            continue
        propagate_down = graph.propagate_down[node.name]
        reached.update(i for i, down in zip(node.inputs, propagate_down) if down and i)
        if node.op_type not in FLOP_OPS:
            continue

        def shape(name):
            value = graph.constants[name].shape if name in graph.constants else shapes.get(name)
            if value is None:
                raise ShapeError(f"cannot count the FLOPs of layer {node.name!r}: the shape of blob "
                                 f"{name!r} is unknown")
            return tuple(int(d) for d in value)

        top = element_count(shape(node.outputs[0]))
        if node.op_type == "Conv":
            per_top = element_count(shape(node.inputs[1])[1:])          # (C/G) · kh · kw
            flops = 2 * top * per_top if propagate_down[0] else 0
        else:
            a = shape(node.inputs[0])
            if node.op_type == "Gemm":
                inner = a[0] if graph.node_attrs(node).get("transA", 0) else a[1]
            else:
                inner = a[-1]
            flops = 2 * top * inner * sum(1 for down in propagate_down[:2] if down)
        rows.append((node.name, node.op_type, k * flops))
    return rows


def profile_backward(net, score_blob, top_diff, input_blob):
    """One backward from ``score_blob`` after ``net.forward``, walked by ``caffe_port.walker.walk``
    as ``Net.backward`` walks it, with the clock read after each layer.

    top_diff: (N, …) or stacked (K, N, …). Returns ``(rows, input_diff)``: rows
    ``[(layer, op_type, seconds), …]`` in backward order (a layer's time runs from the previous
    layer's end to its own, so it includes the walker's bookkeeping in between), and the input
    blob's diff, (K, N, C, H, W).
    """
    import numpy as np

    from caffe_port.walker import walk

    graph = net.graph
    shape = tuple(net.blobs[score_blob].shape)
    top_diff = np.asarray(top_diff, dtype=np.float32)
    if top_diff.shape == shape:
        top_diff = top_diff[None]
    start = graph.producer[score_blob].index
    nodes = graph.nodes[:start + 1]
    wanted = set(graph.kept_tensors()) | set(net.inputs)
    data = {name: net.blobs[name].data for name in wanted if name in net.blobs}
    shapes = graph.shapes({name: net.blobs[name].data.shape for name in net.inputs})
    shapes.update({name: tuple(value.shape) for name, value in data.items()})
    rows = []
    clock = [time.perf_counter()]

    def observe(node, top_diff, bottom_diff):
        now = time.perf_counter()
        rows.append((node.name, node.op_type, now - clock[0]))
        clock[0] = now

    clock[0] = time.perf_counter()
    result = walk(graph, nodes, net.backend, data, {score_blob: np.ascontiguousarray(top_diff)}, shapes,
                  keep={input_blob}, observer=observe, in_place=True)   # observe reads no diffs
    return rows, result.get(input_blob)
