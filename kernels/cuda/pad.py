"""Pad backward on the device: constant, reflect, edge and wrap padding, negative pads cropping.

The rule is the CPU kernel's (kernels/pad.py): every top position j reads one bottom position
src(j) (or the constant), so

    bottom_diff[…, i, …] = Σ_{j : src(j) = i} top_diff[…, j, …]

taken axis by axis. Per padded axis one kernel folds the diff: a thread per element of the
folded array takes its interior value and adds, in the order of j (as numpy.add.at does on the
CPU), the padded positions whose source it is, from a small table of (j, src(j)). Constant
padding only crops. Negative pads leave zeros where they cropped.
"""
import numpy as np
from numba import cuda

from caffe_port.kernels.pad import crop_index, pad_spec

from . import device
from .device import kernel, launch


@kernel
def _fold(diff, outer, full, length, inner, before, padded, sources, folded):
    """diff (outer, full, inner) → folded (outer, length, inner): interior plus the padded
    positions padded[t] whose source sources[t] is this position."""
    count = outer * length * inner
    for e in range(cuda.grid(1), count, cuda.gridsize(1)):
        o = e // (length * inner)
        i = (e // inner) % length
        r = e % inner
        acc = diff[(o * full + before + i) * inner + r]
        for t in range(padded.size):
            if sources[t] == i:
                acc += diff[(o * full + padded[t]) * inner + r]
        folded[e] = acc


def _fold_axis(diff, axis, length, before, after, mode):
    """Fold the (before + length + after) positions of ``axis`` back onto ``length``: a new array."""
    shape = tuple(diff.shape)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    out_shape = shape[:axis] + (length,) + shape[axis + 1:]
    folded = device.empty(out_shape, diff.dtype)
    if mode == "constant":
        padded = np.zeros(0, np.int64)
        sources = padded
    else:
        source = np.pad(np.arange(length), (before, after), mode=mode)
        padded = np.r_[0:before, before + length:before + length + after].astype(np.int64)
        sources = source[padded].astype(np.int64)
    if folded.size:
        # a -1 sentinel closes the table (which must not be empty to be a device array): no position matches it
        _fold[launch(folded.size)](device.flat(diff), outer, shape[axis], length, inner, before,
                                   device.upload(np.r_[padded, -1]), device.upload(np.r_[sources, -1]),
                                   device.flat(folded))
    return folded


def pad_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    g, pd = top_diff[0], propagate_down
    if not pd[0]:
        return [None] * len(pd)
    shape = tuple(bottom_shapes[0])
    host = [None] + [device.to_host(b) if b is not None else None for b in bottom_data[1:]]
    begin, end, mode, _ = pad_spec(host, attrs, len(shape))
    cropped = [n + min(b, 0) + min(e, 0) for n, b, e in zip(shape, begin, end)]
    diff = g
    for axis, (n, b, e) in enumerate(zip(cropped, begin, end)):
        if b > 0 or e > 0:
            diff = _fold_axis(diff, axis + 1, n, max(b, 0), max(e, 0), mode)
    if any(b < 0 or e < 0 for b, e in zip(begin, end)):
        full = (g.shape[0],) + shape
        bottom_diff = device.zeros(full, g.dtype)
        strides = device.contiguous_strides(full)
        offset = sum(s.start * st for s, st in zip(crop_index(shape, begin, end), strides[1:]))
        device.copy_layout(diff, device.layout(tuple(diff.shape)), bottom_diff,
                           device.layout(tuple(diff.shape), strides, offset))
    else:
        bottom_diff = diff
    return [bottom_diff] + [None] * (len(pd) - 1)
