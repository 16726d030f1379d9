"""Resize (opsets 10–19): nearest, linear and cubic interpolation, every coordinate transform,
antialiasing — as a linear map applied axis by axis.

Along each resized axis of input length n and output length m, output position i reads the
input at the source coordinate x(i) of the ``coordinate_transformation_mode`` (s the axis scale):

    half_pixel            x = (i + ½)/s − ½
    half_pixel_symmetric  x = n/2·(1 − m/(s·n)) + (i + ½)/s − ½
    pytorch_half_pixel    x = (i + ½)/s − ½, or 0 when m = 1
    align_corners         x = i·(n − 1)/(m − 1), or 0 when m = 1
    asymmetric            x = i/s
    tf_crop_and_resize    x = r₀(n − 1) + i·(r₁ − r₀)(n − 1)/(m − 1)   (roi r₀, r₁; out of
                          [0, n − 1]: the constant ``extrapolation_value``)

and y_i = Σ_j w(i, j)·x_j with the weights of the mode:

    nearest   w = 1 at j = round(x) by ``nearest_mode`` (round_prefer_floor, round_prefer_ceil,
              floor, ceil; opset 10: floor, ceil when shrinking, as ONNX Runtime has it)
    linear    w = K((j − x)·a), K(t) = max(0, 1 − |t|)
    cubic     w = K((j − x)·a), K Keys' cubic with A = ``cubic_coeff_a`` (−0.75)

where a = min(s, 1) with ``antialias`` (the kernel stretched when shrinking, the weights then
normalised to sum 1) and a = 1 otherwise; indices outside [0, n) are clamped to the edge, or, with
``exclude_outside``, dropped and the rest renormalised. So the layer is y = M_H · x · M_Wᵀ (one
matrix per resized axis), and its backward is the transposed map, axis by axis:

    dx = M_Hᵀ · dy · M_W       (extrapolated positions, constants, pass no diff)

Inputs: X, roi, scales, sizes (opset ≥ 11; opset 10: X, scales); ``axes`` and
``keep_aspect_ratio_policy`` from opset 18. The scales, sizes and roi take no diff. Shapes: x (N, …);
top_diff (K, *y.shape); bottom_diff (K, *x.shape).
"""
import math

import numpy as np

from caffe_port.errors import ModelError

MODES = ("nearest", "linear", "cubic")


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _given(bottom_data, i):
    if len(bottom_data) > i and bottom_data[i] is not None and np.size(bottom_data[i]) > 0:
        return np.asarray(bottom_data[i])
    return None


def _inputs(bottom_data, attrs):
    """(roi, scales, sizes) by the opset's input order."""
    if int(attrs.get("opset", 19)) < 11:
        return None, _given(bottom_data, 1), None
    return _given(bottom_data, 1), _given(bottom_data, 2), _given(bottom_data, 3)


def plan(bottom_data, attrs, in_shape, out_shape=None):
    """Per resized axis: (axis, n, m, scale, roi start, roi end)."""
    name = attrs.get("node_name", "Resize")
    rank = len(in_shape)
    roi, scales, sizes = _inputs(bottom_data, attrs)
    axes = attrs.get("axes")
    axes = list(range(rank)) if axes is None else [int(a) % rank for a in axes]
    if scales is not None:
        factors = [float(v) for v in scales.reshape(-1)]
        lengths = [int(math.floor(in_shape[a] * f)) for a, f in zip(axes, factors)]
    elif sizes is not None:
        lengths = [int(v) for v in sizes.reshape(-1)]
        factors = [m / in_shape[a] for a, m in zip(axes, lengths)]
        policy = _text(attrs.get("keep_aspect_ratio_policy", "stretch"))
        if policy != "stretch":
            one = min(factors) if policy == "not_larger" else max(factors)
            factors = [one] * len(axes)
            lengths = [int(one * in_shape[a] + 0.5) for a in axes]
    else:
        raise ModelError(f"Resize node {name!r}: neither scales nor sizes is given")
    if len(factors) != len(axes):
        raise ModelError(f"Resize node {name!r}: {len(factors)} scales or sizes for {len(axes)} axes")
    if out_shape is not None:       # the forward's own lengths win over float rounding here
        lengths = [int(out_shape[a]) for a in axes]
    starts, ends = [0.0] * len(axes), [1.0] * len(axes)
    if roi is not None:
        roi = [float(v) for v in roi.reshape(-1)]
        half = len(roi) // 2
        if half == rank and len(axes) != rank:
            roi = [roi[a] for a in axes] + [roi[rank + a] for a in axes]
            half = len(axes)
        starts, ends = roi[:half], roi[half:]
    return [(a, in_shape[a], m, f, r0, r1)
            for a, m, f, r0, r1 in zip(axes, lengths, factors, starts, ends)
            if not (m == in_shape[a] and f == 1.0 and r0 == 0.0 and r1 == 1.0)]


