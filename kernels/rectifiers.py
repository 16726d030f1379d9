"""Smooth and piecewise rectifiers: HardSwish, Elu, Selu, Celu, Gelu, Softplus, Mish and
ThresholdedRelu — the layers today's classifiers put where Caffe's nets had ReLU.

Each is ≈ x for large x and ≈ 0 (or a bounded negative value) for very negative x, so each plays
the ReLU's part in the network, and each honours the three rules of ``kernels/relu.py`` with its
own local derivative f'(x):

    backprop   bottom_diff = top_diff · f'(x)
    deconvnet  bottom_diff = max(top_diff, 0)
    guided     bottom_diff = max(top_diff, 0) · f'(x)

Under deconvnet a net with GELUs then rectifies the signal where a ReLU net would; without the
rules it would give the plain gradient under another name. Where f' is negative (GELU below
x ≈ −0.75, Mish below x ≈ −1.2, HardSwish between −3 and −1.5) the guided rule keeps that sign:
it gates the signal, it does not rectify the derivative. Gates that are not rectifiers (Sigmoid,
HardSigmoid, Tanh, Erf) compute the true gradient under every rule. A rectifier an exporter writes
as several nodes (TorchScript's GELU as Div, Erf, Add, Mul; SiLU as Sigmoid and Mul) is a product
of layers, not one, and gets the true gradient: only a single node can be told apart from the
others.

    HardSwish        y = x · max(0, min(1, x/6 + ½))       f' = 0 (x < −3), x/3 + ½, 1 (x > 3)
    Elu (α = 1)      y = x (x > 0), α(eˣ − 1)               f' = 1, α·eˣ
    Selu (α, γ)      y = γx (x > 0), γα(eˣ − 1)             f' = γ, γα·eˣ
    Celu (α = 1)     y = max(0, x) + min(0, α(e^{x/α} − 1))  f' = 1, e^{x/α}
    Gelu             y = x·Φ(x) = ½x(1 + erf(x/√2))         f' = Φ(x) + x·φ(x)
      (tanh approx.) y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³)
                                                           f' = ½(1 + tanh u) + ½x(1 − tanh²u)·u'
    Softplus         y = ln(1 + eˣ)                         f' = σ(x)
    Mish             y = x·tanh(softplus x)                 f' = t + x·σ(x)·(1 − t²), t = tanh(softplus x)
    ThresholdedRelu  y = x (x > α), 0 (α = 1)               f' = [x > α]

The backward reads the bottom x (none of these is invertible from y alone on all of R). Shapes:
x (N, ...); top_diff and bottom_diff (K, N, ...); in place over top_diff when the walker allows.
"""
import math

import numpy as np

from caffe_port.errors import ModelError

from .jit import pjit, prange
from .relu import rule_backward

SELU_ALPHA = 1.67326319217681884765625      # ONNX's defaults, exact in float32
SELU_GAMMA = 1.05070102214813232421875
GELU_TANH_C = math.sqrt(2.0 / math.pi)


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _backward(top_diff, slope, rule, in_place):
    return [rule_backward(top_diff[0], slope, rule, in_place)]


def _sigmoid(x):
    # written from exp(−|x|), which never overflows
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


# --- HardSwish ------------------------------------------------------------------------------------

def hard_swish_forward(bottom_data, attrs):
    x = bottom_data[0]
    t = x.dtype.type
    return [x * np.clip(x / t(6) + t(0.5), 0, 1)]


def hard_swish_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    x = bottom_data[0]
    t = x.dtype.type
    slope = np.where(x < -3, t(0), np.where(x > 3, t(1), x / t(3) + t(0.5)))
    return _backward(top_diff, slope, rule, in_place)


# --- Elu, Selu, Celu ------------------------------------------------------------------------------

def _alpha(attrs, default=1.0):
    return float(attrs.get("alpha", default))


def elu_forward(bottom_data, attrs):
    x = bottom_data[0]
    a = x.dtype.type(_alpha(attrs))
    return [np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))]


def elu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    x = bottom_data[0]
    a = x.dtype.type(_alpha(attrs))
    return _backward(top_diff, np.where(x > 0, x.dtype.type(1), a * np.exp(np.minimum(x, 0))), rule, in_place)


def _selu_constants(attrs, dtype):
    return dtype.type(_alpha(attrs, SELU_ALPHA)), dtype.type(float(attrs.get("gamma", SELU_GAMMA)))


def selu_forward(bottom_data, attrs):
    x = bottom_data[0]
    a, g = _selu_constants(attrs, x.dtype)
    return [g * np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))]


def selu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    x = bottom_data[0]
    a, g = _selu_constants(attrs, x.dtype)
    return _backward(top_diff, g * np.where(x > 0, x.dtype.type(1), a * np.exp(np.minimum(x, 0))),
                     rule, in_place)


def celu_forward(bottom_data, attrs):
    x = bottom_data[0]
    a = x.dtype.type(_alpha(attrs))
    return [np.maximum(x, 0) + np.minimum(0, a * np.expm1(np.minimum(x, 0) / a))]


def celu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    x = bottom_data[0]
    a = x.dtype.type(_alpha(attrs))
    return _backward(top_diff, np.where(x > 0, x.dtype.type(1), np.exp(np.minimum(x, 0) / a)), rule, in_place)


# --- Gelu: erf in a Numba loop (numpy has none), in float64 whatever x's type -----------------------

@pjit
def _gelu(x, tanh_approximation, y, slope):
    """x, y, slope: (M,). y = x·Φ(x) and slope = f'(x), or the tanh approximation's."""
    for i in prange(x.size):
        v = np.float64(x[i])
        if tanh_approximation:
            u = GELU_TANH_C * (v + 0.044715 * v * v * v)
            t = math.tanh(u)
            y[i] = 0.5 * v * (1.0 + t)
            slope[i] = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_TANH_C * (1.0 + 3 * 0.044715 * v * v)
        else:
            cdf = 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))
            y[i] = v * cdf
            slope[i] = cdf + v * math.exp(-0.5 * v * v) / math.sqrt(2.0 * math.pi)


def _gelu_values(x, attrs):
    approximate = _text(attrs.get("approximate", "none"))
    if approximate not in ("none", "tanh"):
        raise ModelError(f"Gelu node {attrs.get('node_name', 'Gelu')!r}: unknown approximate "
                         f"{approximate!r} (none or tanh)")
    flat = np.ascontiguousarray(x).reshape(-1)
    y, slope = np.empty_like(flat), np.empty_like(flat)
    _gelu(flat, approximate == "tanh", y, slope)
    return y.reshape(x.shape), slope.reshape(x.shape)


def gelu_forward(bottom_data, attrs):
    return [_gelu_values(bottom_data[0], attrs)[0]]


def gelu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    return _backward(top_diff, _gelu_values(bottom_data[0], attrs)[1], rule, in_place)


# --- Softplus, Mish -------------------------------------------------------------------------------

def softplus_forward(bottom_data, attrs):
    return [_softplus(bottom_data[0])]


def softplus_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    return _backward(top_diff, _sigmoid(bottom_data[0]), rule, in_place)


def mish_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [x * np.tanh(_softplus(x))]


def mish_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    x = bottom_data[0]
    t = np.tanh(_softplus(x))
    return _backward(top_diff, t + x * _sigmoid(x) * (1 - t * t), rule, in_place)


# --- ThresholdedRelu ------------------------------------------------------------------------------

def thresholded_relu_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [np.where(x > _alpha(attrs), x, x.dtype.type(0))]


def thresholded_relu_backward(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
    x = bottom_data[0]
    return _backward(top_diff, x > _alpha(attrs), rule, in_place)
