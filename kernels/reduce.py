"""The Reduce family over a set of axes: ReduceMean, ReduceSum, and the ReduceMax, ReduceMin,
ReduceL1, ReduceL2, ReduceSumSquare and ReduceLogSumExp that tf2onnx writes for global max pooling
and normalisations, and Swin V2 for its cosine attention.

With R the reduced axes and |R| the number of elements reduced into each output,

    ReduceSum:        y = Σ_R x            dx[k] = broadcast(dy[k])
    ReduceMean:       y = Σ_R x / |R|      dx[k] = broadcast(dy[k]) / |R|
    ReduceMax, Min:   y = max_R x          dx[k] = broadcast(dy[k]) at the first position of each
                                           reduced set holding y, 0 elsewhere (Caffe's ties rule)
    ReduceL1:         y = Σ_R |x|          dx[k] = broadcast(dy[k]) · sign(x)
    ReduceL2:         y = √(Σ_R x²)        dx[k] = broadcast(dy[k]) · x / y      (0 where y = 0)
    ReduceSumSquare:  y = Σ_R x²           dx[k] = broadcast(dy[k]) · 2x
    ReduceLogSumExp:  y = ln Σ_R eˣ        dx[k] = broadcast(dy[k]) · exp(x − y)

where broadcast re-inserts the reduced axes (as length 1 when keepdims = 0) and repeats dy along
them. ReduceMean and ReduceSum need only shapes; the others read x (L2 and LogSumExp recompute y
from it rather than keep it).

Axes come from the attribute ``axes`` (ReduceSum before opset 13, the others before opset 18) or
from the optional second input (from those opsets on). Empty or absent axes reduce every axis,
unless noop_with_empty_axes = 1 (opset ≥ 13 / 18), which makes the node an identity.

Shapes: x (N, ...), y (N, ...) or with fewer axes; top_diff (K, *y.shape), bottom_diff
(K, *x.shape). The second input (axes), when present, takes no diff.
"""
import numpy as np

from caffe_port.errors import ModelError


def reduced_axes(bottom_data, attrs, rank, op_type):
    """The reduced axes as a sorted tuple, or None for an identity (noop_with_empty_axes)."""
    axes = None
    if len(bottom_data) > 1 and bottom_data[1] is not None:
        axes = np.asarray(bottom_data[1]).reshape(-1).tolist()
    elif attrs.get("axes") is not None:
        axes = list(attrs["axes"])
    if not axes:
        return None if int(attrs.get("noop_with_empty_axes", 0)) else tuple(range(rank))
    if any(not -rank <= int(a) < rank for a in axes):
        raise ModelError(f"{op_type}: axes {axes} out of range for a tensor of rank {rank}")
    normalised = sorted({int(a) % rank for a in axes})
    if len(normalised) != len(axes):
        raise ModelError(f"{op_type}: axes {axes} name an axis twice")
    return tuple(normalised)


def _forward(bottom_data, attrs, op_type, mean):
    return _reduced(bottom_data, attrs, op_type, lambda x, axes: (np.mean if mean else np.sum)(
        x, axis=axes, keepdims=True, dtype=x.dtype))


def _reduced(bottom_data, attrs, op_type, reduce):
    """y = reduce(x, axes) (keepdims) with the node's axes and keepdims."""
    x = bottom_data[0]
    axes = reduced_axes(bottom_data, attrs, x.ndim, op_type)
    if axes is None:
        return [x.copy()]
    y = np.asarray(reduce(x, axes))
    return [y if int(attrs.get("keepdims", 1)) else y.reshape([n for i, n in enumerate(x.shape) if i not in axes])]


def _backward(top_diff, bottom_data, attrs, op_type, mean, bottom_shapes):
    bottom_shape = tuple(bottom_shapes[0])
    if len(bottom_data) > 1 and bottom_data[1] is None and len(bottom_shapes) > 1 \
            and bottom_shapes[1] is not None:
        raise ModelError(f"{op_type}: the axes input must be a constant")
    g = top_diff[0]
    k = g.shape[0]
    axes = reduced_axes(bottom_data, attrs, len(bottom_shape), op_type)
    rest = [None] * (len(bottom_data) - 1)
    if axes is None:
        return [g.copy()] + rest
    kept_shape = tuple(1 if i in axes else n for i, n in enumerate(bottom_shape))
    g = g.reshape((k,) + kept_shape)
    if mean:
        count = int(np.prod([bottom_shape[i] for i in axes], dtype=np.int64))
        g = g / g.dtype.type(count)
    # a copy: where every reduced axis has length 1 the broadcast is a read-only view of dy itself
    return [np.broadcast_to(g, (k,) + bottom_shape).copy()] + rest


