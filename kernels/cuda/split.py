"""Split and Slice backward on the device: each top diff is put back where its top came from.

    Split   bottom_diff = concat(top_diff_j, axis + 1)    (zeros for a top that got no diff)
    Slice   bottom_diff = 0; bottom_diff[:, slices] = top_diff

The sizes and the slice index are resolved by the CPU kernel's functions (kernels/split.py); the
copies are device.copy_layout, a Slice's negative steps becoming negative strides.
"""

from caffe_port.kernels.split import normal_axis, slice_index, split_sizes

from . import device
from .concat import window


def _host(bottom_data):
    """Sizes, starts, ends, axes, steps: integer side inputs, on the host (constants already are)."""
    return [b if i == 0 or b is None else device.to_host(b) for i, b in enumerate(bottom_data)]


def split_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    pd = propagate_down
    given = [g for g in top_diff if g is not None]
    if not pd[0] or not given:
        return [None] * len(pd)
    shape = tuple(bottom_shapes[0])
    axis = normal_axis(attrs.get("axis", 0), len(shape))
    sizes = split_sizes(_host(bottom_data), attrs, shape[axis], len(top_diff))
    k, dtype = given[0].shape[0], given[0].dtype
    full = (k,) + shape
    bottom_diff = device.empty(full, dtype) if all(g is not None for g in top_diff) else device.zeros(full, dtype)
    offset = 0
    for g, width in zip(top_diff, sizes):
        if g is not None and width:
            piece = (k,) + shape[:axis] + (width,) + shape[axis + 1:]
            device.copy_layout(g, device.layout(piece), bottom_diff, window(full, axis + 1, offset, width))
        offset += width
    return [bottom_diff] + [None] * (len(pd) - 1)


def slice_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g, pd = top_diff[0], propagate_down
    if not pd[0]:
        return [None] * len(pd)
    shape = tuple(bottom_shapes[0])
    full = (g.shape[0],) + shape
    index = slice_index(_host(bottom_data), attrs, shape)
    strides = device.contiguous_strides(full)
    offset, steps, extents = 0, [strides[0]], [g.shape[0]]
    for axis, (s, n) in enumerate(zip(index, shape)):
        positions = range(*s.indices(n))
        offset += (positions.start if len(positions) else 0) * strides[axis + 1]
        steps.append(positions.step * strides[axis + 1])
        extents.append(len(positions))
    bottom_diff = device.zeros(full, g.dtype)
    if tuple(extents) != tuple(g.shape):
        raise ValueError(f"Slice node {attrs.get('node_name', 'Slice')!r}: top diff {tuple(g.shape)} "
                         f"does not fit the slice {tuple(extents)} of {shape}")
    device.copy_layout(g, device.layout(tuple(g.shape)), bottom_diff, device.layout(tuple(extents), steps, offset))
    return [bottom_diff] + [None] * (len(pd) - 1)
