"""LRN: local response normalisation across channels (Caffe's ACROSS_CHANNELS, k = bias).

Shapes: x, y (N, C, *spatial); diffs (K, N, C, *spatial). With the channel window of the ONNX
spec, W(c) = [c − floor((size − 1)/2), c + ceil((size − 1)/2)] ∩ [0, C),

    scale[c] = bias + alpha/size · Σ_{c' ∈ W(c)} x[c']²
    y[c]     = x[c] · scale[c]^(−beta)

Backward (Caffe's LRNLayer::CrossChannelBackward), from the kept bottom and top:

    dx[c] = dy[c] · scale[c]^(−beta)
            − (2·alpha·beta/size) · x[c] · Σ_{c' : c ∈ W(c')} dy[c'] · y[c'] / scale[c']

where c ∈ W(c') ⟺ c' ∈ [c − ceil((size − 1)/2), c + floor((size − 1)/2)] (the mirrored window;
the same one when size is odd, as Caffe requires). Both channel sums are running sums — one add
and one subtract per channel step — so the cost per element does not grow with size; scale is
recomputed once from x and serves all K diffs.

Work is split into tiles of (image n, a block of spatial positions), each walking the channels.
"""
import numpy as np

from caffe_port.errors import ModelError

from .jit import jit, pjit, prange
from .registry import out_array

BLOCK = 256     # spatial positions per tile: C·BLOCK-sized buffers stay in cache


@jit
def _lrn_scale(x, n, s0, s1, lo, hi, alpha_over_size, bias, scale):
    """scale[c, b] for image n and positions s0 ≤ s < s1, by a running sum over W(c)."""
    channels = x.shape[1]
    width = s1 - s0
    acc = np.zeros(width, x.dtype)
    for c in range(min(hi, channels)):
        for b in range(width):
            v = x[n, c, s0 + b]
            acc[b] += v * v
    for c in range(channels):
        enter, leave = c + hi, c - lo - 1
        if enter < channels:
            for b in range(width):
                v = x[n, enter, s0 + b]
                acc[b] += v * v
        if leave >= 0:
            for b in range(width):
                v = x[n, leave, s0 + b]
                acc[b] -= v * v
        for b in range(width):
            scale[c, b] = bias + alpha_over_size * acc[b]


@pjit
def _lrn_forward(x, lo, hi, alpha_over_size, beta, bias, y):
    """x, y: (N, C, S)."""
    channels, size = x.shape[1], x.shape[2]
    blocks = (size + BLOCK - 1) // BLOCK
    for task in prange(x.shape[0] * blocks):
        n = task // blocks
        s0 = (task % blocks) * BLOCK
        s1 = min(s0 + BLOCK, size)
        scale = np.empty((channels, s1 - s0), x.dtype)
        _lrn_scale(x, n, s0, s1, lo, hi, alpha_over_size, bias, scale)
        for c in range(channels):
            for b in range(s1 - s0):
                y[n, c, s0 + b] = x[n, c, s0 + b] * scale[c, b] ** -beta


@pjit
def _lrn_backward(x, y, top_diff, lo, hi, alpha_over_size, beta, bias, coeff, bottom_diff):
    """x, y: (N, C, S); top_diff, bottom_diff: (K, N, C, S); coeff = 2·alpha·beta/size."""
    channels, size = x.shape[1], x.shape[2]
    blocks = (size + BLOCK - 1) // BLOCK
    for task in prange(x.shape[0] * blocks):
        n = task // blocks
        s0 = (task % blocks) * BLOCK
        s1 = min(s0 + BLOCK, size)
        width = s1 - s0
        scale = np.empty((channels, width), x.dtype)
        _lrn_scale(x, n, s0, s1, lo, hi, alpha_over_size, bias, scale)
        power = np.empty((channels, width), x.dtype)
        for c in range(channels):
            for b in range(width):
                power[c, b] = scale[c, b] ** -beta
        ratio = np.empty((channels, width), x.dtype)
        acc = np.empty(width, x.dtype)
        for k in range(top_diff.shape[0]):
            for c in range(channels):
                for b in range(width):
                    ratio[c, b] = top_diff[k, n, c, s0 + b] * y[n, c, s0 + b] / scale[c, b]
            # mirrored window of c: [c − hi, c + lo]
            acc[:] = 0
            for c in range(min(lo, channels)):
                for b in range(width):
                    acc[b] += ratio[c, b]
            for c in range(channels):
                enter, leave = c + lo, c - hi - 1
                if enter < channels:
                    for b in range(width):
                        acc[b] += ratio[enter, b]
                if leave >= 0:
                    for b in range(width):
                        acc[b] -= ratio[leave, b]
                for b in range(width):
                    bottom_diff[k, n, c, s0 + b] = (top_diff[k, n, c, s0 + b] * power[c, b]
                                                    - coeff * x[n, c, s0 + b] * acc[b])


def lrn_params(attrs, dtype):
    """(lo, hi, alpha/size, beta, bias): W(c) = [c − lo, c + hi]; scalars in the data's dtype."""
    if "size" not in attrs:
        raise ModelError("LRN: the required attribute 'size' is missing")
    size = int(attrs["size"])
    if size < 1:
        raise ModelError(f"LRN: size {size} must be at least 1")
    t = np.dtype(dtype).type
    return ((size - 1) // 2, size // 2, t(float(attrs.get("alpha", 1e-4)) / size),
            t(float(attrs.get("beta", 0.75))), t(float(attrs.get("bias", 1.0))))


def lrn_forward(bottom_data, attrs):
    x = bottom_data[0]
    lo, hi, alpha_over_size, beta, bias = lrn_params(attrs, x.dtype)
    x3 = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
    y = np.empty_like(x3)
    _lrn_forward(x3, lo, hi, alpha_over_size, beta, bias, y)
    return [y.reshape(x.shape)]


def lrn_backward(top_diff, bottom_data, top_data, attrs, *, out=None):
    x = bottom_data[0]
    lo, hi, alpha_over_size, beta, bias = lrn_params(attrs, x.dtype)
    g = top_diff[0]
    k = g.shape[0]
    x3 = np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)
    y3 = np.ascontiguousarray(top_data[0], dtype=x.dtype).reshape(x3.shape)
    g4 = np.ascontiguousarray(g, dtype=x.dtype).reshape((k,) + x3.shape)
    bottom_diff = out_array(out, 0, (k,) + x.shape, x.dtype).reshape(g4.shape)
    coeff = x.dtype.type(2 * float(alpha_over_size) * float(beta))
    _lrn_backward(x3, y3, g4, lo, hi, alpha_over_size, beta, bias, coeff, bottom_diff)
    return [bottom_diff.reshape((k,) + x.shape)]
