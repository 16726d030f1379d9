"""The ReLU family: Relu, LeakyRelu, PRelu, Clip (ReLU6) — and the three backward rules.

With f the layer's nonlinearity and f'(x) its local derivative (for Relu the mask [x > 0]),
the rule chosen for the whole backward pass decides what flows to the bottom:

    backprop   bottom_diff = top_diff · f'(x)              (the true gradient)
    deconvnet  bottom_diff = max(top_diff, 0)              (Zeiler & Fergus: rectify the signal)
    guided     bottom_diff = max(top_diff, 0) · f'(x)      (Springenberg et al.: both gates)

Simonyan et al. (2013, §4) show these are the *only* places where a deconvnet reconstruction and
back-propagation differ. Shapes: x is (N, ...), top_diff and bottom_diff are (K, N, ...).

As in Caffe, where ReLU runs in place, the bottom diff is written over the top diff when the
walker says no one else holds it (the ``in_place`` control): no new buffer per layer; otherwise
into the walk's ``out`` memory when it gives some.
"""
import numpy as np

from .jit import pjit, prange
from .registry import out_array

RULES = {"backprop": 0, "deconvnet": 1, "guided": 2}


@pjit
def _relu_rules(top_diff, top_data, rule, bottom_diff):
    """The three rules for Relu. top_diff, bottom_diff: (K, M); top_data: (M,), y = max(x, 0),
    so [x > 0] = [y > 0]. (One loop per rule: a rule test inside the loop costs 15× here.)"""
    for k in range(top_diff.shape[0]):
        g, out = top_diff[k], bottom_diff[k]
        if rule == 0:                                   # backprop:  g · [x > 0]
            for i in prange(g.size):
                out[i] = g[i] if top_data[i] > 0 else 0.0
        elif rule == 1:                                 # deconvnet: max(g, 0)
            for i in prange(g.size):
                out[i] = g[i] if g[i] > 0 else 0.0
        else:                                           # guided:    max(g, 0) · [x > 0]
            for i in prange(g.size):
                out[i] = g[i] if top_data[i] > 0 and g[i] > 0 else 0.0


@pjit
def _clip_rules(top_diff, top_data, lo, hi, rule, bottom_diff):
    """The three rules for Clip: as ``_relu_rules`` with the mask [lo < y < hi] (y = clip(x), so
    [lo < x < hi] = [lo < y < hi]), read off the kept top in the loop rather than built first."""
    for k in range(top_diff.shape[0]):
        g, out = top_diff[k], bottom_diff[k]
        if rule == 0:                                   # backprop:  g · [lo < y < hi]
            for i in prange(g.size):
                out[i] = g[i] if lo < top_data[i] < hi else 0.0
        elif rule == 1:                                 # deconvnet: max(g, 0)
            for i in prange(g.size):
                out[i] = g[i] if g[i] > 0 else 0.0
        else:                                           # guided:    max(g, 0) · [lo < y < hi]
            for i in prange(g.size):
                out[i] = g[i] if lo < top_data[i] < hi and g[i] > 0 else 0.0


@pjit
def _apply_rule(top_diff, slope, rule, bottom_diff):
    """Any ReLU-family op, with slope (M,) holding f'(x); top_diff, bottom_diff: (K, M)."""
    for k in range(top_diff.shape[0]):
        g, out = top_diff[k], bottom_diff[k]
        if rule == 0:                                   # backprop
            for i in prange(g.size):
                out[i] = g[i] * slope[i]
        elif rule == 1:                                 # deconvnet
            for i in prange(g.size):
                out[i] = g[i] if g[i] > 0 else 0.0
        else:                                           # guided
            for i in prange(g.size):
                out[i] = g[i] * slope[i] if g[i] > 0 else 0.0


