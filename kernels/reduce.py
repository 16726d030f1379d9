"""ReduceMean and ReduceSum over a set of axes.

With R the reduced axes and |R| the number of elements reduced into each output,

    ReduceSum:   y = Σ_R x            dx[k] = broadcast(dy[k])
    ReduceMean:  y = Σ_R x / |R|      dx[k] = broadcast(dy[k]) / |R|

where broadcast re-inserts the reduced axes (as length 1 when keepdims = 0) and repeats dy along
them. The backward needs only shapes.

Axes come from the attribute ``axes`` (ReduceSum before opset 13, ReduceMean before opset 18) or
from the optional second input (from those opsets on). Empty or absent axes reduce every axis,
unless noop_with_empty_axes = 1 (opset ≥ 13 / 18), which makes the node an identity.

Shapes: x (N, ...), y (N, ...) or with fewer axes; top_diff (K, *y.shape), bottom_diff
(K, *x.shape). The second input (axes), when present, takes no diff.
"""
import numpy as np

from caffe_port.errors import ModelError


def reduced_axes(bottom_data, attrs, rank, op_type):
    """The reduced axes as a sorted tuple, or None for an identity (noop_with_empty_axes)."""
    axes = None
    if len(bottom_data) > 1 and bottom_data[1] is not None:
        axes = np.asarray(bottom_data[1]).reshape(-1).tolist()
    elif attrs.get("axes") is not None:
        axes = list(attrs["axes"])
    if not axes:
        return None if int(attrs.get("noop_with_empty_axes", 0)) else tuple(range(rank))
    if any(not -rank <= int(a) < rank for a in axes):
        raise ModelError(f"{op_type}: axes {axes} out of range for a tensor of rank {rank}")
    normalised = sorted({int(a) % rank for a in axes})
    if len(normalised) != len(axes):
        raise ModelError(f"{op_type}: axes {axes} name an axis twice")
    return tuple(normalised)


def _forward(bottom_data, attrs, op_type, mean):
    x = bottom_data[0]
    axes = reduced_axes(bottom_data, attrs, x.ndim, op_type)
    if axes is None:
        return [x.copy()]
    keepdims = bool(int(attrs.get("keepdims", 1)))
    reduce = np.mean if mean else np.sum
    return [np.asarray(reduce(x, axis=axes, keepdims=keepdims, dtype=x.dtype))]


def _backward(top_diff, bottom_data, attrs, op_type, mean, bottom_shapes):
    bottom_shape = tuple(bottom_shapes[0])
    if len(bottom_data) > 1 and bottom_data[1] is None and len(bottom_shapes) > 1 \
            and bottom_shapes[1] is not None:
        raise ModelError(f"{op_type}: the axes input must be a constant")
    g = top_diff[0]
    k = g.shape[0]
    axes = reduced_axes(bottom_data, attrs, len(bottom_shape), op_type)
    rest = [None] * (len(bottom_data) - 1)
    if axes is None:
        return [g.copy()] + rest
    kept_shape = tuple(1 if i in axes else n for i, n in enumerate(bottom_shape))
    g = g.reshape((k,) + kept_shape)
    if mean:
        count = int(np.prod([bottom_shape[i] for i in axes], dtype=np.int64))
        g = g / g.dtype.type(count)
    return [np.ascontiguousarray(np.broadcast_to(g, (k,) + bottom_shape))] + rest


def reduce_mean_forward(bottom_data, attrs):
    return _forward(bottom_data, attrs, "ReduceMean", True)


def reduce_mean_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes):
    return _backward(top_diff, bottom_data, attrs, "ReduceMean", True, bottom_shapes)


def reduce_sum_forward(bottom_data, attrs):
    return _forward(bottom_data, attrs, "ReduceSum", False)


def reduce_sum_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes):
    return _backward(top_diff, bottom_data, attrs, "ReduceSum", False, bottom_shapes)
