"""Where: y = x where the condition holds, else z (numpy broadcasting of all three).

    dx = dy · [cond]      summed to x's shape
    dz = dy · [¬cond]     summed to z's shape

The condition is boolean and takes no diff (the runtime always keeps such side inputs); the
exporters write Where for masks and for ``masked_fill`` in attention. Shapes: top_diff
(K, *y.shape); bottom diffs (K, *x.shape) and (K, *z.shape), fresh arrays.
"""
import numpy as np

from .elementwise import reduce_to


def where_forward(bottom_data, attrs):
    return [np.where(np.asarray(bottom_data[0], dtype=bool), bottom_data[1], bottom_data[2])]


def where_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    condition = np.asarray(bottom_data[0], dtype=bool)
    zero = g.dtype.type(0)
    pd = list(propagate_down) + [False] * 3
    return [None,
            reduce_to(np.where(condition, g, zero), bottom_shapes[1]) if pd[1] else None,
            reduce_to(np.where(condition, zero, g), bottom_shapes[2]) if pd[2] else None]
