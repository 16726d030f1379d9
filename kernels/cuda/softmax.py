"""Softmax and LogSoftmax backward on the device, from the kept top.

The rule and the opset-dependent view (A, L, B), normalised along L, are the CPU kernel's
(kernels/softmax.py). With g one stacked top diff:

    Softmax:     dx = y ⊙ (g − Σ_L g·y)
    LogSoftmax:  dx = g − exp(y) · Σ_L g

One thread per (k, a, b) row, summing in the CPU's order. Shapes: y (N, ...); diffs (K, N, ...).
"""
import math

from numba import cuda

from caffe_port.kernels.softmax import softmax_blocks

from . import device
from .device import kernel, launch


@kernel
def _softmax_backward(top_diff, y, stack, outer, length, inner, log, zero, bottom_diff):
    """top_diff, bottom_diff: (K, A, L, B) flat; y: (A, L, B) flat."""
    rows = outer * inner
    for e in range(cuda.grid(1), stack * rows, cuda.gridsize(1)):
        k = e // rows
        a = (e - k * rows) // inner
        b = e - k * rows - a * inner
        base = a * length * inner + b
        diff_base = k * outer * length * inner + base
        total = zero
        if log:
            for i in range(length):
                total += top_diff[diff_base + i * inner]
            for i in range(length):
                bottom_diff[diff_base + i * inner] = (top_diff[diff_base + i * inner]
                                                      - math.exp(y[base + i * inner]) * total)
        else:
            for i in range(length):
                total += top_diff[diff_base + i * inner] * y[base + i * inner]
            for i in range(length):
                bottom_diff[diff_base + i * inner] = y[base + i * inner] * (top_diff[diff_base + i * inner]
                                                                            - total)


def _backward(top_diff, top_data, attrs, op_type, log):
    g = top_diff[0]
    dtype = g.dtype
    y = device.operand(top_data[0], dtype)
    outer, length, inner = softmax_blocks(tuple(y.shape), attrs, op_type)
    k = g.shape[0]
    bottom_diff = device.empty(g.shape, dtype)
    if k * outer * inner:
        _softmax_backward[launch(k * outer * inner)](device.flat(g), device.flat(y), k, outer, length, inner,
                                                     bool(log), dtype.type(0), device.flat(bottom_diff))
    return [bottom_diff]


def softmax_backward(top_diff, bottom_data, top_data, attrs):
    return _backward(top_diff, top_data, attrs, "Softmax", False)


def log_softmax_backward(top_diff, bottom_data, top_data, attrs):
    return _backward(top_diff, top_data, attrs, "LogSoftmax", True)
