"""Shape layers backward on the device: Flatten, Reshape, Squeeze, Unsqueeze and Transpose.

The first four relabel the elements in C order, so the diff is the top diff reshaped — the same
device memory, no copy (the GPU walker never adds into a diff it did not allocate itself, see
caffe_port/cuda_backend.py). Transpose applies the inverse permutation, shifted by one for the K axis:

    bottom_diff = top_diff.transpose(0, 1 + inv[0], 1 + inv[1], …),   inv = argsort(perm)

as a strided copy into a new contiguous array. Shapes as in kernels/shape.py.
"""
import numpy as np

from caffe_port.kernels.shape import permutation

from . import device


def _relabel_backward(top_diff, pd, bottom_shapes):
    g = top_diff[0]
    if not pd[0]:
        return [None] * len(pd)
    return [g.reshape((g.shape[0],) + tuple(bottom_shapes[0]))] + [None] * (len(pd) - 1)


def flatten_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    return _relabel_backward(top_diff, propagate_down, bottom_shapes)


def reshape_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    return _relabel_backward(top_diff, propagate_down, bottom_shapes)


def squeeze_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    return _relabel_backward(top_diff, propagate_down, bottom_shapes)


def unsqueeze_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    return _relabel_backward(top_diff, propagate_down, bottom_shapes)


def transpose_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    g, pd = top_diff[0], propagate_down
    if not pd[0]:
        return [None] * len(pd)
    order = (0,) + tuple(1 + int(i) for i in np.argsort(permutation(attrs, len(g.shape) - 1)))
    g_strides = device.contiguous_strides(tuple(g.shape))
    out_shape = tuple(g.shape[i] for i in order)
    out = device.empty(out_shape, g.dtype)
    device.copy_layout(g, device.layout(out_shape, [g_strides[i] for i in order]), out, device.layout(out_shape))
    return [out]
