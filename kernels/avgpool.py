"""AveragePool and GlobalAveragePool.

Shapes: bottom (N, C, *in), top (N, C, *out), 1 to 3 spatial axes; diffs carry a leading K axis.
Windows, output size and padding are MaxPool's (see maxpool.py): along each axis output o has
taps p = o·stride − pad_begin + t·dilation, t = 0 … kernel − 1. With W(o) the window's taps
inside the input and d(o) its divisor,

    top[o] = Σ_{p ∈ W(o)} bottom[p] / d(o)
    bottom_diff[k, p] = Σ_{o : p ∈ W(o)} top_diff[k, o] / d(o)

The backward reads no data, only shapes, so the runtime keeps nothing for it.

The divisor, measured in ONNX Runtime 1.31 (all-ones inputs, ~600 random nodes, 1-D to 3-D,
opsets 7 to 22, symmetric and asymmetric pads, strides 1 to 3, ceil_mode, dilations, auto_pad);
a box window's divisor is the product of per-axis counts:

    count_include_pad = 0:  d = the number of taps inside the input  [0, in)
    count_include_pad = 1:  d = the number of taps inside the padded input  [−pad_begin, in + pad_end)

So padding taps count when count_include_pad = 1, but the taps of a ceil_mode window that run
past the end padding never count. (Where auto_pad SAME with stride > kernel makes a pad negative,
ONNX Runtime also leaves out of the sum, and of both counts, the input taps outside
[−pad_begin, in + pad_end); this file does the same.) For dilation 1 this is Caffe's AVE pooling rule: Caffe divides
by the window clipped to the padded image, (min(start + kernel, in + pad) − start) per axis.
E.g. in = 7, kernel 3, stride 2, pads (1, 1), ceil_mode: windows start at −1, 1, 3, 5 and
d = 3, 3, 3, 3 (include pad) or 2, 3, 3, 2 (exclude pad); in = 8, kernel 4, stride 3, pads (2, 1),
ceil_mode: the last window [7, 11) has d = 2 ([7, 9) lies in the padded input) under include pad.

GlobalAveragePool: top = mean over all spatial positions, bottom_diff = top_diff / (their number).
"""
import numpy as np

from .jit import pjit, prange
from .registry import out_array
from .maxpool import pool_window, window_taps


@pjit
def _average_forward(bottom, out, dil, start, lo, hi, divisor, top):
    """bottom: (P, D, H, W); divisor: (3, max out) per-axis counts; top: (P, O), zeroed."""
    for p in prange(bottom.shape[0]):
        o = 0
        for od in range(out[0]):
            for oh in range(out[1]):
                for ow in range(out[2]):
                    for td in range(lo[0, od], hi[0, od]):
                        d = start[0, od] + td * dil[0]
                        for th in range(lo[1, oh], hi[1, oh]):
                            h = start[1, oh] + th * dil[1]
                            for tw in range(lo[2, ow], hi[2, ow]):
                                top[p, o] += bottom[p, d, h, start[2, ow] + tw * dil[2]]
                    top[p, o] /= divisor[0, od] * divisor[1, oh] * divisor[2, ow]
                    o += 1


@pjit
def _average_backward(top_diff, out, dil, start, lo, hi, divisor, bottom_diff):
    """top_diff: (K, P, O); bottom_diff: (K, P, D, H, W), zeroed, accumulates."""
    for p in prange(top_diff.shape[1]):
        o = 0
        for od in range(out[0]):
            for oh in range(out[1]):
                for ow in range(out[2]):
                    size = divisor[0, od] * divisor[1, oh] * divisor[2, ow]
                    for k in range(top_diff.shape[0]):
                        g = top_diff[k, p, o] / size
                        for td in range(lo[0, od], hi[0, od]):
                            d = start[0, od] + td * dil[0]
                            for th in range(lo[1, oh], hi[1, oh]):
                                h = start[1, oh] + th * dil[1]
                                for tw in range(lo[2, ow], hi[2, ow]):
                                    bottom_diff[k, p, d, h, start[2, ow] + tw * dil[2]] += g
                    o += 1


def pool_tables(attrs, bottom_shape, top_shape, dtype):
    """Tap tables and per-axis divisors (in ``dtype``, never below 1: an empty window gives 0)."""
    window = pool_window("AveragePool", attrs, bottom_shape[2:], None if top_shape is None else top_shape[2:])
    in3, out3, dil3, start, lo, hi, in_padded = window_taps(window, bottom_shape[2:], clip_to_padded=True)
    counts = in_padded if int(attrs.get("count_include_pad", 0)) else hi - lo
    divisor = np.maximum(counts, 1).astype(dtype)
    return window, in3, out3, dil3, start, lo, hi, divisor


def avgpool_forward(bottom_data, attrs):
    bottom = bottom_data[0]
    window, in3, out3, dil3, start, lo, hi, divisor = pool_tables(attrs, bottom.shape, None, bottom.dtype)
    planes = np.ascontiguousarray(bottom).reshape((-1,) + in3)
    top = np.zeros((planes.shape[0], int(np.prod(out3))), bottom.dtype)
    _average_forward(planes, out3, dil3, start, lo, hi, divisor, top)
    return [top.reshape(bottom.shape[:2] + window.out)]


def avgpool_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes, top_shapes, out=None):
    bottom_shape, top_shape = tuple(bottom_shapes[0]), tuple(top_shapes[0])
    g = top_diff[0]
    _, in3, out3, dil3, start, lo, hi, divisor = pool_tables(attrs, bottom_shape, top_shape, g.dtype)
    k, planes = g.shape[0], bottom_shape[0] * bottom_shape[1]
    g = np.ascontiguousarray(g).reshape(k, planes, -1)
    bottom_diff = out_array(out, 0, (k,) + bottom_shape, g.dtype).reshape((k, planes) + in3)
    bottom_diff[...] = 0
    _average_backward(g, out3, dil3, start, lo, hi, divisor, bottom_diff)
    return [bottom_diff.reshape((k,) + bottom_shape)]


def global_avgpool_forward(bottom_data, attrs):
    bottom = bottom_data[0]
    return [np.mean(bottom, axis=tuple(range(2, bottom.ndim)), keepdims=True, dtype=bottom.dtype)]


def global_avgpool_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes, out=None):
    bottom_shape = tuple(bottom_shapes[0])
    g = top_diff[0]
    size = g.dtype.type(int(np.prod(bottom_shape[2:])))
    # a copy, not ascontiguousarray: over a 1×1 map the broadcast is already contiguous, and the
    # read-only view it is would reach an in-place ReLU below
    bottom_diff = out_array(out, 0, g.shape[:1] + bottom_shape, g.dtype)
    np.copyto(bottom_diff, np.broadcast_to(g / size, bottom_diff.shape))
    return [bottom_diff]
