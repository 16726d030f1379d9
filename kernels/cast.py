"""Cast and CastLike between float types: the value is the same number in another type, so

    y  = x converted to ``to`` (Cast) or to the type of the second input (CastLike)
    dx = dy

A cast to an integer or bool type makes a tensor that takes no diff (the graph knows, from the
types, that no diff crosses it: rounding has derivative zero almost everywhere), so the backward
only ever sees float-to-float casts — the float16/float32 round trips and the Casts the dynamo
exporter writes around its own arithmetic. The diff keeps the walk's dtype (float32 stays
float32 across a cast to float16: the diff of a float16 activation is not rounded to float16).
CastLike's second input only names a type: it takes no diff.

Shapes: x (N, …); top_diff (K, *x.shape); bottom_diff (K, *x.shape), a fresh array.
"""
import numpy as np
from onnx import helper


def _cast(x, dtype):
    return np.asarray(x).astype(dtype)


def cast_forward(bottom_data, attrs):
    return [_cast(bottom_data[0], helper.tensor_dtype_to_np_dtype(int(attrs["to"])))]


def cast_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    return [top_diff[0].copy() if propagate_down[0] else None]


def cast_like_forward(bottom_data, attrs):
    return [_cast(bottom_data[0], np.asarray(bottom_data[1]).dtype)]


def cast_like_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    return [top_diff[0].copy() if propagate_down[0] else None, None]
