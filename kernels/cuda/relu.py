"""The ReLU family on the device: Relu, LeakyRelu, PRelu, Clip — and the three backward rules.

The rules are the CPU kernel's (kernels/relu.py), with f'(x) the layer's local derivative:

    backprop   bottom_diff = top_diff · f'(x)
    deconvnet  bottom_diff = max(top_diff, 0)
    guided     bottom_diff = max(top_diff, 0) · f'(x)

One kernel serves the four layers: a thread per element i of x computes f'(x_i) from the kept
tensor (Relu: [y > 0]; LeakyRelu: 1 or alpha from x; PRelu: 1 or the broadcast slope from x;
Clip: [lo < y < hi]) and applies the rule to all K stacked diffs. Shapes: x (N, ...); top_diff
and bottom_diff (K, N, ...), device arrays.
"""
import numpy as np
from numba import cuda

from caffe_port.kernels.relu import clip_bounds, leaky_alpha, rule_code

from . import device
from .device import kernel, launch

RELU, LEAKY, PRELU, CLIP = 0, 1, 2, 3


@kernel
def _rule_backward(top_diff, value, kind, alpha, slopes, lo, hi, rule, stack, one, zero, bottom_diff):
    """top_diff, bottom_diff: (K·M,) flat; value, slopes: (M,). f'(value) by ``kind``, then the rule."""
    size = value.size
    for i in range(cuda.grid(1), size, cuda.gridsize(1)):
        v = value[i]
        if kind == RELU:
            slope = one if v > 0 else zero
        elif kind == LEAKY:
            slope = one if v > 0 else alpha
        elif kind == PRELU:
            slope = one if v > 0 else slopes[i]
        else:
            slope = one if lo < v < hi else zero
        for k in range(stack):
            g = top_diff[k * size + i]
            if rule == 0:                                   # backprop
                bottom_diff[k * size + i] = g * slope
            elif rule == 1:                                 # deconvnet
                bottom_diff[k * size + i] = g if g > 0 else zero
            else:                                           # guided
                bottom_diff[k * size + i] = g * slope if g > 0 else zero


def _backward(top_diff, value, kind, rule, in_place, alpha=0.0, slopes=None, lo=-np.inf, hi=np.inf):
    code = rule_code(rule)
    dtype = top_diff.dtype
    value = device.operand(value, dtype)
    # in place as Caffe's ReLU: each thread reads its element of the top diff before writing it
    bottom_diff = top_diff if in_place else device.empty(top_diff.shape, dtype)
    if slopes is None:
        slopes = value          # unread placeholder: every launch takes the same argument types
    if value.size:
        _rule_backward[launch(value.size)](device.flat(top_diff), device.flat(value), kind,
                                           dtype.type(alpha), device.flat(slopes), float(lo), float(hi),
                                           code, top_diff.shape[0], dtype.type(1), dtype.type(0),
                                           device.flat(bottom_diff))
    return bottom_diff


def relu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    """f'(x) = [y > 0]: the kept top serves as the mask."""
    return [_backward(top_diff[0], top_data[0], RELU, rule, in_place)]


def leaky_relu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    """f'(x) = 1 where x > 0, else alpha."""
    return [_backward(top_diff[0], bottom_data[0], LEAKY, rule, in_place, alpha=leaky_alpha(attrs))]


def prelu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    """f'(x) = 1 where x > 0, else the slope broadcast to x's shape (unidirectionally)."""
    g, x, slope = top_diff[0], bottom_data[0], bottom_data[1]
    slope = device.operand(slope, g.dtype)
    full = device.broadcast_to(slope, tuple(slope.shape), tuple(x.shape))
    return [_backward(g, x, PRELU, rule, in_place, slopes=full)] + [None] * (len(bottom_data) - 1)


def clip_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    """f'(x) = [lo < y < hi]; bounds from the attributes (opset < 11) or constant inputs."""
    # bounds computed in the graph arrive on the device: two scalars, read on the host
    bounds = [None if b is None else device.to_host(b) for b in bottom_data[1:]]
    lo, hi = clip_bounds([None] + bounds, attrs)
    return [_backward(top_diff[0], top_data[0], CLIP, rule, in_place, lo=lo, hi=hi)] + [None] * (len(bottom_data) - 1)