def reduce_mean_forward(bottom_data, attrs):
    return _forward(bottom_data, attrs, "ReduceMean", True)


def reduce_mean_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes):
    return _backward(top_diff, bottom_data, attrs, "ReduceMean", True, bottom_shapes)


def reduce_sum_forward(bottom_data, attrs):
    return _forward(bottom_data, attrs, "ReduceSum", False)


def reduce_sum_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes):
    return _backward(top_diff, bottom_data, attrs, "ReduceSum", False, bottom_shapes)


# --- the reductions that read x: the diff is broadcast, then scaled by a local factor -------------

def _spread(top_diff, bottom_data, attrs, op_type, local):
    """dx = broadcast(dy) · local(x, y, axes), y with the reduced axes kept as length 1."""
    g = top_diff[0]
    x = np.asarray(bottom_data[0]).astype(g.dtype, copy=False)
    axes = reduced_axes(bottom_data, attrs, x.ndim, op_type)
    rest = [None] * (len(bottom_data) - 1)
    if axes is None:
        return [g.copy()] + rest
    kept_shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
    g = g.reshape((g.shape[0],) + kept_shape)
    return [np.ascontiguousarray(g * local(x, axes))] + rest


def _first_extreme(x, axes, pick):
    """Boolean x-shaped mask of the first position of each reduced set where ``pick`` (argmax or
    argmin) lands."""
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, rest + list(axes))
    flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
    mask = np.zeros(flat.shape, dtype=bool)
    np.put_along_axis(mask, pick(flat, axis=-1)[..., None], True, axis=-1)
    return np.transpose(mask.reshape(moved.shape), np.argsort(rest + list(axes)))


def reduce_max_forward(bottom_data, attrs):
    return _reduced(bottom_data, attrs, "ReduceMax", lambda x, axes: np.max(x, axis=axes, keepdims=True))


def reduce_max_backward(top_diff, bottom_data, top_data, attrs):
    return _spread(top_diff, bottom_data, attrs, "ReduceMax", lambda x, axes: _first_extreme(x, axes, np.argmax))


def reduce_min_forward(bottom_data, attrs):
    return _reduced(bottom_data, attrs, "ReduceMin", lambda x, axes: np.min(x, axis=axes, keepdims=True))


def reduce_min_backward(top_diff, bottom_data, top_data, attrs):
    return _spread(top_diff, bottom_data, attrs, "ReduceMin", lambda x, axes: _first_extreme(x, axes, np.argmin))


def reduce_l1_forward(bottom_data, attrs):
    return _reduced(bottom_data, attrs, "ReduceL1", lambda x, axes: np.sum(np.abs(x), axis=axes, keepdims=True))


def reduce_l1_backward(top_diff, bottom_data, top_data, attrs):
    return _spread(top_diff, bottom_data, attrs, "ReduceL1", lambda x, axes: np.sign(x))


def _l2(x, axes):
    return np.sqrt(np.sum(x * x, axis=axes, keepdims=True))


def reduce_l2_forward(bottom_data, attrs):
    return _reduced(bottom_data, attrs, "ReduceL2", _l2)


def reduce_l2_backward(top_diff, bottom_data, top_data, attrs):
    def local(x, axes):
        norm = _l2(x, axes)
        return np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0)
    return _spread(top_diff, bottom_data, attrs, "ReduceL2", local)


def reduce_sum_square_forward(bottom_data, attrs):
    return _reduced(bottom_data, attrs, "ReduceSumSquare", lambda x, axes: np.sum(x * x, axis=axes, keepdims=True))


def reduce_sum_square_backward(top_diff, bottom_data, top_data, attrs):
    return _spread(top_diff, bottom_data, attrs, "ReduceSumSquare", lambda x, axes: 2 * x)


def _log_sum_exp(x, axes):
    top = np.max(x, axis=axes, keepdims=True)
    return top + np.log(np.sum(np.exp(x - top), axis=axes, keepdims=True))


def reduce_log_sum_exp_forward(bottom_data, attrs):
    return _reduced(bottom_data, attrs, "ReduceLogSumExp", _log_sum_exp)


def reduce_log_sum_exp_backward(top_diff, bottom_data, top_data, attrs):
    return _spread(top_diff, bottom_data, attrs, "ReduceLogSumExp",
                   lambda x, axes: np.exp(x - _log_sum_exp(x, axes)))
