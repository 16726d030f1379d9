"""Expand and Tile: layers that copy each element of x to several places of y.

    Expand  y = x broadcast (numpy's rules, both ways) with ``shape``
            dx = dy summed over the axes broadcasting stretched          (ViT's class token)
    Tile    y = x repeated ``repeats[i]`` times along axis i
            dx[…, j, …] = Σ_t dy[…, t·d + j, …]  along each axis of length d

The shape and repeats inputs are integers and take no diff; the backward needs only shapes.
Shapes: x (N, …) or any rank; top_diff (K, *y.shape); bottom_diff (K, *x.shape), fresh arrays.
"""
import numpy as np

from .elementwise import reduce_to


def _ints(value):
    return [int(v) for v in np.asarray(value).reshape(-1)]


def expand_forward(bottom_data, attrs):
    x = bottom_data[0]
    shape = np.broadcast_shapes(x.shape, tuple(_ints(bottom_data[1])))
    return [np.broadcast_to(x, shape).copy()]


def expand_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    if not propagate_down[0]:
        return [None, None]
    return [reduce_to(top_diff[0], bottom_shapes[0], copy=True), None]


def tile_forward(bottom_data, attrs):
    return [np.tile(bottom_data[0], _ints(bottom_data[1]))]


def tile_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    if not propagate_down[0]:
        return [None, None]
    g = top_diff[0]
    shape = tuple(bottom_shapes[0])
    repeats = _ints(bottom_data[1])
    # y's axis i of length r·d as (r, d): the copies are the r axis, summed away
    split = (g.shape[0],) + tuple(v for r, d in zip(repeats, shape) for v in (r, d))
    copies = tuple(1 + 2 * i for i in range(len(shape)))
    return [g.reshape(split).sum(axis=copies), None]
