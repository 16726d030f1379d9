"""ConvTranspose (opsets 1–21): the transposed convolution, written through Conv's geometry.

A ConvTranspose with weight W (C, M/G, *k), strides s, dilations d, pads (b, e), group G and
output_padding is the input-diff map of the Conv that takes its output y (N, M, *OS) back to its
input x (N, C, *S) with the same W, s, d, (b, e) and G:

    y  = Convᵀ(x; W) + bias,   OS = s·(S − 1) + output_padding + (k − 1)·d + 1 − b − e
    dx = Conv(dy; W)           (the forward convolution of the top diff, no bias)
    dW, dbias only when ``propagate_down`` asks (they are constants in exported nets):
    dW[k, c, o', i…] = Σ x[n, c, …] · dy[k, n, o, …]   (the Conv weight diff with x and y swapped)
    dbias[k, o] = Σ_{n, …} dy[k, n, o, …]

``output_shape`` (or auto_pad SAME_UPPER / SAME_LOWER) fixes OS instead; the total padding
s·(S − 1) + output_padding + (k − 1)·d + 1 − OS is then split, the odd unit at the end for
SAME_UPPER and at the beginning otherwise, as the spec has it. The output_padding rows are
read by no x: they hold only the bias, and pass no diff. Shapes: x (N, C, *S); top_diff
(K, N, M, *OS); bottom_diff (K, N, C, *S).
"""
import numpy as np

from caffe_port.errors import ModelError

from .conv import Geometry, conv_backward, conv_forward, input_diff


def _ints(attrs, name, default):
    value = attrs.get(name)
    return list(default) if value is None or len(value) == 0 else [int(v) for v in value]


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def conv_attrs(x_shape, w_shape, attrs):
    """(the equivalent Conv's attrs, the output's spatial extent OS)."""
    nd = len(w_shape) - 2
    spatial = list(x_shape[2:])
    kernel = _ints(attrs, "kernel_shape", w_shape[2:])
    strides = _ints(attrs, "strides", [1] * nd)
    dilations = _ints(attrs, "dilations", [1] * nd)
    extra = _ints(attrs, "output_padding", [0] * nd)
    extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    full = [s * (n - 1) + o + e for s, n, o, e in zip(strides, spatial, extra, extent)]
    auto_pad = _text(attrs.get("auto_pad", "NOTSET"))
    output_shape = attrs.get("output_shape")
    if output_shape is not None and len(output_shape):
        out = [int(v) for v in output_shape][-nd:]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [n * s for n, s in zip(spatial, strides)]
    else:
        out = None
    if out is None:
        pads = [0] * (2 * nd) if auto_pad == "VALID" else _ints(attrs, "pads", [0] * (2 * nd))
        out = [f - b - e for f, b, e in zip(full, pads[:nd], pads[nd:])]
    else:
        total = [f - o for f, o in zip(full, out)]
        if min(total) < 0:
            raise ModelError(f"ConvTranspose node {attrs.get('node_name', '')!r}: output_shape {out} "
                             f"is larger than the input and kernel give ({full})")
        upper = auto_pad == "SAME_UPPER"
        begin = [t // 2 if upper else t - t // 2 for t in total]
        pads = begin + [t - b for t, b in zip(total, begin)]
    conv = {"kernel_shape": kernel, "strides": strides, "dilations": dilations, "pads": pads,
            "group": int(attrs.get("group", 1)), "node_name": attrs.get("node_name", "ConvTranspose")}
    return conv, out


def _geometry(x_shape, weight, attrs):
    conv, out = conv_attrs(x_shape, weight.shape, attrs)
    y_shape = (x_shape[0], weight.shape[1] * conv["group"]) + tuple(out)
    geo = Geometry(y_shape, weight.shape, conv)
    if tuple(geo.out[3 - geo.nd:]) != tuple(x_shape[2:]):
        raise ModelError(f"ConvTranspose node {conv['node_name']!r}: output {tuple(out)} does not map "
                         f"back onto the input's {tuple(x_shape[2:])}")
    return conv, geo, y_shape


def conv_transpose_forward(bottom_data, attrs):
    x, weight = bottom_data[0], bottom_data[1].astype(bottom_data[0].dtype, copy=False)
    conv, geo, y_shape = _geometry(x.shape, weight, attrs)
    x5 = np.ascontiguousarray(x).reshape(x.shape[:2] + tuple(geo.out))
    y = input_diff(x5, weight, geo, y_shape[1]).reshape(y_shape)
    if len(bottom_data) > 2 and bottom_data[2] is not None:
        y = y + bottom_data[2].astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 2))
    return [y]


def conv_transpose_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    dy = top_diff[0]
    pd = list(propagate_down) + [False] * 3
    n_in = len(bottom_data)
    weight = bottom_data[1].astype(dy.dtype, copy=False)
    x_shape = tuple(bottom_shapes[0]) if bottom_data[0] is None else bottom_data[0].shape
    conv, geo, y_shape = _geometry(x_shape, weight, attrs)
    k = dy.shape[0]
    bottom_diff = [None] * n_in
    flat = np.ascontiguousarray(dy).reshape((k * y_shape[0],) + tuple(y_shape[1:]))
    if pd[0]:
        bottom_diff[0] = conv_forward([flat, weight], conv)[0].reshape((k,) + x_shape)
    if pd[1]:
        if bottom_data[0] is None:
            raise ValueError(f"ConvTranspose node {conv['node_name']!r}: the weight diff needs the "
                             "input x, which the runtime did not keep")
        # the Conv from y to x has weight W and "top" x: its weight diff, with x as the top diff
        x = bottom_data[0].astype(dy.dtype, copy=False)
        per_k = [conv_backward([x[None]], [dy[j], weight], [None], conv, propagate_down=(False, True),
                               bottom_shapes=(y_shape, weight.shape))[1][0] for j in range(k)]
        bottom_diff[1] = np.stack(per_k)
    if n_in > 2 and pd[2]:
        bottom_diff[2] = dy.reshape(k, y_shape[0], y_shape[1], -1).sum(axis=(1, 3))
    return bottom_diff
