"""Small helpers for building ONNX models that this ONNX Runtime accepts, and for reading their weights."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from caffe_port.errors import ModelError

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
