"""Concat backward on the device: each bottom's diff is its window of the top diff along the axis,

    bottom_diff_i = top_diff[:, …, o_i : o_i + d_i, …]      (o_i = d_0 + … + d_{i−1}, on axis + 1)

copied out as a new contiguous array (device.copy_layout). Shapes as in kernels/concat.py.
"""
from caffe_port.kernels.concat import concat_axis

from . import device


def window(g_shape, axis, offset, width):
    """The layout of the sub-block [offset, offset + width) along ``axis`` of a C-ordered array."""
    strides = device.contiguous_strides(g_shape)
    shape = tuple(g_shape[:axis]) + (width,) + tuple(g_shape[axis + 1:])
    return device.layout(shape, strides, offset * strides[axis])


def concat_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    shapes = bottom_shapes
    axis = concat_axis(attrs, len(shapes[0])) + 1            # the K axis comes first
    g_shape = tuple(g.shape)
    bottom_diff, offset = [], 0
    for shape, pd in zip(shapes, propagate_down):
        width = shape[axis - 1]
        if pd:
            out_shape = (g_shape[0],) + tuple(shape)
            out = device.empty(out_shape, g.dtype)
            device.copy_layout(g, window(g_shape, axis, offset, width), out, device.layout(out_shape))
            bottom_diff.append(out)
        else:
            bottom_diff.append(None)
        offset += width
    return bottom_diff
