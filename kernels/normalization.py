"""LayerNormalization, InstanceNormalization and GroupNormalization: one rule over three ways of
choosing the set R of axes a statistic is taken over.

    μ = mean_R(x),  σ² = mean_R((x − μ)²),  r = 1 / √(σ² + ε),  x̂ = (x − μ)·r
    y = γ·x̂ + β

    LayerNormalization     R = axes ``axis`` … rank−1 (default −1); γ, β broadcast over x's
                           trailing axes; optional outputs Mean (μ) and InvStdDev (r)
    InstanceNormalization  R = the spatial axes 2 …, per (n, c); γ, β of shape (C,)
    GroupNormalization     x viewed as (N, G, C/G, spatial…), R = the axes after G; γ, β of
                           shape (C,) (opset 21) or, in the opset-18 form, (G,)

Backward, with ĝ = dy·γ and D = |R| (Caffe's MVN layer, with the affine step after it):

    dx = r·(ĝ − mean_R(ĝ) − x̂·mean_R(ĝ·x̂))
         + dMean / D − dInvStdDev · r²·x̂ / D      (LayerNormalization's optional outputs)
    dγ = Σ dy·x̂,  dβ = Σ dy                       (summed to γ's and β's shapes; only when they
                                                   are not constants)

The backward reads x and γ and recomputes μ and r (as cheap as keeping them). None of these is
ReLU-like: every rule computes the true gradient. Shapes: x (N, …); top_diff (K, *x.shape);
bottom_diff (K, *x.shape). Statistics are taken in x's dtype, as ONNX Runtime's float32 kernels do.
"""
import numpy as np

from caffe_port.errors import ModelError

from .elementwise import reduce_to


def _statistics(x, axes, epsilon):
    """(x̂, r), r with the reduced axes kept as length 1."""
    mu = x.mean(axis=axes, keepdims=True)
    centred = x - mu
    variance = (centred * centred).mean(axis=axes, keepdims=True)
    r = x.dtype.type(1) / np.sqrt(variance + x.dtype.type(epsilon))
    return centred * r, r


def _input_diff(g_hat, x_hat, r, axes):
    """r·(ĝ − mean_R ĝ − x̂·mean_R(ĝ·x̂)) for (K, …) ĝ; ``axes`` index x (the K axis is added)."""
    k_axes = tuple(a + 1 for a in axes)
    return r * (g_hat - g_hat.mean(axis=k_axes, keepdims=True)
                - x_hat * (g_hat * x_hat).mean(axis=k_axes, keepdims=True))


def _affine_diffs(g, x_hat, propagate_down, bottom_shapes, scale_shape=None, bias_shape=None):
    """[dγ, dβ] for the optional non-constant scale and bias (None where not asked), summed to
    their shapes (``bottom_shapes`` unless given)."""
    pd = list(propagate_down) + [False, False, False]
    shapes = list(bottom_shapes) + [None, None, None]
    d_scale = reduce_to(g * x_hat, scale_shape or shapes[1]) if pd[1] else None
    d_bias = reduce_to(g, bias_shape or shapes[2]) if pd[2] else None
    return [d_scale, d_bias]


def _in_dtype(array, dtype):
    return None if array is None else np.asarray(array).astype(dtype, copy=False)


# --- LayerNormalization ---------------------------------------------------------------------------

def layer_axes(attrs, rank):
    axis = int(attrs.get("axis", -1))
    if not -rank <= axis < rank:
        raise ModelError(f"LayerNormalization node {attrs.get('node_name', '')!r}: axis {axis} is "
                         f"out of range for rank {rank}")
    return tuple(range(axis % rank, rank))


def layer_normalization_forward(bottom_data, attrs):
    x = bottom_data[0]
    axes = layer_axes(attrs, x.ndim)
    x_hat, r = _statistics(x, axes, float(attrs.get("epsilon", 1e-5)))
    y = x_hat * _in_dtype(bottom_data[1], x.dtype)
    bias = bottom_data[2] if len(bottom_data) > 2 else None
    if bias is not None:
        y = y + _in_dtype(bias, x.dtype)
    tops = [y, x.mean(axis=axes, keepdims=True), r]
    return tops[:max(1, int(attrs.get("n_outputs", 1)))]


