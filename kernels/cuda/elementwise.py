"""Elementwise layers with numpy broadcasting on the device: Add, Sum, Sub, Mul, Div, Max, Min, Pow.

The rules are the CPU kernel's (kernels/elementwise.py), with g = top_diff (K, *y.shape):

    Add, Sum   ∂/∂a = g                        Sub   ∂/∂a = g,    ∂/∂b = −g
    Mul        ∂/∂a = g · b                    Div   ∂/∂a = g / b, ∂/∂b = −(g / b) · (a / b)
    Max, Min   ∂/∂a = g · [a is the first operand holding y]
    Pow        ∂/∂x = g · (p · x^(p−1)),        ∂/∂p = g · y · ln x   (0 where x ≤ 0)

then each operand's diff is summed over the axes broadcasting stretched (device.reduce_to).

One kernel, ``combine``, computes any of these products over the stacked top shape, reading up to
three operands through broadcast layouts (stride 0 along the K axis and the stretched ones), so no
operand is ever expanded in memory; batchnorm.py uses it too.
"""
import math

import numpy as np
from numba import cuda

from . import device
from .device import RANK, kernel, launch

MUL, DIV, DIV_B, POW_X, POW_P, CENTRED_MUL = 0, 1, 2, 3, 4, 5


@kernel
def _combine(g, a, a_strides, b, b_strides, c, c_strides, op, shape, count, zero, out):
    """out[i] = op(g[i], a, b, c) over the stacked top shape (K, *top), operands by their layouts."""
    for i in range(cuda.grid(1), count, cuda.gridsize(1)):
        rest = i
        ia = 0
        ib = 0
        ic = 0
        for ax in range(RANK - 1, -1, -1):
            n = shape[ax]
            index = rest % n
            rest //= n
            ia += index * a_strides[ax]
            ib += index * b_strides[ax]
            ic += index * c_strides[ax]
        gv = g[i]
        if op == MUL:
            out[i] = gv * a[ia]
        elif op == DIV:
            out[i] = gv / a[ia]
        elif op == DIV_B:                                   # −(g / b) · (a / b)
            out[i] = -((gv / b[ib]) * (a[ia] / b[ib]))
        elif op == POW_X:                                   # g · (p · x^(p − 1))
            out[i] = gv * (b[ib] * math.pow(a[ia], b[ib] - 1))
        elif op == POW_P:                                   # g · y · ln x where x > 0
            out[i] = gv * (c[ic] * math.log(a[ia])) if a[ia] > 0 else zero
        else:                                               # CENTRED_MUL: g · ((a − b) · c)
            out[i] = gv * ((a[ia] - b[ib]) * c[ic])


def combine(g, op, a, a_shape, b=None, b_shape=None, c=None, c_shape=None):
    """A new (K, *top) array: ``op`` applied to g and the operands, each a contiguous device
    array of its own shape broadcast (numpy-style) to the top shape."""
    full = tuple(g.shape)
    top = full[1:]

    def strides(shape):
        return device.layout(full, (0,) + device.broadcast_strides(shape, top))[2]

    b, b_shape = (a, a_shape) if b is None else (b, b_shape)
    c, c_shape = (a, a_shape) if c is None else (c, c_shape)
    out = device.empty(full, g.dtype)
    if out.size:
        shape = device.layout(full)[1]
        _combine[launch(out.size)](device.flat(g), device.flat(a), strides(a_shape), device.flat(b),
                                   strides(b_shape), device.flat(c), strides(c_shape), op, shape, out.size,
                                   g.dtype.type(0), device.flat(out))
    return out


def _shape(bottom_data, bottom_shapes, i):
    return tuple(bottom_shapes[i]) if bottom_data[i] is None else tuple(np.shape(bottom_data[i]))


def _operand(bottom_data, i, dtype):
    """Operand i on the device in the diff's dtype (a float64 constant must not upcast a float32
    diff), with its shape (a scalar constant is one element of shape ())."""
    x = bottom_data[i]
    return device.operand(x, dtype), tuple(np.shape(x))


# --- Add, Sum: ∂/∂a = g;  Sub: ∂/∂a = g, ∂/∂b = −g ----------------------------------------------------

def add_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    return sum_backward(top_diff, bottom_data, top_data, attrs, propagate_down=propagate_down,
                        bottom_shapes=bottom_shapes)


def sum_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    return [device.reduce_to(g, _shape(bottom_data, bottom_shapes, i)) if pd else None
            for i, pd in enumerate(propagate_down)]