def rule_code(rule):
    """The rule's name → its number in the loops above (ValueError naming the choices)."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    return RULES[rule]


def _output_for(g, shape, in_place, out):
    """Where the (K, M) bottom diff goes: over ``g`` in place, else the walk's ``out`` memory for
    the (K, *x) diff of shape ``shape``, else a new array."""
    return g if in_place else out_array(out, 0, shape, g.dtype).reshape(g.shape)


def rule_backward(top_diff, slope, rule, in_place, out=None):
    """Apply ``rule`` with local derivative ``slope`` (broadcastable to x) to (K, *x) diffs: the
    backward of any ReLU-like layer once its f'(x) is known (kernels/rectifiers.py uses it too)."""
    code = rule_code(rule)
    shape = top_diff.shape
    slope = np.ascontiguousarray(np.broadcast_to(slope, shape[1:]), dtype=top_diff.dtype).reshape(-1)
    g = np.ascontiguousarray(top_diff).reshape(shape[0], -1)
    bottom_diff = _output_for(g, shape, in_place, out)
    _apply_rule(g, slope, code, bottom_diff)
    return bottom_diff.reshape(shape)


# --- Relu: y = max(x, 0);  f'(x) = [x > 0] = [y > 0], so the kept top serves as the mask -----------

def relu_forward(bottom_data, attrs):
    return [np.maximum(bottom_data[0], 0)]


def relu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False, out=None):
    g, y = top_diff[0], top_data[0]
    g2 = np.ascontiguousarray(g).reshape(g.shape[0], -1)
    bottom_diff = _output_for(g2, g.shape, in_place, out)
    _relu_rules(g2, np.ascontiguousarray(y, dtype=g.dtype).reshape(-1), rule_code(rule), bottom_diff)
    return [bottom_diff.reshape(g.shape)]


# --- LeakyRelu: y = x if x > 0 else alpha·x;  f'(x) = 1 or alpha -------------------------------------

def leaky_alpha(attrs):
    return float(attrs.get("alpha", 0.01))


def leaky_relu_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [np.where(x > 0, x, x * x.dtype.type(leaky_alpha(attrs)))]


def leaky_relu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False,
                        out=None):
    x = bottom_data[0]
    slope = np.where(x > 0, x.dtype.type(1), x.dtype.type(leaky_alpha(attrs)))
    return [rule_backward(top_diff[0], slope, rule, in_place, out)]


# --- PRelu: y = x if x > 0 else slope·x, slope a (per-channel) tensor; f'(x) = 1 or slope -----------

def prelu_forward(bottom_data, attrs):
    x, slope = bottom_data[0], bottom_data[1].astype(bottom_data[0].dtype)
    return [np.where(x > 0, x, x * slope)]


def prelu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False,
                   out=None):
    x, slope = bottom_data[0], bottom_data[1].astype(bottom_data[0].dtype)
    local = np.where(x > 0, x.dtype.type(1), slope)
    return [rule_backward(top_diff[0], local, rule, in_place, out)] + [None] * (len(bottom_data) - 1)


# --- Clip (ReLU6 when min=0, max=6): y = min(max(x, lo), hi);  f'(x) = [lo < x < hi] = [lo < y < hi] --

def clip_bounds(bottom_data, attrs):
    """Opset < 11 gives the bounds as attributes, later opsets as optional constant inputs."""
    lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    if len(bottom_data) > 1 and bottom_data[1] is not None:
        lo = float(np.asarray(bottom_data[1]))
    if len(bottom_data) > 2 and bottom_data[2] is not None:
        hi = float(np.asarray(bottom_data[2]))
    return lo, hi


def clip_forward(bottom_data, attrs):
    lo, hi = clip_bounds(bottom_data, attrs)
    return [np.clip(bottom_data[0], lo, hi)]


def clip_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False,
                  out=None):
    lo, hi = clip_bounds(bottom_data, attrs)
    g, y = top_diff[0], top_data[0]
    g2 = np.ascontiguousarray(g).reshape(g.shape[0], -1)
    bottom_diff = _output_for(g2, g.shape, in_place, out)
    _clip_rules(g2, np.ascontiguousarray(y, dtype=g.dtype).reshape(-1), g.dtype.type(lo), g.dtype.type(hi),
                rule_code(rule), bottom_diff)
    return [bottom_diff.reshape(g.shape)] + [None] * (len(bottom_data) - 1)
