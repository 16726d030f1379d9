"""BatchNormalization (inference mode) backward on the device: a per-channel scaling.

The rule and the mode checks are the CPU kernel's (kernels/batchnorm.py):

    dX     = dY · (scale · inv_std),          inv_std = 1 / sqrt(var + epsilon)
    dscale = Σ dY · ((x − mean) · inv_std)    dB = Σ dY      (only when propagate_down asks)

summed over the axes the parameter was broadcast along. The factor scale · inv_std is computed
once on the host by the CPU kernel's own functions (so it is the same float32 number) and kept on
the device with the constants it came from. Shapes: x (N, C, *S); diffs (K, N, C, *S).
"""
import numpy as np

from caffe_port.kernels.batchnorm import (broadcastable, check_constant_statistics, check_mode,
                                          inverse_std, node_label)

from . import device
from .elementwise import CENTRED_MUL, MUL, combine


def _param_shape(bottom_data, x_shape, attrs):
    return broadcastable(bottom_data[1], x_shape, attrs).shape


def batchnorm_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    """top_diff [dY (K, N, C, *S), ...] → [dX (K, N, C, *S), dscale or None, dB or None, None, None]."""
    check_mode(attrs)
    check_constant_statistics(bottom_data, attrs, propagate_down)
    dy = top_diff[0]
    bottom_diff = [None] * len(bottom_data)
    if dy is None:
        return bottom_diff
    propagate_down = list(propagate_down) + [False] * 5
    dtype = dy.dtype
    x_shape = tuple(bottom_shapes[0]) if bottom_data[0] is None else tuple(bottom_data[0].shape)
    params = [device.to_host(p) if device.is_device_array(p) else p for p in bottom_data[1:5]]
    host = [None] + params
    inv_std_shape = inverse_std(host, x_shape, attrs, dtype).shape
    shapes = [np.shape(bottom_data[i]) if bottom_data[i] is not None else tuple(bottom_shapes[i])
              for i in (1, 2)]
    epsilon = float(attrs.get("epsilon", 1e-5))
    if propagate_down[0]:
        def make():
            return np.ascontiguousarray(broadcastable(host[1], x_shape, attrs).astype(dtype, copy=False)
                                        * inverse_std(host, x_shape, attrs, dtype))
        if any(device.is_device_array(p) for p in bottom_data[1:5]):    # computed in the graph
            factor = device.upload(make())
        else:                                                           # constants: kept on the device
            factor = device.derived(params, ("batchnorm_factor", dtype.str, epsilon, x_shape[1:]), make)
        bottom_diff[0] = combine(dy, MUL, factor, inv_std_shape)
    if propagate_down[1]:
        if bottom_data[0] is None:
            raise ValueError(f"BatchNormalization node {node_label(attrs)!r}: the scale diff needs the input x, "
                             "which the runtime did not keep")
        x = device.operand(bottom_data[0], dtype)
        mean = device.upload(broadcastable(host[3], x_shape, attrs).astype(dtype, copy=False))
        inv_std = device.upload(inverse_std(host, x_shape, attrs, dtype))
        product = combine(dy, CENTRED_MUL, x, x_shape, mean, inv_std_shape, inv_std, inv_std_shape)
        bottom_diff[1] = _reduce(product, inv_std_shape).reshape((dy.shape[0],) + tuple(shapes[0]))
    if propagate_down[2]:
        bottom_diff[2] = _reduce(dy, inv_std_shape).reshape((dy.shape[0],) + tuple(shapes[1]))
    return bottom_diff


def _reduce(diff, param_shape):
    """Sum (K, N, C, *S) over N and the axes the (C, ...) parameter spans once (the CPU's axes)."""
    axes = (1,) + tuple(2 + i for i, n in enumerate(param_shape) if n == 1 and diff.shape[2 + i] != 1)
    return device.sum_axes(diff, axes)
