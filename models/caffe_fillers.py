"""Caffe's fillers (``include/caffe/filler.hpp``): the values a param blob or a DummyData top
starts from, given a ``FillerParameter``.

For a blob of shape (n₀, n₁, …) with count c (fan_in = c / n₀; fan_out = c / n₁, or c for a
one-axis blob):

    constant            x = value
    uniform             x ~ U(min, max)
    gaussian            x ~ N(mean, std²); with sparse = s ≥ 0 each value is kept with
                        probability s / n₀ and zeroed otherwise
    positive_unitball   x ~ U(0, 1), then each of the n₀ rows divided by its sum
    xavier              x ~ U(−a, a), a = √(3 / n)      n = fan_in (FAN_IN, the default),
    msra                x ~ N(0, 2 / n)                    fan_out (FAN_OUT) or their mean (AVERAGE)
    bilinear            (4 axes, square kernels) w[x, y] = (1 − |x/f − c|)(1 − |y/f − c|),
                        f = ⌈k/2⌉, c = (k − 1) / 2f: the upsampling kernel of a Deconvolution

Values are float32. The random draws come from the numpy Generator given (caffe.set_random_seed
seeds the pycaffe shell's); they follow Caffe's distributions, not its Boost random stream.
Caffe's checks are kept: sparse only for gaussian, bilinear only on square 4-axis blobs, and
an unknown type is refused (``ModelError``, with ``where`` naming the layer).
"""
from __future__ import annotations

import math

import numpy as np

from caffe_port.errors import ModelError

from . import caffe_proto

FILLER_TYPES = ("constant", "uniform", "gaussian", "positive_unitball", "xavier", "msra",
                "bilinear")


def constant_filler(value=0.0):
    """A ``FillerParameter`` of the constant filler (a layer's default when the prototxt names
    none: 0 for weights and biases, 1 for Scale, 0.25 for PReLU)."""
    filler = caffe_proto.FillerParameter()
    filler.type = "constant"
    filler.value = float(value)
    return filler


def is_constant(filler) -> bool:
    return filler.type == "constant"


def check_filler(filler, where):
    """Caffe's GetFiller and its checks, before any blob is filled."""
    if filler.type not in FILLER_TYPES:
        raise ModelError(f"{where}: unknown filler type {filler.type!r} (Caffe's: "
                         f"{', '.join(FILLER_TYPES)})")
    if filler.sparse != -1 and filler.type != "gaussian":
        raise ModelError(f"{where}: sparsity is supported by the gaussian filler only, not "
                         f"{filler.type!r}")
    if filler.sparse < -1:
        raise ModelError(f"{where}: sparse must be ≥ −1, got {filler.sparse}")


def _fans(shape):
    count = int(np.prod(shape, dtype=np.int64))
    fan_in = count // shape[0] if shape else count
    fan_out = count // shape[1] if len(shape) > 1 else count
    return fan_in, fan_out


def _variance_scale(filler, shape):
    """The n of xavier and msra: fan_in, fan_out or their average (VarianceNorm)."""
    fan_in, fan_out = _fans(shape)
    norm = caffe_proto.FillerParameter.VarianceNorm.Name(filler.variance_norm)
    if norm == "AVERAGE":
        return (fan_in + fan_out) / 2.0
    return float(fan_out if norm == "FAN_OUT" else fan_in)


def _bilinear(shape, where):
    if len(shape) != 4:
        raise ModelError(f"{where}: the bilinear filler needs a 4-axis blob, got shape {shape}")
    height, width = shape[2], shape[3]
    if height != width:
        raise ModelError(f"{where}: the bilinear filler needs a square kernel, got "
                         f"{height}×{width}")
    f = math.ceil(width / 2.0)
    c = (width - 1) / (2.0 * f)
    ramp = 1 - np.abs(np.arange(width) / f - c)
    return np.broadcast_to(np.outer(ramp, ramp), shape)


def fill(filler, shape, rng, where="filler") -> np.ndarray:
    """A float32 array of ``shape`` filled as Caffe's filler ``filler`` fills a blob."""
    check_filler(filler, where)
    shape = tuple(int(d) for d in shape)
    kind = filler.type
    if kind == "constant":
        return np.full(shape, filler.value, dtype=np.float32)
    if kind == "uniform":
        values = rng.uniform(filler.min, filler.max, shape)
    elif kind == "gaussian":
        values = rng.normal(filler.mean, filler.std, shape)
        if filler.sparse >= 0:
            rows = shape[0] if shape else 1
            values *= rng.random(shape) < filler.sparse / rows
    elif kind == "positive_unitball":
        values = rng.uniform(0.0, 1.0, shape)
        rows = values.reshape(shape[0] if shape else 1, -1)
        rows /= rows.sum(axis=1, keepdims=True)
    elif kind == "xavier":
        scale = math.sqrt(3.0 / _variance_scale(filler, shape))
        values = rng.uniform(-scale, scale, shape)
    elif kind == "msra":
        values = rng.normal(0.0, math.sqrt(2.0 / _variance_scale(filler, shape)), shape)
    else:
        values = _bilinear(shape, where)
    return np.asarray(values, dtype=np.float32)
