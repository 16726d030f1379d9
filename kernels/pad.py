"""Pad: constant, reflect, edge and (opset ≥ 19) wrap padding, with negative pads cropping.

Along each axis, with b = pads[begin] and e = pads[end], x is first cropped by the negative parts
(ONNX Runtime's order) and then padded by the positive parts, so every top position j reads one
bottom position src(j), or the constant:

    y[…, j, …] = x[…, src(j), …]     src = the mode's index map of the cropped axis, e.g. for
                                     length 4, b = e = 2:  reflect 2 1 | 0 1 2 3 | 2 1
                                                           edge    0 0 | 0 1 2 3 | 3 3
                                                           wrap    2 3 | 0 1 2 3 | 0 1

The backward is the transpose of that gather, a scatter-add, axis by axis (the map is a product of
per-axis maps, corners included):

    bottom_diff[…, i, …] = Σ_{j : src(j) = i} top_diff[…, j, …]

so a reflected or replicated position collects the diffs of all its copies; constant padding and
cropped positions get nothing. Shapes: x (N, …); top_diff (K, *y.shape); bottom_diff (K, *x.shape).

Forms: ``pads`` (and ``value``) attributes before opset 11 (``paddings`` in Pad-1); from opset 11
``pads`` and an optional ``constant_value`` input; from opset 18 an optional ``axes`` input, with
pads then given for those axes only. Pads, value and axes are constants and never take a diff.
"""
import numpy as np

from caffe_port.errors import ModelError

MODES = ("constant", "reflect", "edge", "wrap")


def _optional(bottom_data, i):
    return bottom_data[i] if len(bottom_data) > i and bottom_data[i] is not None else None


def _ints(value):
    return [int(v) for v in np.asarray(value).reshape(-1)]


def pad_spec(bottom_data, attrs, ndim):
    """→ (begin, end, mode, value): per-axis pad counts of all ``ndim`` axes (negative = crop)."""
    mode = attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in MODES:
        raise ModelError(f"Pad: unknown mode {mode!r}; ONNX defines {', '.join(MODES)}")
    if _optional(bottom_data, 1) is not None:
        pads = _ints(bottom_data[1])
    else:
        pads = _ints(attrs["pads"] if "pads" in attrs else attrs["paddings"])
    value = _optional(bottom_data, 2)
    value = float(np.asarray(value).reshape(-1)[0]) if value is not None \
        else float(attrs.get("value", 0.0))
    axes = _optional(bottom_data, 3)
    axes = list(range(ndim)) if axes is None else [a + ndim if a < 0 else a for a in _ints(axes)]
    if len(pads) != 2 * len(axes):
        raise ModelError(f"Pad: {len(pads)} pads for {len(axes)} axes (expected {2 * len(axes)})")
    begin, end = [0] * ndim, [0] * ndim
    for i, axis in enumerate(axes):
        begin[axis], end[axis] = pads[i], pads[i + len(axes)]
    return begin, end, mode, value


def crop_index(shape, begin, end):
    """The slices that the negative pads leave of each axis."""
    return tuple(slice(-min(b, 0), n + min(e, 0)) for n, b, e in zip(shape, begin, end))


def pad_forward(bottom_data, attrs):
    x = bottom_data[0]
    begin, end, mode, value = pad_spec(bottom_data, attrs, x.ndim)
    for n, b, e in zip(x.shape, begin, end):
        if n + min(b, 0) + min(e, 0) < 0:
            raise ModelError(f"Pad: pads {begin + end} crop more than the shape {x.shape}")
    x = x[crop_index(x.shape, begin, end)]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    if mode == "constant":
        return [np.pad(x, widths, mode="constant", constant_values=value)]
    return [np.pad(x, widths, mode=mode)]


def _fold(diff, axis, length, before, after, mode):
    """Scatter-add ``diff`` (before + length + after on ``axis``) back onto ``length`` positions."""
    lead = (slice(None),) * axis
    bottom = diff[lead + (slice(before, before + length),)].copy()
    if mode == "constant" or before + after == 0:
        return bottom
    source = np.pad(np.arange(length), (before, after), mode=mode)
    padded = np.r_[0:before, before + length:before + length + after]
    np.add.at(bottom, lead + (source[padded],), diff[lead + (padded,)])
    return bottom


def pad_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g, pd = top_diff[0], propagate_down
    if not pd[0]:
        return [None] * len(pd)
    shape = tuple(bottom_shapes[0])
    begin, end, mode, _ = pad_spec(bottom_data, attrs, len(shape))
    cropped = [n + min(b, 0) + min(e, 0) for n, b, e in zip(shape, begin, end)]
    diff = g
    for axis, (n, b, e) in enumerate(zip(cropped, begin, end)):
        if b > 0 or e > 0:
            diff = _fold(diff, axis + 1, n, max(b, 0), max(e, 0), mode)
    if any(b < 0 or e < 0 for b, e in zip(begin, end)):
        bottom_diff = np.zeros((g.shape[0],) + shape, dtype=g.dtype)
        bottom_diff[(slice(None),) + crop_index(shape, begin, end)] = diff
    else:
        bottom_diff = diff.copy() if diff is g else diff
    return [bottom_diff] + [None] * (len(pd) - 1)
