"""LRN backward on the device (Caffe's ACROSS_CHANNELS), from the kept bottom and top.

The rule is the CPU kernel's (kernels/lrn.py): with W(c) = [c − lo, c + hi] ∩ [0, C),

    scale[c] = bias + alpha/size · Σ_{c' ∈ W(c)} x[c']²
    dx[c]    = dy[c] · scale[c]^(−beta)
               − (2·alpha·beta/size) · x[c] · Σ_{c' ∈ [c − hi, c + lo]} dy[c'] · y[c'] / scale[c']

Two kernels, each a thread per (image, spatial position) column walking the channels with running
sums in the CPU's order: the first writes scale (N, C, S), the second (one thread per column and
stacked k) forms the mirrored-window sum of dy·y/scale and writes dx. Shapes: x, y (N, C, *S);
diffs (K, N, C, *S).
"""
import math

from numba import cuda

from caffe_port.kernels.lrn import lrn_params

from . import device
from .device import kernel, launch


@kernel
def _lrn_scale(x, images, channels, size, lo, hi, alpha_over_size, bias, zero, scale):
    """x, scale: (N, C, S) flat."""
    for e in range(cuda.grid(1), images * size, cuda.gridsize(1)):
        n = e // size
        s = e - n * size
        base = n * channels * size + s
        acc = zero
        for c in range(min(hi, channels)):
            v = x[base + c * size]
            acc += v * v
        for c in range(channels):
            enter, leave = c + hi, c - lo - 1
            if enter < channels:
                v = x[base + enter * size]
                acc += v * v
            if leave >= 0:
                v = x[base + leave * size]
                acc -= v * v
            scale[base + c * size] = bias + alpha_over_size * acc


@kernel
def _lrn_backward(x, y, scale, top_diff, stack, images, channels, size, lo, hi, beta, coeff, zero,
                  bottom_diff):
    """x, y, scale: (N, C, S) flat; top_diff, bottom_diff: (K, N, C, S) flat."""
    columns = images * size
    for e in range(cuda.grid(1), stack * columns, cuda.gridsize(1)):
        k = e // columns
        n = (e - k * columns) // size
        s = e - k * columns - n * size
        base = n * channels * size + s
        diff_base = k * images * channels * size + base
        acc = zero
        for c in range(min(lo, channels)):
            i = c * size
            acc += top_diff[diff_base + i] * y[base + i] / scale[base + i]
        for c in range(channels):
            enter, leave = c + lo, c - hi - 1
            if enter < channels:
                i = enter * size
                acc += top_diff[diff_base + i] * y[base + i] / scale[base + i]
            if leave >= 0:
                i = leave * size
                acc -= top_diff[diff_base + i] * y[base + i] / scale[base + i]
            i = c * size
            bottom_diff[diff_base + i] = (top_diff[diff_base + i] * math.pow(scale[base + i], -beta)
                                          - coeff * x[base + i] * acc)


def lrn_backward(top_diff, bottom_data, top_data, attrs):
    g = top_diff[0]
    dtype = g.dtype
    x = device.operand(bottom_data[0], dtype)
    y = device.operand(top_data[0], dtype)
    lo, hi, alpha_over_size, beta, bias = lrn_params(attrs, dtype)
    shape = tuple(x.shape)
    images, channels = shape[0], shape[1]
    size = x.size // max(1, images * channels)
    k = g.shape[0]
    scale = device.empty(shape, dtype)
    bottom_diff = device.empty(g.shape, dtype)
    coeff = dtype.type(2 * float(alpha_over_size) * float(beta))
    if images * size:
        _lrn_scale[launch(images * size)](device.flat(x), images, channels, size, lo, hi, alpha_over_size,
                                          bias, dtype.type(0), device.flat(scale))
        _lrn_backward[launch(k * images * size)](device.flat(x), device.flat(y), device.flat(scale),
                                                 device.flat(g), k, images, channels, size, lo, hi, beta,
                                                 coeff, dtype.type(0), device.flat(bottom_diff))
    return [bottom_diff]
