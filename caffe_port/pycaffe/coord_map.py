"""``caffe.coord_map``: how the coordinates of one NetSpec top map onto another's, and the Crop
layer that aligns them (pycaffe's coord_map, used to crop FCN score maps to the input).

A map is (axis, a, b): output coordinate y relates to input coordinate x by y = a·x + b along
the spatial axes from ``axis`` on (None: any axis, for pointwise layers). Per layer:

    Convolution, Pooling, Im2col   a = 1/s, b = (p − (k_eff − 1)/2) / s
    Deconvolution                  a = s,   b = (k_eff − 1)/2 − p
    Crop                           a = 1,   b = −offset   (axis: the crop axis − 1)
    pointwise (PASS_THROUGH_LAYERS) (None, 1, 0)

with stride s, pad p and effective kernel k_eff = (k − 1)·dilation + 1, per spatial axis.
``coord_map_from_to(top_from, top_to)`` composes the maps back from both tops to a common
ancestor and inverts the first: a RuntimeError when they share none through spatial layers.
``crop(top_from, top_to)`` asserts a scale of 1 and a non-positive integral shift and returns
``L.Crop(top_from, top_to, crop_param=dict(axis=…, offset=[…]))``.
"""
from __future__ import annotations

import numpy as np

from caffe_port.pycaffe.net_spec import layers as L

PASS_THROUGH_LAYERS = ["AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log",
                       "LRN", "Exp", "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split",
                       "TanH", "Threshold"]
LEGACY_SPATIAL = {"pad_h", "pad_w", "kernel_h", "kernel_w", "stride_h", "stride_w"}
IDENTITY = (None, 1, 0)


class UndefinedMapException(Exception):
    """A layer type with no coordinate map (InnerProduct, …)."""


class AxisMismatchException(Exception):
    """Two maps over different axes."""


def conv_params(fn):
    """(axis, stride, effective kernel, pad) of a Convolution/Deconvolution/Im2col (from its
    convolution_param, or the settings given directly) or Pooling layer, per spatial axis."""
    settings = fn.params.get("convolution_param", fn.params)
    assert not LEGACY_SPATIAL & set(fn.params), "cropping does not support legacy _h/_w params"
    kernel = np.array(settings["kernel_size"], ndmin=1)
    dilation = np.array(settings.get("dilation", 1), ndmin=1)
    return (settings.get("axis", 1), np.array(settings.get("stride", 1), ndmin=1),
            (kernel - 1) * dilation + 1, np.array(settings.get("pad", 0), ndmin=1))


def crop_params(fn):
    """(axis, offsets) of a Crop layer, Caffe's defaults (axis 2) filled in."""
    settings = fn.params.get("crop_param", fn.params)
    return settings.get("axis", 2), np.array(settings.get("offset", 0), ndmin=1)


def coord_map(fn):
    """The map (axis, a, b) of the layer ``fn`` (a NetSpec Function)."""
    if fn.type_name in ("Convolution", "Pooling", "Im2col"):
        axis, stride, kernel, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (kernel - 1) / 2) / stride
    if fn.type_name == "Deconvolution":
        axis, stride, kernel, pad = conv_params(fn)
        return axis, stride, (kernel - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return IDENTITY
    if fn.type_name == "Crop":
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset
    raise UndefinedMapException(fn.type_name)


def compose(base_map, next_map):
    """The map of ``next_map`` followed by ``base_map``: scales multiply, the further shift is
    scaled by the base scale."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is not None and ax2 is not None and ax1 != ax2:
        raise AxisMismatchException((ax1, ax2))
    return (ax2 if ax1 is None else ax1), a1 * a2, a1 * b2 + b1


def inverse(coord_map):
    """The inverse map: y = a·x + b read as x = y/a − b/a."""
    ax, a, b = coord_map
    return ax, 1 / a, -b / a


def _mapped_bottoms(top):
    # a Crop maps only its first bottom; its second only gives the shape
    inputs = top.fn.inputs
    return inputs[:1] if top.fn.type_name == "Crop" else inputs


def _maps_back(start):
    """Yield (top, map from it to ``start``) for ``start`` and its ancestors reached through
    layers with a map."""
    maps, frontier = {start: IDENTITY}, [start]
    while frontier:
        top = frontier.pop()
        yield top, maps[top]
        try:
            step = coord_map(top.fn)
        except UndefinedMapException:
            continue
        for bottom in _mapped_bottoms(top):
            maps[bottom] = compose(maps[top], step)
            frontier.append(bottom)


def coord_map_from_to(top_from, top_to):
    """The map from ``top_from``'s coordinates to ``top_to``'s, through their common ancestor."""
    from_maps = dict(_maps_back(top_from))
    for top, to_map in _maps_back(top_to):
        if top in from_maps:
            return compose(to_map, inverse(from_maps[top]))
    raise RuntimeError("Could not compute map between tops; are they connected by spatial "
                       "layers?")


def crop(top_from, top_to):
    """A Crop layer cutting ``top_from`` to ``top_to``'s extent at the offset their map gives."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    assert (a == 1).all(), f"scale mismatch on crop (a = {a})"
    assert (b <= 0).all(), f"cannot crop negative offset (b = {b})"
    assert (np.round(b) == b).all(), f"cannot crop noninteger offset (b = {b})"
    return L.Crop(top_from, top_to,
                  crop_param=dict(axis=ax + 1, offset=list(-np.round(b).astype(int))))
