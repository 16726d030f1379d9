"""Elementwise functions of one tensor: Erf, Exp, Log, Neg, Abs, Reciprocal, Sqrt, and the
piecewise constant Floor, Ceil, Round and Sign — the pieces of LayerNorm, GELU and softmax that
exporters write out node by node.

    Erf         y = erf(x)            dx = dy · 2/√π · exp(−x²)
    Exp         y = eˣ                dx = dy · y
    Log         y = ln x              dx = dy / x
    Neg         y = −x                dx = −dy
    Abs         y = |x|               dx = dy · sign(x)            (0 at x = 0, as torch has it)
    Reciprocal  y = 1 / x             dx = −dy · y²
    Sqrt        y = √x                dx = dy / (2y)               (inf at x = 0, as the math has it)
    Floor, Ceil, Round, Sign          dx = 0                       (constant between their jumps)

None of these is ReLU-like: every rule computes the true gradient. The backward reads x or y,
whichever the formula needs (the registry line says which). Shapes: x, y (N, ...);
top_diff and bottom_diff (K, N, ...), fresh arrays in top_diff's dtype.
"""
import math

import numpy as np

from .jit import pjit, prange

TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _local(g, x):
    """An operand in the diff's dtype (a float64 constant must not upcast a float32 diff)."""
    return np.asarray(x).astype(g.dtype, copy=False)


@pjit
def _erf(x, y):
    for i in prange(x.size):
        y[i] = math.erf(np.float64(x[i]))


def erf_forward(bottom_data, attrs):
    x = bottom_data[0]
    flat = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(flat)
    _erf(flat, y)
    return [y.reshape(x.shape)]


def erf_backward(top_diff, bottom_data, top_data, attrs):
    g = top_diff[0]
    x = _local(g, bottom_data[0])
    return [g * (g.dtype.type(TWO_OVER_SQRT_PI) * np.exp(-(x * x)))]


def exp_forward(bottom_data, attrs):
    return [np.exp(bottom_data[0])]


def exp_backward(top_diff, bottom_data, top_data, attrs):
    g = top_diff[0]
    return [g * _local(g, top_data[0])]


def log_forward(bottom_data, attrs):
    return [np.log(bottom_data[0])]


def log_backward(top_diff, bottom_data, top_data, attrs):
    g = top_diff[0]
    return [g / _local(g, bottom_data[0])]


def neg_forward(bottom_data, attrs):
    return [np.negative(bottom_data[0])]


def neg_backward(top_diff, bottom_data, top_data, attrs):
    return [np.negative(top_diff[0])]


def abs_forward(bottom_data, attrs):
    return [np.abs(bottom_data[0])]


def abs_backward(top_diff, bottom_data, top_data, attrs):
    g = top_diff[0]
    return [g * np.sign(_local(g, bottom_data[0]))]


def reciprocal_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [x.dtype.type(1) / x]


def reciprocal_backward(top_diff, bottom_data, top_data, attrs):
    g = top_diff[0]
    y = _local(g, top_data[0])
    return [-(g * (y * y))]


def sqrt_forward(bottom_data, attrs):
    return [np.sqrt(bottom_data[0])]


def sqrt_backward(top_diff, bottom_data, top_data, attrs):
    g = top_diff[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return [g / (g.dtype.type(2) * _local(g, top_data[0]))]


# --- piecewise constant: the diff is zero -----------------------------------------------------------

def floor_forward(bottom_data, attrs):
    return [np.floor(bottom_data[0])]


def ceil_forward(bottom_data, attrs):
    return [np.ceil(bottom_data[0])]


def round_forward(bottom_data, attrs):
    return [np.round(bottom_data[0])]      # half to even, as ONNX's Round


def sign_forward(bottom_data, attrs):
    return [np.sign(bottom_data[0])]


def step_backward(top_diff, bottom_data, top_data, attrs):
    """Floor, Ceil, Round, Sign: zero almost everywhere."""
    return [np.zeros_like(top_diff[0])]


floor_backward = ceil_backward = round_backward = sign_backward = step_backward