def sub_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    pd = propagate_down
    db = device.scaled(device.reduce_to(g, _shape(bottom_data, bottom_shapes, 1)), -1) if pd[1] else None
    return [device.reduce_to(g, _shape(bottom_data, bottom_shapes, 0)) if pd[0] else None, db]


# --- Mul: ∂/∂a = g · b;  Div: ∂/∂a = g / b, ∂/∂b = −(g / b) · (a / b) ----------------------------------

def mul_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    pd = propagate_down
    result = [None, None]
    for i, other in ((0, 1), (1, 0)):
        if pd[i]:
            value, shape = _operand(bottom_data, other, g.dtype)
            result[i] = device.reduce_to(combine(g, MUL, value, shape), _shape(bottom_data, bottom_shapes, i))
    return result


def div_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    pd = propagate_down
    da = db = None
    if pd[0] or pd[1]:
        b, b_shape = _operand(bottom_data, 1, g.dtype)
        if pd[0]:
            da = device.reduce_to(combine(g, DIV, b, b_shape), _shape(bottom_data, bottom_shapes, 0))
        if pd[1]:
            a, a_shape = _operand(bottom_data, 0, g.dtype)
            db = device.reduce_to(combine(g, DIV_B, a, a_shape, b, b_shape), _shape(bottom_data, bottom_shapes, 1))
    return [da, db]


# --- Max, Min: the diff goes to the first operand that holds the extreme value -----------------------

@kernel
def _claim(x, x_strides, y, shape, count, one, zero, claimed, holds):
    """holds[i] = [x == y[i] and no earlier operand claimed i]; claimed[i] |= holds[i] (top shape)."""
    for i in range(cuda.grid(1), count, cuda.gridsize(1)):
        rest = i
        ix = 0
        for ax in range(RANK - 1, -1, -1):
            n = shape[ax]
            ix += (rest % n) * x_strides[ax]
            rest //= n
        if claimed[i] == 0 and x[ix] == y[i]:
            holds[i] = one
            claimed[i] = 1
        else:
            holds[i] = zero


def _extreme_backward(top_diff, bottom_data, top_data, propagate_down):
    """Every operand is compared, even those that take no diff: an earlier constant that holds y
    claims the position (Caffe's Eltwise MAX keeps the first of tied bottoms). Constants are
    compared in their own dtype, as numpy compares them."""
    g = top_diff[0]
    pd = propagate_down
    y = top_data[0]
    top = tuple(y.shape)
    claimed = device.zeros(top, np.uint8)
    last = max((i for i, p in enumerate(pd) if p), default=-1)
    bottom_diff = []
    for i, x in enumerate(bottom_data):
        if i > last:
            bottom_diff.append(None)
            continue
        # compared in its own dtype, as numpy compares a float64 constant with a float32 top
        value, shape = (x if device.is_device_array(x) else device.resident(x)), tuple(np.shape(x))
        y_cmp = device.operand(y, value.dtype)
        holds = device.empty(top, g.dtype)
        if holds.size:
            x_strides = device.layout(top, device.broadcast_strides(shape, top))[2]
            _claim[launch(holds.size)](device.flat(value), x_strides, device.flat(y_cmp), device.layout(top)[1],
                                       holds.size, g.dtype.type(1), g.dtype.type(0), device.flat(claimed),
                                       device.flat(holds))
        bottom_diff.append(device.reduce_to(combine(g, MUL, holds, top), shape) if pd[i] else None)
    return bottom_diff


def max_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    return _extreme_backward(top_diff, bottom_data, top_data, propagate_down)


def min_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    return _extreme_backward(top_diff, bottom_data, top_data, propagate_down)


# --- Pow: ∂/∂x = g · (p · x^(p−1)),  ∂/∂p = g · y · ln x ----------------------------------------------

def pow_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    """∂/∂p is taken as 0 where x ≤ 0, as on the CPU."""
    g = top_diff[0]
    pd = propagate_down
    x, x_shape = _operand(bottom_data, 0, g.dtype)
    p, p_shape = _operand(bottom_data, 1, g.dtype)
    dx = dp = None
    if pd[0]:
        dx = device.reduce_to(combine(g, POW_X, x, x_shape, p, p_shape), x_shape)
    if len(pd) > 1 and pd[1]:
        y = device.operand(top_data[0], g.dtype)
        dp = device.reduce_to(combine(g, POW_P, x, x_shape, c=y, c_shape=tuple(y.shape)), p_shape)
    return [dx, dp]
