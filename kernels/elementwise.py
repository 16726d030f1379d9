"""Elementwise layers with numpy (multidirectional) broadcasting: Add, Sum, Sub, Mul, Div, Max,
Min, Pow — Caffe's Eltwise (SUM, PROD, MAX) and Bias/Scale layers in ONNX dress.

With y = f(a, b, …) computed on the broadcast shape and g = top_diff (K, *y.shape):

    Add, Sum   ∂/∂a = g                        Sub   ∂/∂a = g,    ∂/∂b = −g
    Mul        ∂/∂a = g · b                    Div   ∂/∂a = g / b, ∂/∂b = −g · a / b²
    Max, Min   ∂/∂a = g · [a is the first operand holding y]   (Caffe's Eltwise MAX: ties → first)
    Pow        ∂/∂x = g · p · x^(p−1),         ∂/∂p = g · y · ln x   (0 where x ≤ 0)

then each operand's diff is summed over the axes broadcasting stretched, back to (K, *a.shape).
Opset < 7 ``broadcast``/``axis`` attributes are upgraded before a model reaches these kernels.
Every returned diff is a fresh array (never a view of top_diff), so the walker may accumulate into
it in place; dtypes follow top_diff (float32 stays float32).
"""
import numpy as np

from .registry import out_array


def reduce_to(diff, shape, copy=False, into=None):
    """(K, *top_shape) → (K, *shape): sum over the axes that broadcasting stretched.

    ``copy``: when nothing is summed the result would be ``diff`` itself; copy it then, so a diff
    handed to one operand is never the same memory as top_diff or another operand's diff.
    ``into``: the walk's memory for the result (the ``out`` control), or None.
    """
    shape = tuple(shape)
    lead = diff.ndim - 1 - len(shape)          # axes numpy prepended to the operand
    stretched = tuple(range(1, 1 + lead)) + tuple(
        1 + lead + i for i, s in enumerate(shape) if s == 1 and diff.shape[1 + lead + i] != 1)
    target = (diff.shape[0],) + shape
    memory = None if into is None else out_array([into], 0, target, diff.dtype)
    if stretched:
        if memory is None:
            return diff.sum(axis=stretched).reshape(target)
        kept = tuple(n for i, n in enumerate(diff.shape) if i not in stretched)
        np.sum(diff, axis=stretched, out=memory.reshape(kept))
        return memory
    out = diff.reshape(target)
    if memory is not None:
        np.copyto(memory, out)
        return memory
    return out.copy() if copy else out


def _shape(bottom_data, bottom_shapes, i):
    return tuple(bottom_shapes[i]) if bottom_data[i] is None else bottom_data[i].shape


def _operand(bottom_data, i, dtype):
    """Operand i in the diff's dtype: a float64 constant must not upcast a float32 diff."""
    return np.asarray(bottom_data[i]).astype(dtype, copy=False)


# --- Add, Sum: y = a + b (+ …);  ∂/∂a = g ---------------------------------------------------------

def add_forward(bottom_data, attrs):
    return [bottom_data[0] + bottom_data[1]]


def add_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes, out=None):
    return sum_backward(top_diff, bottom_data, top_data, attrs, propagate_down=propagate_down,
                        bottom_shapes=bottom_shapes, out=out)


def sum_forward(bottom_data, attrs):
    top = bottom_data[0]
    for b in bottom_data[1:]:
        top = top + b
    return [top]


def sum_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes, out=None):
    g = top_diff[0]
    return [reduce_to(g, _shape(bottom_data, bottom_shapes, i), copy=True, into=out[i] if out else None)
            if pd else None for i, pd in enumerate(propagate_down)]


# --- Sub: y = a − b;  ∂/∂a = g, ∂/∂b = −g ---------------------------------------------------------

def sub_forward(bottom_data, attrs):
    return [bottom_data[0] - bottom_data[1]]


def sub_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    pd = propagate_down
    return [reduce_to(g, _shape(bottom_data, bottom_shapes, 0), copy=True) if pd[0] else None,
            -reduce_to(g, _shape(bottom_data, bottom_shapes, 1)) if pd[1] else None]


