"""Gather, GatherElements, GatherND, ScatterND and ScatterElements: layers that move elements by
integer indices — ViT's class token (Gather at index 0), the dynamo exporter's lowered
``as_strided`` (Gather, ScatterND) and adaptive pooling (GatherND).

With P the map from each top position to the bottom position it reads:

    Gather          y = take(x, idx, axis)                 dx = scatter-add of dy through P
    GatherElements  y[i…] = x[… idx[i…] at axis …]          dx = scatter-add of dy through P
    GatherND        y = x[idx[…, 0], …, idx[…, m−1]]        dx = scatter-add of dy through P
                    (``batch_dims`` leading axes shared by x and idx)
    ScatterND       y = data; y[idx] = updates  (reduction none)   d data = dy, 0 where written
                                 y[idx] += updates (add)           d data = dy
                    d updates = dy gathered at idx, for both
    ScatterElements the same, with GatherElements' element indices along ``axis``

Scatter-add accumulates where an index repeats (a position read twice gets both diffs). Negative
indices count from the end. The indices are integers and take no diff; the runtime keeps them
even when computed at run time, so they need not be constants. The ``mul``, ``max`` and ``min``
scatter reductions have no backward here (no exporter writes them for a classifier) and are
refused by name. Shapes: top_diff (K, *y.shape); bottom diffs (K, *bottom.shape), fresh arrays.
"""
import numpy as np

from caffe_port.errors import ModelError

from .split import normal_axis

REDUCTIONS = ("none", "add")


def _indices(value, dim):
    idx = np.asarray(value).astype(np.int64)
    return np.where(idx < 0, idx + dim, idx)


def _scatter_add(shape, k, index, g):
    """zeros (k, *shape) with g added at [:, *index] (repeated positions accumulate)."""
    out = np.zeros((k,) + tuple(shape), dtype=g.dtype)
    np.add.at(out, (slice(None),) + tuple(index), g)
    return out


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


# --- Gather ---------------------------------------------------------------------------------------

def _gather_index(bottom_data, attrs, shape):
    axis = normal_axis(attrs.get("axis", 0), len(shape))
    return (slice(None),) * axis + (_indices(bottom_data[1], shape[axis]),)


def gather_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [x[_gather_index(bottom_data, attrs, x.shape)]]


def gather_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    if not propagate_down[0]:
        return [None, None]
    g = top_diff[0]
    shape = tuple(bottom_shapes[0])
    return [_scatter_add(shape, g.shape[0], _gather_index(bottom_data, attrs, shape), g), None]


# --- GatherElements / ScatterElements: one index per element along ``axis`` ------------------------

def _element_index(indices, attrs, shape):
    """The full index tuple of GatherElements: idx at ``axis``, the position itself elsewhere."""
    axis = normal_axis(attrs.get("axis", 0), len(shape))
    idx = _indices(indices, shape[axis])
    grid = np.indices(idx.shape, sparse=True)
    return tuple(idx if a == axis else grid[a] for a in range(len(shape)))


def gather_elements_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [x[_element_index(bottom_data[1], attrs, x.shape)]]


def gather_elements_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    if not propagate_down[0]:
        return [None, None]
    g = top_diff[0]
    shape = tuple(bottom_shapes[0])
    return [_scatter_add(shape, g.shape[0], _element_index(bottom_data[1], attrs, shape), g), None]


# --- GatherND / ScatterND: index tuples in the last axis of idx ------------------------------------

def _nd_index(indices, shape, batch_dims=0):
    """The advanced-indexing tuple of GatherND/ScatterND for a tensor of ``shape``."""
    idx = np.asarray(indices).astype(np.int64)
    m = idx.shape[-1]
    lead = idx.shape[:-1]
    batch = tuple(np.arange(shape[a]).reshape((-1,) + (1,) * (len(lead) - a - 1)) for a in range(batch_dims))
    picked = tuple(np.where(idx[..., i] < 0, idx[..., i] + shape[batch_dims + i], idx[..., i])
                   for i in range(m))
    return batch + picked


def gather_nd_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [x[_nd_index(bottom_data[1], x.shape, int(attrs.get("batch_dims", 0)))]]


def gather_nd_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    if not propagate_down[0]:
        return [None, None]
    g = top_diff[0]
    shape = tuple(bottom_shapes[0])
    index = _nd_index(bottom_data[1], shape, int(attrs.get("batch_dims", 0)))
    return [_scatter_add(shape, g.shape[0], index, g), None]


def _reduction(attrs, op_type):
    reduction = _text(attrs.get("reduction", "none"))
    if reduction not in REDUCTIONS:
        raise ModelError(f"{op_type} node {attrs.get('node_name', op_type)!r}: reduction "
                         f"{reduction!r} has no backward here (only none and add)")
    return reduction


def _scatter_forward(bottom_data, index, reduction):
    y = np.array(bottom_data[0], copy=True)
    updates = np.asarray(bottom_data[2]).astype(y.dtype, copy=False)
    if reduction == "add":
        np.add.at(y, index, updates)
    else:
        y[index] = updates
    return [y]


def _scatter_backward(g, index, reduction, propagate_down):
    pd = list(propagate_down) + [False] * 3
    full = (slice(None),) + tuple(index)
    d_data = None
    if pd[0]:
        d_data = g.copy()
        if reduction == "none":
            d_data[full] = 0                       # overwritten: data there never reaches y
    return [d_data, None, g[full] if pd[2] else None]


def scatter_nd_forward(bottom_data, attrs):
    data = bottom_data[0]
    return _scatter_forward(bottom_data, _nd_index(bottom_data[1], data.shape),
                            _reduction(attrs, "ScatterND"))


def scatter_nd_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    index = _nd_index(bottom_data[1], tuple(bottom_shapes[0]))
    return _scatter_backward(top_diff[0], index, _reduction(attrs, "ScatterND"), propagate_down)


def scatter_elements_forward(bottom_data, attrs):
    data = bottom_data[0]
    return _scatter_forward(bottom_data, _element_index(bottom_data[1], attrs, data.shape),
                            _reduction(attrs, "ScatterElements"))


def scatter_elements_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    index = _element_index(bottom_data[1], attrs, tuple(bottom_shapes[0]))
    return _scatter_backward(top_diff[0], index, _reduction(attrs, "ScatterElements"), propagate_down)
