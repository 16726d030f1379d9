"""Split and Slice: routing layers whose backward puts each top diff back where its top came from
(Caffe's Slice layer; ONNX Split and Slice).

    Split   x = [y_0, y_1, …] along axis      bottom_diff = concat(top_diff_j, axis + 1)
    Slice   y = x[s_0:e_0:t_0, …]             bottom_diff = 0; bottom_diff[:, slices] = top_diff

Shapes: x (N, …); top_diff_j (K, *y_j.shape); bottom_diff (K, N, …). A Split top that got no diff
(top_diff[j] is None) contributes zeros. A Slice has no repeated positions (one start, end and
step per axis), so assignment is exact; the positions it skipped get zero. The split sizes,
starts, ends, axes and steps are constants and never take a diff.
"""
import numpy as np

from caffe_port.errors import ModelError


def normal_axis(axis, ndim):
    axis = int(axis)
    return axis + ndim if axis < 0 else axis


def _ints(value):
    return [int(v) for v in np.asarray(value).reshape(-1)]


# --- Split ----------------------------------------------------------------------------------------

def split_sizes(bottom_data, attrs, dim, n_outputs):
    """The widths of the tops along the split axis, in the order the opsets allow them:
    ``split`` input (opset ≥ 13, and Split-1's optional second input), ``split`` attribute
    (opset < 13), ``num_outputs`` (opset ≥ 18: chunks of ⌈dim / n⌉, the last one smaller), or an
    equal split into the node's ``n_outputs`` tops."""
    split = None
    if len(bottom_data) > 1 and bottom_data[1] is not None:
        split = _ints(bottom_data[1])
    elif attrs.get("split") is not None:
        split = _ints(attrs["split"])
    if split:
        if sum(split) != dim or any(s < 0 for s in split):
            raise ModelError(f"Split: sizes {split} do not add up to the axis length {dim}")
        return split
    if attrs.get("num_outputs") is not None:
        n = int(attrs["num_outputs"])
        chunk = -(-dim // n)
        sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
        if sizes[-1] < 0:
            raise ModelError(f"Split: an axis of length {dim} cannot be cut into {n} chunks "
                             f"of {chunk}")
        return sizes
    if n_outputs < 1 or dim % n_outputs:
        raise ModelError(f"Split: an axis of length {dim} cannot be split equally into "
                         f"{n_outputs} outputs")
    return [dim // n_outputs] * n_outputs


def split_forward(bottom_data, attrs):
    """``attrs["n_outputs"]`` gives the number of tops when nothing else does (equal split)."""
    x = bottom_data[0]
    axis = normal_axis(attrs.get("axis", 0), x.ndim)
    sizes = split_sizes(bottom_data, attrs, x.shape[axis], int(attrs.get("n_outputs", 1)))
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


def split_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    pd = propagate_down
    given = [g for g in top_diff if g is not None]
    if not pd[0] or not given:
        return [None] * len(pd)
    shape = tuple(bottom_shapes[0])
    axis = normal_axis(attrs.get("axis", 0), len(shape))
    sizes = split_sizes(bottom_data, attrs, shape[axis], len(top_diff))
    k, dtype = given[0].shape[0], given[0].dtype
    pieces = [np.zeros((k,) + shape[:axis] + (width,) + shape[axis + 1:], dtype) if g is None else g
              for g, width in zip(top_diff, sizes)]
    return [np.concatenate(pieces, axis=axis + 1)] + [None] * (len(pd) - 1)


# --- Slice ----------------------------------------------------------------------------------------

def _optional(bottom_data, i):
    return bottom_data[i] if len(bottom_data) > i and bottom_data[i] is not None else None


def slice_index(bottom_data, attrs, shape):
    """The basic-indexing tuple that Slice takes out of a tensor of ``shape``.

    Opset < 10 gives starts/ends/axes as attributes, later opsets as inputs with optional axes
    and steps. Per the spec, a negative start or end counts from the end (+dim); then for
    step > 0 both clamp to [0, dim], for step < 0 start clamps to [0, dim − 1] and end to
    [−1, dim − 1], where −1 means "past the first element" (Python's ``None`` stop).
    """
    if _optional(bottom_data, 1) is not None:
        starts, ends = _ints(bottom_data[1]), _ints(bottom_data[2])
        axes, steps = _optional(bottom_data, 3), _optional(bottom_data, 4)
    else:
        starts, ends = _ints(attrs["starts"]), _ints(attrs["ends"])
        axes, steps = attrs.get("axes"), None
    ndim = len(shape)
    axes = list(range(len(starts))) if axes is None else \
        [normal_axis(a, ndim) for a in _ints(axes)]
    steps = [1] * len(starts) if steps is None else _ints(steps)
    index = [slice(None)] * ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = shape[axis]
        if step == 0:
            raise ModelError(f"Slice: step 0 on axis {axis}")
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        index[axis] = slice(start, None if end < 0 else end, step)
    return tuple(index)


def slice_forward(bottom_data, attrs):
    x = bottom_data[0]
    return [x[slice_index(bottom_data, attrs, x.shape)].copy()]


def slice_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g, pd = top_diff[0], propagate_down
    if not pd[0]:
        return [None] * len(pd)
    shape = tuple(bottom_shapes[0])
    bottom_diff = np.zeros((g.shape[0],) + shape, dtype=g.dtype)
    bottom_diff[(slice(None),) + slice_index(bottom_data, attrs, shape)] = g
    return [bottom_diff] + [None] * (len(pd) - 1)
