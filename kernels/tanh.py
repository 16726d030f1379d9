"""Tanh, backward from the kept top.

    y  = tanh(x)
    dx = dy · (1 − y²)

Shapes: x, y (N, ...); top_diff, bottom_diff (K, N, ...).
"""
import numpy as np

from .jit import pjit, prange


@pjit
def _tanh_backward(top_diff, y, bottom_diff):
    """top_diff, bottom_diff: (K, M); y: (M,)."""
    one = y.dtype.type(1)
    for i in prange(y.shape[0]):
        slope = one - y[i] * y[i]
        for k in range(top_diff.shape[0]):
            bottom_diff[k, i] = top_diff[k, i] * slope


def tanh_forward(bottom_data, attrs):
    return [np.tanh(bottom_data[0])]


def tanh_backward(top_diff, bottom_data, top_data, attrs):
    y = np.ascontiguousarray(top_data[0])
    g = np.ascontiguousarray(top_diff[0], dtype=y.dtype)
    bottom_diff = np.empty((g.shape[0], y.size), y.dtype)
    _tanh_backward(g.reshape(g.shape[0], -1), y.reshape(-1), bottom_diff)
    return [bottom_diff.reshape(g.shape)]
