"""Tanh backward on the device, from the kept top:  dx = dy · (1 − y²).

Shapes: y (N, ...); top_diff, bottom_diff (K, N, ...).
"""
from numba import cuda

from . import device
from .device import kernel, launch


@kernel
def _tanh_backward(top_diff, y, stack, one, bottom_diff):
    """top_diff, bottom_diff: (K·M,) flat; y: (M,)."""
    size = y.size
    for i in range(cuda.grid(1), size, cuda.gridsize(1)):
        slope = one - y[i] * y[i]
        for k in range(stack):
            bottom_diff[k * size + i] = top_diff[k * size + i] * slope


def tanh_backward(top_diff, bottom_data, top_data, attrs):
    g = top_diff[0]
    y = device.operand(top_data[0], g.dtype)
    bottom_diff = device.empty(g.shape, g.dtype)
    if y.size:
        _tanh_backward[launch(y.size)](device.flat(g), device.flat(y), g.shape[0], g.dtype.type(1),
                                       device.flat(bottom_diff))
    return [bottom_diff]