def _source(i, n, m, scale, mode, r0, r1):
    """Source coordinates x(i) (float64) and the mask of extrapolated outputs."""
    outside = np.zeros(m, dtype=bool)
    if mode == "half_pixel":
        x = (i + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        x = n / 2 * (1 - m / (scale * n)) + (i + 0.5) / scale - 0.5
    elif mode == "pytorch_half_pixel":
        x = (i + 0.5) / scale - 0.5 if m > 1 else np.zeros(m)
    elif mode == "align_corners":
        x = i * (n - 1) / (m - 1) if m > 1 else np.zeros(m)
    elif mode == "asymmetric":
        x = i / scale
    elif mode == "tf_crop_and_resize":
        x = (r0 * (n - 1) + i * (r1 - r0) * (n - 1) / (m - 1)) if m > 1 else \
            np.full(m, 0.5 * (r0 + r1) * (n - 1))
        outside = (x < 0) | (x > n - 1)
    else:
        raise ValueError(mode)
    return x, outside


def _cubic(t, a):
    t = np.abs(t)
    inner = ((a + 2) * t - (a + 3)) * t * t + 1
    outer = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, inner, np.where(t < 2, outer, 0.0))


def _nearest(x, nearest_mode, scale, opset):
    if opset < 11:
        return np.ceil(x) if scale < 1 else np.floor(x)
    if nearest_mode == "round_prefer_floor":
        return np.ceil(x - 0.5)
    if nearest_mode == "round_prefer_ceil":
        return np.floor(x + 0.5)
    if nearest_mode == "floor":
        return np.floor(x)
    if nearest_mode == "ceil":
        return np.ceil(x)
    raise ValueError(nearest_mode)


def axis_matrix(n, m, scale, r0, r1, attrs):
    """(M (m, n) float64, extrapolated (m,) bool) of one axis."""
    name = attrs.get("node_name", "Resize")
    opset = int(attrs.get("opset", 19))
    mode = _text(attrs.get("mode", "nearest"))
    transform = _text(attrs.get("coordinate_transformation_mode",
                                "asymmetric" if opset < 11 else "half_pixel"))
    if mode not in MODES:
        raise ModelError(f"Resize node {name!r}: unknown mode {mode!r}")
    try:
        x, outside = _source(np.arange(m, dtype=np.float64), n, m, scale, transform, r0, r1)
    except ValueError:
        raise ModelError(f"Resize node {name!r}: unknown coordinate_transformation_mode "
                         f"{transform!r}") from None
    matrix = np.zeros((m, n))
    rows = np.arange(m)
    if mode == "nearest":
        try:
            j = _nearest(x, _text(attrs.get("nearest_mode", "round_prefer_floor")), scale, opset)
        except ValueError:
            raise ModelError(f"Resize node {name!r}: unknown nearest_mode "
                             f"{attrs.get('nearest_mode')!r}") from None
        matrix[rows, np.clip(j.astype(np.int64), 0, n - 1)] = 1.0
    else:
        support = 1.0 if mode == "linear" else 2.0
        stretch = min(scale, 1.0) if int(attrs.get("antialias", 0)) else 1.0
        reach = int(math.ceil(support / stretch)) + 1
        taps = np.floor(x)[:, None] + np.arange(-reach, reach + 1)[None, :]       # (m, taps)
        t = (taps - x[:, None]) * stretch
        if mode == "linear":
            w = np.maximum(0.0, 1.0 - np.abs(t))
        else:
            w = _cubic(t, float(attrs.get("cubic_coeff_a", -0.75)))
        if stretch < 1.0:
            w = w / w.sum(axis=1, keepdims=True)
        if int(attrs.get("exclude_outside", 0)):
            w = np.where((taps < 0) | (taps > n - 1), 0.0, w)
            total = w.sum(axis=1, keepdims=True)
            w = w / np.where(total == 0, 1.0, total)
        columns = np.clip(taps, 0, n - 1).astype(np.int64)
        np.add.at(matrix, (np.broadcast_to(rows[:, None], columns.shape), columns), w)
    matrix[outside] = 0.0
    return matrix, outside


def _along(matrix, a, axis):
    """Apply ``matrix`` (m, n) along ``axis`` of ``a``."""
    return np.moveaxis(np.tensordot(matrix, a, axes=([1], [axis])), 0, axis)


def resize_forward(bottom_data, attrs):
    x = bottom_data[0]
    y = x.astype(np.float64)
    extrapolated = np.zeros((), dtype=bool)
    for axis, n, m, scale, r0, r1 in plan(bottom_data, attrs, x.shape):
        matrix, outside = axis_matrix(n, m, scale, r0, r1, attrs)
        y = _along(matrix, y, axis)
        extrapolated = extrapolated | outside.reshape((-1,) + (1,) * (x.ndim - 1 - axis))
    y = np.where(extrapolated, float(attrs.get("extrapolation_value", 0.0)), y)
    return [y.astype(x.dtype)]


def resize_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes, top_shapes):
    if not propagate_down[0]:
        return [None] * len(bottom_data)
    g = top_diff[0]
    in_shape = tuple(bottom_shapes[0])
    out_shape = tuple(top_shapes[0]) if top_shapes[0] is not None else tuple(g.shape[1:])
    steps = plan(bottom_data, attrs, in_shape, out_shape)
    extrapolated = np.zeros((), dtype=bool)
    matrices = []
    for axis, n, m, scale, r0, r1 in steps:
        matrix, outside = axis_matrix(n, m, scale, r0, r1, attrs)
        matrices.append((axis, matrix.astype(g.dtype)))
        extrapolated = extrapolated | outside.reshape((-1,) + (1,) * (len(in_shape) - 1 - axis))
    d = np.where(extrapolated, g.dtype.type(0), g)
    for axis, matrix in reversed(matrices):
        d = _along(matrix.T, d, axis + 1)
    return [np.ascontiguousarray(d)] + [None] * (len(bottom_data) - 1)
