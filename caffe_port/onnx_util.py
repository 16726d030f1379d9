"""Small helpers for building ONNX models that this ONNX Runtime accepts."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

MAX_IR_VERSION = 10   # onnx >= 1.23 stamps IR 14 by default, which ONNX Runtime refuses


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


def one_node_model(op_type, inputs, attrs=None, *, n_outputs=1, opset=17, constants=(), domain=""):
    """A model of one node. ``inputs``: list of (name, array); names in ``constants`` become
    initializers, the rest graph inputs. Outputs are named y0, y1, …"""
    ins, inits = [], []
    for name, arr in inputs:
        if name == "":
            continue
        arr = np.asarray(arr)
        if name in constants:
            inits.append(initializer(name, arr))
        else:
            ins.append(tensor_value_info(name, arr.shape, arr.dtype))
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, [n for n, _ in inputs], outs, domain=domain, **(attrs or {}))
    out_info = [helper.make_empty_tensor_value_info(o) for o in outs]
    graph = helper.make_graph([node], f"one_{op_type}", ins, out_info, initializer=inits)
    return make_model(graph, opset)


def run_onnxruntime(model, feeds):
    """Run a model on ONNX Runtime's CPU provider; returns the list of outputs."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)
