"""Shape layers: Flatten, Reshape, Squeeze, Unsqueeze (Caffe's Flatten and Reshape) and Transpose.

The first four only relabel the elements of x in C order, so their backward relabels back:

    bottom_diff = top_diff.reshape(K, *x.shape)

Transpose moves axis perm[i] of x to axis i of y, so its backward applies the inverse permutation
to the diff, shifted by one for the K axis:

    bottom_diff = top_diff.transpose(0, 1 + inv[0], 1 + inv[1], …),   inv = argsort(perm)

Shapes: x (N, …); top_diff (K, *y.shape); bottom_diff (K, *x.shape). The backward reads only
``bottom_shapes``; shape and axes inputs are constants and never take a diff. Every diff is a
fresh C-contiguous array (never a view of top_diff), so the walker may accumulate into it in place.
"""
import math

import numpy as np

from caffe_port.errors import ModelError


def _ints(value):
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _optional(bottom_data, i):
    return bottom_data[i] if len(bottom_data) > i and bottom_data[i] is not None else None


def _relabel_backward(top_diff, pd, bottom_shapes):
    """top_diff[0] (K, *y.shape) → (K, *x.shape), in memory of its own."""
    g = top_diff[0]
    if not pd[0]:
        return [None] * len(pd)
    out = g.reshape((g.shape[0],) + tuple(bottom_shapes[0]))
    if np.may_share_memory(out, g):
        out = out.copy()
    return [out] + [None] * (len(pd) - 1)


# --- Flatten: (d_0, …, d_{r−1}) → (d_0 ⋯ d_{axis−1}, d_axis ⋯ d_{r−1}) ----------------------------

def flatten_forward(bottom_data, attrs):
    x = bottom_data[0]
    axis = int(attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return [x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))]


def flatten_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    return _relabel_backward(top_diff, propagate_down, bottom_shapes)


# --- Reshape: shape input (opset ≥ 5) or attribute (< 5); 0 copies the input's dim unless
# allowzero, −1 takes what is left -----------------------------------------------------------------

def reshape_target(bottom_data, attrs, in_shape):
    shape = _optional(bottom_data, 1)
    shape = _ints(attrs["shape"] if shape is None else shape)
    if not int(attrs.get("allowzero", 0)):
        shape = [in_shape[i] if s == 0 else s for i, s in enumerate(shape)]
    total = math.prod(in_shape)
    if shape.count(-1) == 1:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or total % known:
            raise ModelError(f"Reshape: cannot reshape {tuple(in_shape)} to {shape}")
        shape[shape.index(-1)] = total // known
    if shape.count(-1) > 1 or math.prod(shape) != total or any(s < 0 for s in shape):
        raise ModelError(f"Reshape: cannot reshape {tuple(in_shape)} to {shape}")
    return tuple(shape)


def reshape_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [x.reshape(reshape_target(bottom_data, attrs, x.shape))]


def reshape_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    return _relabel_backward(top_diff, propagate_down, bottom_shapes)


# --- Squeeze / Unsqueeze: axes attribute (opset < 13) or input (≥ 13) -----------------------------

def _axes(bottom_data, attrs):
    axes = _optional(bottom_data, 1)
    if axes is None:
        axes = attrs.get("axes")
    return None if axes is None else _ints(axes)


def squeeze_forward(bottom_data, attrs):
    """No axes: drop every axis of length 1."""
    x = bottom_data[0]
    axes = _axes(bottom_data, attrs)
    return [np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(axes))]


def squeeze_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    return _relabel_backward(top_diff, propagate_down, bottom_shapes)


def unsqueeze_forward(bottom_data, attrs):
    """Axes count in the output's rank (negative ones from its end)."""
    return [np.expand_dims(bottom_data[0], tuple(_axes(bottom_data, attrs)))]


def unsqueeze_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    return _relabel_backward(top_diff, propagate_down, bottom_shapes)


# --- Transpose: y = x.transpose(perm); perm defaults to reversing the axes ------------------------

def permutation(attrs, ndim):
    perm = attrs.get("perm")
    return list(range(ndim))[::-1] if perm is None else _ints(perm)


def transpose_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [np.transpose(x, permutation(attrs, x.ndim))]


def transpose_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    g, pd = top_diff[0], propagate_down
    if not pd[0]:
        return [None] * len(pd)
    inverse = np.argsort(permutation(attrs, g.ndim - 1))
    return [g.transpose((0,) + tuple(1 + int(i) for i in inverse)).copy(order="C")]
