"""ReduceMean and ReduceSum backward on the device: the top diff broadcast back over the reduced
axes (divided by their element count |R| for the mean). Axes, keepdims and noop_with_empty_axes
are resolved by the CPU kernel's own function (kernels/reduce.py). Shapes: top_diff (K, *y.shape),
bottom_diff (K, *x.shape).
"""
import numpy as np

from caffe_port.kernels.reduce import reduced_axes

from . import device


def _backward(top_diff, bottom_data, attrs, op_type, mean, bottom_shapes):
    bottom_shape = tuple(bottom_shapes[0])
    g = top_diff[0]
    k = g.shape[0]
    axes = reduced_axes([None] + [device.to_host(b) if b is not None else None for b in bottom_data[1:]],
                         attrs, len(bottom_shape), op_type)
    rest = [None] * (len(bottom_data) - 1)
    if axes is None:
        return [g] + rest
    kept_shape = (k,) + tuple(1 if i in axes else n for i, n in enumerate(bottom_shape))
    count = int(np.prod([bottom_shape[i] for i in axes], dtype=np.int64)) if mean else 1
    return [device.broadcast_to(g.reshape(kept_shape), kept_shape, (k,) + bottom_shape, divisor=count)] + rest


def reduce_mean_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes):
    return _backward(top_diff, bottom_data, attrs, "ReduceMean", True, bottom_shapes)


def reduce_sum_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes):
    return _backward(top_diff, bottom_data, attrs, "ReduceSum", False, bottom_shapes)
