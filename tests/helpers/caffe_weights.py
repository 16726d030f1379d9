"""Seeded Caffe weights for tests: a real ``.caffemodel`` written for a prototxt
(``write_seeded_caffemodel``), or {layer: arrays} (``seeded_weights``) and the caffemodel
NetParameter that carries them (``caffemodel``)."""
from __future__ import annotations

import math

import numpy as np

from caffe_port.models import caffe_io, caffe_proto
from caffe_port.models.caffe_net import caffe_param_shapes


def _net_param(prototxt):
    """A prototxt path, or a NetParameter as it is."""
    return prototxt if hasattr(prototxt, "DESCRIPTOR") else caffe_io.read_prototxt(prototxt)


def write_seeded_caffemodel(prototxt, caffemodel, seed=0, first_gain=1.0):
    """Write a real ``.caffemodel`` for ``prototxt`` with seeded random weights (tests without
    downloads): He-scaled filters, small biases, BatchNorm sums with scale factor 4 (positive
    variances), Scale around 1. ``first_gain`` scales the first layer's weights (1/64 keeps the
    scores of 0–255 images near 1)."""
    rng = np.random.default_rng(seed)
    net = _net_param(prototxt)
    types = {layer.name: layer.type for layer in caffe_io.upgrade_net(net).layer}
    model = caffe_proto.NetParameter()
    model.name = net.name
    for layer, shapes in caffe_param_shapes(prototxt).items():
        entry = model.layer.add()
        entry.name, entry.type = layer, types[layer]
        for i, shape in enumerate(shapes):
            if types[layer] == "BatchNorm":
                value = [rng.normal(0, 0.2, shape) * 4, rng.uniform(0.5, 1.5, shape) * 4,
                         np.full(shape, 4.0)][i]
            elif types[layer] == "Scale":
                value = rng.uniform(0.5, 1.5, shape) if i == 0 else rng.normal(0, 0.1, shape)
            elif i == 0:
                value = rng.normal(0, math.sqrt(2.0 / max(1, int(np.prod(shape[1:])))), shape)
                value *= first_gain if len(model.layer) == 1 else 1.0
            else:
                value = rng.normal(0, 0.1, shape)
            entry.blobs.append(caffe_io.array_to_blob(np.asarray(value, np.float32)))
    caffe_io.write_caffemodel(model, caffemodel)


def seeded_weights(prototxt, rng, overrides=None):
    """{layer: [float32 arrays]} in the shapes the prototxt asks for, He-scaled normal values
    (BatchNorm: a mean sum, a positive variance sum and a scale factor 1.7)."""
    net = _net_param(prototxt)
    types = {layer.name: layer.type for layer in caffe_io.upgrade_net(net).layer}
    weights = {}
    for name, shapes in caffe_param_shapes(net).items():
        if types[name] == "BatchNorm":
            weights[name] = [rng.standard_normal(shapes[0]).astype(np.float32),
                             rng.uniform(0.5, 2.0, shapes[1]).astype(np.float32),
                             np.float32([1.7])]
            continue
        arrays = []
        for shape in shapes:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            arrays.append((rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32))
        weights[name] = arrays
    weights.update(overrides or {})
    return weights


def caffemodel(net, weights, *, v1=False):
    """A caffemodel NetParameter: the net with each layer's blobs filled in (``v1``: downgraded
    to the V1 ``layers`` format with legacy 4-D blobs)."""
    model = caffe_io.upgrade_net(net)
    for layer in model.layer:
        for array in weights.get(layer.name, []):
            layer.blobs.append(caffe_io.array_to_blob(array))
    return caffe_io.downgrade_to_v1(model) if v1 else model
