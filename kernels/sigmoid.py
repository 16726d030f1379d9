"""Sigmoid and HardSigmoid, backward from the kept top.

    Sigmoid      y  = 1 / (1 + exp(−x))
                 dx = dy · y · (1 − y)
    HardSigmoid  y  = max(0, min(1, α·x + β))            (α = 0.2, β = 0.5 unless given)
                 dx = dy · α · [0 < y < 1]

Both are gates (the squeeze-and-excitation scale of MobileNetV3 and PP-LCNet), not rectifiers:
every rule computes their true gradient.

Shapes: x, y (N, ...); top_diff, bottom_diff (K, N, ...).
"""
import numpy as np

from .jit import pjit, prange


@pjit
def _sigmoid_backward(top_diff, y, bottom_diff):
    """top_diff, bottom_diff: (K, M); y: (M,)."""
    one = y.dtype.type(1)
    for i in prange(y.shape[0]):
        slope = y[i] * (one - y[i])
        for k in range(top_diff.shape[0]):
            bottom_diff[k, i] = top_diff[k, i] * slope


def sigmoid_forward(bottom_data, attrs):
    x = bottom_data[0]
    one = x.dtype.type(1)
    # exp of a large positive −x overflows to inf and gives 0, the right limit
    with np.errstate(over="ignore"):
        return [one / (one + np.exp(-x))]


def sigmoid_backward(top_diff, bottom_data, top_data, attrs):
    y = np.ascontiguousarray(top_data[0])
    g = np.ascontiguousarray(top_diff[0], dtype=y.dtype)
    bottom_diff = np.empty((g.shape[0], y.size), y.dtype)
    _sigmoid_backward(g.reshape(g.shape[0], -1), y.reshape(-1), bottom_diff)
    return [bottom_diff.reshape(g.shape)]


# --- HardSigmoid: the piecewise-linear sigmoid ------------------------------------------------------

def hard_sigmoid_slope(attrs):
    return float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))


def hard_sigmoid_forward(bottom_data, attrs):
    x = bottom_data[0]
    alpha, beta = hard_sigmoid_slope(attrs)
    return [np.clip(x * x.dtype.type(alpha) + x.dtype.type(beta), 0, 1)]


def hard_sigmoid_backward(top_diff, bottom_data, top_data, attrs):
    y, g = top_data[0], top_diff[0]
    alpha = g.dtype.type(hard_sigmoid_slope(attrs)[0])
    return [g * np.where((y > 0) & (y < 1), alpha, g.dtype.type(0))]