def layer_normalization_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = next(d for d in top_diff if d is not None)
    dtype = g.dtype
    x = _in_dtype(bottom_data[0], dtype)
    axes = layer_axes(attrs, x.ndim)
    x_hat, r = _statistics(x, axes, float(attrs.get("epsilon", 1e-5)))
    scale = _in_dtype(bottom_data[1], dtype)
    count = dtype.type(np.prod([x.shape[a] for a in axes]))
    dy = top_diff[0] if top_diff[0] is not None else np.zeros((g.shape[0],) + x.shape, dtype)
    dx = _input_diff(dy * scale, x_hat, r, axes)
    if len(top_diff) > 1 and top_diff[1] is not None:        # Mean
        dx = dx + top_diff[1] / count
    if len(top_diff) > 2 and top_diff[2] is not None:        # InvStdDev
        dx = dx - top_diff[2] * (r * r) * x_hat / count
    return [dx if propagate_down[0] else None] + \
        _affine_diffs(dy, x_hat, propagate_down, bottom_shapes)[:len(bottom_data) - 1]


# --- InstanceNormalization ------------------------------------------------------------------------

def _per_channel(value, rank, dtype):
    """(C,) → (C, 1, …) to broadcast against (N, C, spatial…)."""
    return _in_dtype(value, dtype).reshape((-1,) + (1,) * (rank - 2))


def instance_normalization_forward(bottom_data, attrs):
    x = bottom_data[0]
    x_hat, _ = _statistics(x, tuple(range(2, x.ndim)), float(attrs.get("epsilon", 1e-5)))
    return [x_hat * _per_channel(bottom_data[1], x.ndim, x.dtype) + _per_channel(bottom_data[2], x.ndim, x.dtype)]


def instance_normalization_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    x = _in_dtype(bottom_data[0], g.dtype)
    axes = tuple(range(2, x.ndim))
    x_hat, r = _statistics(x, axes, float(attrs.get("epsilon", 1e-5)))
    dx = _input_diff(g * _per_channel(bottom_data[1], x.ndim, g.dtype), x_hat, r, axes)
    channels = (x.shape[1],) + (1,) * (x.ndim - 2)
    d_scale, d_bias = _affine_diffs(g, x_hat, propagate_down, bottom_shapes, channels, channels)
    return [dx if propagate_down[0] else None,
            None if d_scale is None else d_scale.reshape(g.shape[0], -1),
            None if d_bias is None else d_bias.reshape(g.shape[0], -1)]


# --- GroupNormalization ---------------------------------------------------------------------------

def _groups(x_shape, attrs):
    groups = int(attrs["num_groups"])
    if groups < 1 or x_shape[1] % groups:
        raise ModelError(f"GroupNormalization node {attrs.get('node_name', '')!r}: {x_shape[1]} "
                         f"channels do not split into {groups} groups")
    return groups


def _group_affine(value, x_shape, groups, dtype):
    """γ or β broadcastable to x: per channel, or (opset-18 form, G values) per group."""
    value = _in_dtype(value, dtype).reshape(-1)
    if value.size == groups and groups != x_shape[1]:
        value = np.repeat(value, x_shape[1] // groups)
    return value.reshape((-1,) + (1,) * (len(x_shape) - 2))


def _grouped_statistics(x, groups, epsilon):
    """x̂ and r of x viewed as (N, G, C/G·spatial), returned in x's own shape."""
    grouped = x.reshape(x.shape[0], groups, -1)
    x_hat, r = _statistics(grouped, (2,), epsilon)
    return x_hat, r, grouped.shape


def group_normalization_forward(bottom_data, attrs):
    x = bottom_data[0]
    groups = _groups(x.shape, attrs)
    x_hat, _, _ = _grouped_statistics(x, groups, float(attrs.get("epsilon", 1e-5)))
    return [x_hat.reshape(x.shape) * _group_affine(bottom_data[1], x.shape, groups, x.dtype)
            + _group_affine(bottom_data[2], x.shape, groups, x.dtype)]


def group_normalization_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g = top_diff[0]
    k = g.shape[0]
    x = _in_dtype(bottom_data[0], g.dtype)
    groups = _groups(x.shape, attrs)
    x_hat, r, grouped = _grouped_statistics(x, groups, float(attrs.get("epsilon", 1e-5)))
    g_hat = (g * _group_affine(bottom_data[1], x.shape, groups, g.dtype)).reshape((k,) + grouped)
    dx = _input_diff(g_hat, x_hat, r, (2,)).reshape(g.shape)
    x_hat = x_hat.reshape(x.shape)
    pd = list(propagate_down) + [False, False]
    per_channel = (g * x_hat).sum(axis=(1,) + tuple(range(3, g.ndim))), g.sum(axis=(1,) + tuple(range(3, g.ndim)))
    diffs = []
    for position, channel_sum in ((1, per_channel[0]), (2, per_channel[1])):
        if not pd[position]:
            diffs.append(None)
            continue
        size = int(np.prod(bottom_shapes[position]))
        # the opset-18 form holds one value per group: its diff sums the group's channels
        diffs.append(channel_sum.reshape(k, size, -1).sum(axis=2) if size != x.shape[1] else channel_sum)
    return [dx if pd[0] else None] + diffs
