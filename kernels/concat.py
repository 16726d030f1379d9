"""Concat: y = [x_0, x_1, …] joined along ``axis`` (Caffe's Concat layer; ONNX axis may be
negative from opset 11, defaults to 1 before opset 4).

    bottom_diff_i = top_diff[:, …, o_i : o_i + d_i, …]    (o_i = d_0 + … + d_{i−1}, on axis + 1)

Shapes: x_i (N, …, d_i, …); top_diff (K, N, …, Σ d_i, …); bottom_diff_i (K, N, …, d_i, …). The
backward reads only the bottoms' shapes (``bottom_shapes``); each diff is a fresh array, or the
walk's ``out`` memory.
"""
import numpy as np

from .registry import out_array


def concat_axis(attrs, ndim):
    axis = int(attrs.get("axis", 1))
    return axis + ndim if axis < 0 else axis


def concat_forward(bottom_data, attrs):
    return [np.concatenate(bottom_data, axis=concat_axis(attrs, bottom_data[0].ndim))]


def concat_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes, out=None):
    g = top_diff[0]
    shapes = bottom_shapes
    axis = concat_axis(attrs, len(shapes[0]))
    bottom_diff, offset = [], 0
    for i, (shape, pd) in enumerate(zip(shapes, propagate_down)):
        width = shape[axis]
        if pd:
            index = (slice(None),) * (axis + 1) + (slice(offset, offset + width),)
            piece = out_array(out, i, (g.shape[0],) + tuple(shape), g.dtype)
            np.copyto(piece, g[index])
            bottom_diff.append(piece)
        else:
            bottom_diff.append(None)
        offset += width
    return bottom_diff