# --- Mul: y = a · b;  ∂/∂a = g · b, ∂/∂b = g · a --------------------------------------------------

def mul_forward(bottom_data, attrs):
    return [bottom_data[0] * bottom_data[1]]


def mul_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    pd = propagate_down
    return [reduce_to(g * _operand(bottom_data, 1, g.dtype), _shape(bottom_data, bottom_shapes, 0))
            if pd[0] else None,
            reduce_to(g * _operand(bottom_data, 0, g.dtype), _shape(bottom_data, bottom_shapes, 1))
            if pd[1] else None]


# --- Div: y = a / b;  ∂/∂a = g / b, ∂/∂b = −g · a / b² --------------------------------------------

def div_forward(bottom_data, attrs):
    return [bottom_data[0] / bottom_data[1]]


def div_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    pd = propagate_down
    da = db = None
    if pd[0] or pd[1]:
        b = _operand(bottom_data, 1, g.dtype)
        g_over_b = g / b
        if pd[0]:
            da = reduce_to(g_over_b, _shape(bottom_data, bottom_shapes, 0))
        if pd[1]:
            a = _operand(bottom_data, 0, g.dtype)
            db = reduce_to(-(g_over_b * (a / b)), _shape(bottom_data, bottom_shapes, 1))
    return [da, db]


# --- Max, Min: the diff goes to the first operand that holds the extreme value --------------------

def _extreme_backward(top_diff, bottom_data, top_data, propagate_down):
    """g · [x_i == y and no earlier x_j == y], each summed back to x_i's shape.

    Every operand is compared, even those that take no diff: an earlier constant that holds y
    claims the position (Caffe's Eltwise MAX keeps the first of tied bottoms).
    """
    g, y = top_diff[0], top_data[0]
    pd = propagate_down
    claimed = np.zeros(y.shape, dtype=bool)
    bottom_diff = []
    last = max((i for i, p in enumerate(pd) if p), default=-1)
    for i, x in enumerate(bottom_data):
        if i > last:                           # no later operand takes a diff: stop comparing
            bottom_diff.append(None)
            continue
        holds = np.asarray(x) == y
        holds = holds & ~claimed
        claimed |= holds
        bottom_diff.append(reduce_to(g * holds, np.shape(x)).astype(g.dtype, copy=False)
                           if pd[i] else None)
    return bottom_diff


def max_forward(bottom_data, attrs):
    top = bottom_data[0]
    for b in bottom_data[1:]:
        top = np.maximum(top, b)
    return [top]


def max_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    return _extreme_backward(top_diff, bottom_data, top_data, propagate_down)


def min_forward(bottom_data, attrs):
    top = bottom_data[0]
    for b in bottom_data[1:]:
        top = np.minimum(top, b)
    return [top]


def min_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    return _extreme_backward(top_diff, bottom_data, top_data, propagate_down)


# --- Pow: y = x^p;  ∂/∂x = g · p · x^(p−1),  ∂/∂p = g · y · ln x ----------------------------------

def pow_forward(bottom_data, attrs):
    x = bottom_data[0]
    # ONNX Pow (opset ≥ 12) allows an integer exponent; the result keeps the base's type
    return [np.power(x, np.asarray(bottom_data[1]).astype(x.dtype, copy=False))]


def pow_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    """∂/∂p is taken as 0 where x ≤ 0: x^p has no real derivative in p there (and x^p·ln x → 0
    as x → 0⁺ for p > 0)."""
    g = top_diff[0]
    pd = propagate_down
    x = _operand(bottom_data, 0, g.dtype)
    p = _operand(bottom_data, 1, g.dtype)
    dx = dp = None
    if pd[0]:
        dx = reduce_to(g * (p * np.power(x, p - 1)), x.shape)
    if len(pd) > 1 and pd[1]:
        y = np.asarray(top_data[0]).astype(g.dtype, copy=False)
        positive = x > 0
        log_x = np.log(np.where(positive, x, 1))
        dp = reduce_to(g * np.where(positive, y * log_x, 0), np.shape(bottom_data[1]))
    return [dx, dp]
