"""Softmax and LogSoftmax, backward from the kept top.

The normalised axis depends on the opset (attrs["opset"]):

* opset < 13: the input is coerced to 2-D at ``axis`` (default 1): shape (A, L) with
  A = Π dims[:axis], L = Π dims[axis:], and each of the A rows is normalised over its L entries.
* opset ≥ 13: normalised along the single axis ``axis`` (default −1).

Both views are an (A, L, B) array normalised along L (B = 1 for the old coercion), which is how
the kernels see it. With g the top diff of one stacked k:

    Softmax:     y = exp(x − max) / Σ_L exp(x − max)      dx = y ⊙ (g − Σ_L g·y)
    LogSoftmax:  y = x − max − log Σ_L exp(x − max)       dx = g − exp(y) · Σ_L g

Shapes: x, y (N, ...); top_diff, bottom_diff (K, N, ...).
"""
import numpy as np

from caffe_port.errors import ModelError

from .jit import pjit, prange


def softmax_blocks(shape, attrs, op_type):
    """(A, L, B) of the normalised view of an array of ``shape``."""
    rank = len(shape)
    old = int(attrs.get("opset", 13)) < 13
    axis = int(attrs.get("axis", 1 if old else -1))
    if not -rank <= axis < rank:
        raise ModelError(f"{op_type}: axis {axis} is out of range for a tensor of rank {rank}")
    axis %= rank
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    if old:
        return outer, int(np.prod(shape[axis:], dtype=np.int64)), 1
    return outer, int(shape[axis]), int(np.prod(shape[axis + 1:], dtype=np.int64))


@pjit
def _softmax_forward(x, log, y):
    """x, y: (A, L, B); log selects LogSoftmax."""
    inner = x.shape[2]
    for task in prange(x.shape[0] * inner):
        a, b = task // inner, task % inner
        top = x[a, 0, b]
        for i in range(1, x.shape[1]):
            top = max(top, x[a, i, b])
        total = x.dtype.type(0)
        for i in range(x.shape[1]):
            total += np.exp(x[a, i, b] - top)
        if log:
            # (x − max) first: exact, where folding max into the log term would round at max's scale
            shift = np.log(total)
            for i in range(x.shape[1]):
                y[a, i, b] = (x[a, i, b] - top) - shift
        else:
            for i in range(x.shape[1]):
                y[a, i, b] = np.exp(x[a, i, b] - top) / total


@pjit
def _softmax_backward(top_diff, y, log, bottom_diff):
    """top_diff, bottom_diff: (K, A, L, B); y: (A, L, B)."""
    outer, inner = y.shape[0], y.shape[2]
    for task in prange(top_diff.shape[0] * outer * inner):
        k = task // (outer * inner)
        a = (task // inner) % outer
        b = task % inner
        total = y.dtype.type(0)
        if log:
            for i in range(y.shape[1]):
                total += top_diff[k, a, i, b]
            for i in range(y.shape[1]):
                bottom_diff[k, a, i, b] = top_diff[k, a, i, b] - np.exp(y[a, i, b]) * total
        else:
            for i in range(y.shape[1]):
                total += top_diff[k, a, i, b] * y[a, i, b]
            for i in range(y.shape[1]):
                bottom_diff[k, a, i, b] = y[a, i, b] * (top_diff[k, a, i, b] - total)


def _forward(bottom_data, attrs, op_type, log):
    x = bottom_data[0]
    view = softmax_blocks(x.shape, attrs, op_type)
    y = np.empty(view, x.dtype)
    _softmax_forward(np.ascontiguousarray(x).reshape(view), log, y)
    return [y.reshape(x.shape)]


def _backward(top_diff, top_data, attrs, op_type, log):
    y = top_data[0]
    g = top_diff[0]
    view = softmax_blocks(y.shape, attrs, op_type)
    g4 = np.ascontiguousarray(g, dtype=y.dtype).reshape((g.shape[0],) + view)
    bottom_diff = np.empty_like(g4)
    _softmax_backward(g4, np.ascontiguousarray(y).reshape(view), log, bottom_diff)
    return [bottom_diff.reshape(g.shape)]


def softmax_forward(bottom_data, attrs):
    return _forward(bottom_data, attrs, "Softmax", False)


def softmax_backward(top_diff, bottom_data, top_data, attrs):
    return _backward(top_diff, top_data, attrs, "Softmax", False)


def log_softmax_forward(bottom_data, attrs):
    return _forward(bottom_data, attrs, "LogSoftmax", True)


def log_softmax_backward(top_diff, bottom_data, top_data, attrs):
    return _backward(top_diff, top_data, attrs, "LogSoftmax", True)
