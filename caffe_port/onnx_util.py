"""Small helpers for building ONNX models that this ONNX Runtime accepts, and for reading their weights."""
from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from caffe_port.errors import ModelError

MAX_IR_VERSION = 10   # onnx >= 1.23 stamps IR 14 by default, which ONNX Runtime refuses
SMALL_CONSTANT = 1024   # constants up to this size stay in the shape-inference skeleton (shapes, axes)


def default_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain (ai.onnx) opset version."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 1


def ir_for_opset(opset: int) -> int:
    """The IR version of the ONNX release that introduced ``opset`` (at most MAX_IR_VERSION)."""
    best = 3
    for row in helper.VERSION_TABLE:
        ir, op = row[1], row[2]
        if op is not None and op <= opset:
            best = max(best, ir)
    return min(best, MAX_IR_VERSION)


def make_model(graph: onnx.GraphProto, opset: int = 17, producer: str = "caffe_port") -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name=producer)
    model.ir_version = ir_for_opset(opset)
    return model


def tensor_value_info(name, array_or_shape, dtype=np.float32):
    shape = array_or_shape.shape if hasattr(array_or_shape, "shape") else array_or_shape
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return helper.make_tensor_value_info(name, elem, list(shape))


def initializer(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def read_initializer(tensor) -> np.ndarray:
    """An initializer as a writable array; one whose data does not fill its dims (or whose type
    has no numpy form) is a damaged file."""
    where = f"initializer {tensor.name!r} (dims {list(tensor.dims)})"
    if any(d < 0 for d in tensor.dims):
        raise ModelError(f"{where}: negative dimension")
    try:
        return np.array(numpy_helper.to_array(tensor))
    except Exception as e:       # numpy_helper raises what its conversions raise: no one type
        raise ModelError(f"{where}: its data cannot be read ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120] if str(e) else 'no detail'})") from None
# --- shape inference without the weights ---------------------------------------------------------

def shapes_of(model):
    """Tensor name → shape (ints, dim_param strings or None) from a model's value infos."""
    shapes = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        shape = []
        for d in vi.type.tensor_type.shape.dim:
            shape.append(int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None))
        shapes[vi.name] = tuple(shape)
    return shapes


def skeleton(model: onnx.ModelProto, input_shapes: dict | None):
    """The model without its large weights (typed inputs stand in for them), for shape inference."""
    g = model.graph
    sk = onnx.ModelProto()
    sk.ir_version = model.ir_version
    sk.opset_import.extend(model.opset_import)
    graph = sk.graph
    graph.name = g.name
    graph.node.extend(g.node)
    graph.output.extend(helper.make_empty_tensor_value_info(o.name) for o in g.output)
    init_names = {t.name for t in g.initializer}
    for vi in g.input:
        if vi.name in init_names:
            continue
        new = onnx.ValueInfoProto()
        new.CopyFrom(vi)
        if input_shapes and vi.name in input_shapes:
            dims = new.type.tensor_type.shape.dim
            for d, value in zip(dims, input_shapes[vi.name]):
                d.Clear()
                d.dim_value = int(value)
        graph.input.append(new)
    for t in g.initializer:
        size = math.prod(t.dims)     # Python ints: numpy's product wraps past int64
        if size <= SMALL_CONSTANT:
            graph.initializer.append(t)
        else:
            graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return sk


def infer(model, input_shapes):
    sk = skeleton(model, input_shapes)
    try:
        return onnx.shape_inference.infer_shapes(sk, strict_mode=False, data_prop=True)
    except Exception:
        # inference gave up somewhere: what it could not infer is fetched from the forward pass
        return sk
