"""MaxPool and GlobalMaxPool, with Caffe's switches; also the window geometry AveragePool shares.

Shapes: bottom (N, C, *in) and top (N, C, *out) with 1, 2 or 3 spatial axes; top_diff and
bottom_diff carry a leading K axis. Along each spatial axis, output o reads the taps

    p(o, t) = o·stride − pad_begin + t·dilation,     t = 0 … kernel − 1,

of which only those with 0 ≤ p < in exist; padded positions never win. A window is the box
product of its axes' taps.

Forward:  top[o] = max over the window's taps of bottom[p].
Backward (Caffe's MaxPoolingLayer): the switch s(o) is the *first* maximal tap in scan order
(row-major within the window) and, for every output o and every stacked diff k,

    bottom_diff[k, s(o)] += top_diff[k, o]

so overlapping windows (3×3 stride 2) accumulate. Caffe writes the switches ("mask") in its
forward; ONNX Runtime ran the forward here, so the backward recomputes them once from the kept
bottom and scatters all K diffs through them.

Output size and padding are ONNX Runtime 1.31's (checked against it on ~1400 random MaxPool
nodes, 1-D to 3-D): with span = in + pad_begin + pad_end − ((kernel − 1)·dilation + 1),

    out = trunc(span / stride) + 1                 (C++ integer division: −2/3 → 0)
    out = ceil(span / stride + 1)   (ceil_mode)    less one if (out − 1)·stride ≥ in + pad_begin

(the drop keeps the last window starting inside the input or its begin padding, as Caffe and
PyTorch do). auto_pad VALID: no pads. SAME_UPPER / SAME_LOWER: total = (ceil(in / stride) − 1)·
stride + kernel − in, with the *undilated* kernel, which ONNX Runtime uses even when
dilations ≠ 1; pad_begin = trunc(total / 2) (UPPER) or trunc((total + 1) / 2) (LOWER). The
backward takes the output size from ``top_shapes`` and clips windows to the input, so it
follows whatever the runtime produced.

The optional second output Indices (the flat index into the whole bottom tensor, spatial part
row-major, or column-major when storage_order = 1) never receives a diff.

GlobalMaxPool is MaxPool with one window over all spatial positions (first maximum wins).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from caffe_port.errors import ModelError

from .jit import pjit, prange
from .registry import out_array

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


# --- window geometry (shared with avgpool.py) ------------------------------------------------------

@dataclass(frozen=True)
class PoolWindow:
    """Per spatial axis: kernel, stride, dilation, pads and output size."""
    kernel: tuple
    strides: tuple
    dilations: tuple
    pad_begin: tuple
    pad_end: tuple
    out: tuple


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _trunc_div(a, b):
    """C++ integer division (rounds toward zero), which ONNX Runtime's size arithmetic uses."""
    return -((-a) // b) if a < 0 else a // b


def _output_size(size, kernel, stride, dilation, pad_begin, pad_end, ceil_mode):
    """ONNX Runtime's output size, with span = size + pads − ((kernel − 1)·dilation + 1):
    trunc(span / stride) + 1 (C++ integer division), or with ceil_mode ceil(span / stride + 1),
    less a last window that would start past the input and its begin padding."""
    span = size + pad_begin + pad_end - ((kernel - 1) * dilation + 1)
    if not ceil_mode:
        return max(0, _trunc_div(span, stride) + 1)
    o = max(0, -(-(span + stride) // stride))
    if o > 0 and (o - 1) * stride >= size + pad_begin:
        o -= 1
    return o


def pool_window(op_type, attrs, in_spatial, out_spatial=None) -> PoolWindow:
    """Resolve a pooling node's attributes on input spatial shape ``in_spatial``.

    ``out_spatial`` (the runtime's output size) overrides the computed one; pads do not depend
    on it (SAME_* pads follow from the input size, stride and kernel alone).
    """
    nd = len(in_spatial)
    if not 1 <= nd <= 3:
        raise ModelError(f"{op_type}: {nd} spatial axes; pooling kernels handle 1, 2 or 3")
    kernel = attrs.get("kernel_shape")
    if kernel is None or len(kernel) != nd:
        raise ModelError(f"{op_type}: kernel_shape {kernel} does not match an input with {nd} spatial axes")
    kernel = tuple(int(k) for k in kernel)
    strides = tuple(int(s) for s in (attrs.get("strides") or (1,) * nd))
    dilations = tuple(int(d) for d in (attrs.get("dilations") or (1,) * nd))
    pads = tuple(int(p) for p in (attrs.get("pads") or (0,) * (2 * nd)))
    if len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd:
        raise ModelError(f"{op_type}: strides {strides}, dilations {dilations} or pads {pads} "
                         f"do not fit {nd} spatial axes")
    auto_pad = _text(attrs.get("auto_pad", "NOTSET"))
    if auto_pad not in AUTO_PADS:
        raise ModelError(f"{op_type}: auto_pad {auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
    ceil_mode = int(attrs.get("ceil_mode", 0))

    begin, end, out = [], [], []
    for i in range(nd):
        size, k, s, d = int(in_spatial[i]), kernel[i], strides[i], dilations[i]
        if auto_pad == "NOTSET":
            pb, pe = pads[i], pads[i + nd]
        elif auto_pad == "VALID":
            pb = pe = 0
        else:
            # ONNX Runtime sizes SAME padding with the undilated kernel and halves it as C++ does;
            # with stride > kernel the total can be negative (windows then skip inputs)
            total = (-(-size // s) - 1) * s + k - size
            pb = _trunc_div(total, 2) if auto_pad == "SAME_UPPER" else _trunc_div(total + 1, 2)
            pe = total - pb
        if out_spatial is not None:
            o = int(out_spatial[i])
        else:
            o = _output_size(size, k, s, d, pb, pe, ceil_mode)
        begin.append(pb)
        end.append(pe)
        out.append(o)
    return PoolWindow(kernel, strides, dilations, tuple(begin), tuple(end), tuple(out))


def window_taps(window: PoolWindow, in_spatial, clip_to_padded=False):
    """Per-axis tap tables, lifted to three axes (leading unit axes for 1-D and 2-D pooling).

    Returns (in3, out3, dil3, start, lo, hi, in_padded), each table of shape (3, max out):
    for output o of axis a the taps t with lo ≤ t < hi land inside the input at
    start + t·dilation; ``in_padded`` counts the taps inside the padded input
    [−pad_begin, in + pad_end) (the rest run past it in ceil mode). ``clip_to_padded`` also
    drops input taps outside the padded input, which only exist where SAME padding came out
    negative (stride > kernel): ONNX Runtime's AveragePool skips them, its MaxPool does not.
    """
    lift = 3 - len(in_spatial)
    in3 = (1,) * lift + tuple(int(n) for n in in_spatial)
    out3 = (1,) * lift + window.out
    kernel = (1,) * lift + window.kernel
    strides = (1,) * lift + window.strides
    dil3 = (1,) * lift + window.dilations
    pb = (0,) * lift + window.pad_begin
    pe = (0,) * lift + window.pad_end
    width = max(out3)
    start = np.zeros((3, width), np.int64)
    lo = np.zeros((3, width), np.int64)
    hi = np.zeros((3, width), np.int64)
    in_padded = np.zeros((3, width), np.int64)
    for a in range(3):
        o = np.arange(out3[a], dtype=np.int64)
        s0 = o * strides[a] - pb[a]
        d = dil3[a]
        begin, end = 0, in3[a]
        if clip_to_padded:
            begin, end = max(0, -pb[a]), min(end, in3[a] + pe[a])
        first = np.maximum(0, -((s0 - begin) // d))            # ceil((begin − s0) / d) taps fall before
        last = np.minimum(kernel[a], (end - 1 - s0) // d + 1)
        start[a, :o.size] = s0
        lo[a, :o.size] = first
        hi[a, :o.size] = np.maximum(first, last)
        in_padded[a, :o.size] = np.clip((in3[a] + pe[a] - 1 - s0) // d + 1, 0, kernel[a])
    return in3, np.array(out3, np.int64), np.array(dil3, np.int64), start, lo, hi, in_padded


# --- the two loops ----------------------------------------------------------------------------------

@pjit
def _first_max_switches(bottom, out, dil, start, lo, hi, switches):
    """bottom: (P, D, H, W); switches: (P, OD·OH·OW) ← flat index in its plane of the first
    maximal tap in scan order, −1 for a window with no tap inside the input."""
    height, width = bottom.shape[2], bottom.shape[3]
    for p in prange(bottom.shape[0]):
        plane = bottom[p]
        o = 0
        for od in range(out[0]):
            for oh in range(out[1]):
                for ow in range(out[2]):
                    if lo[0, od] >= hi[0, od] or lo[1, oh] >= hi[1, oh] or lo[2, ow] >= hi[2, ow]:
                        switches[p, o] = -1
                        o += 1
                        continue
                    # the first tap starts the window (a NaN there stays: nothing compares above it)
                    d = start[0, od] + lo[0, od] * dil[0]
                    h = start[1, oh] + lo[1, oh] * dil[1]
                    w = start[2, ow] + lo[2, ow] * dil[2]
                    best = (d * height + h) * width + w
                    best_value = plane[d, h, w]
                    for td in range(lo[0, od], hi[0, od]):
                        d = start[0, od] + td * dil[0]
                        for th in range(lo[1, oh], hi[1, oh]):
                            h = start[1, oh] + th * dil[1]
                            row = (d * height + h) * width
                            for tw in range(lo[2, ow], hi[2, ow]):
                                w = start[2, ow] + tw * dil[2]
                                v = plane[d, h, w]
                                # strict, so ties keep the first; a select, not a branch: which
                                # tap wins is data-dependent and mispredicts about half the time
                                later = v > best_value
                                best = row + w if later else best
                                best_value = v if later else best_value
                    switches[p, o] = best
                    o += 1


@pjit
def _scatter_through_switches(top_diff, switches, bottom_diff):
    """top_diff: (K, P, O); switches: (P, O); bottom_diff: (K, P, S), zeroed, accumulates."""
    for p in prange(switches.shape[0]):
        for o in range(switches.shape[1]):
            s = switches[p, o]
            if s >= 0:
                for k in range(top_diff.shape[0]):
                    bottom_diff[k, p, s] += top_diff[k, p, o]


def _switches(bottom, window):
    """Planes (N·C, D, H, W) of ``bottom`` and their switches (N·C, out size)."""
    n, c, *in_spatial = bottom.shape
    in3, out3, dil3, start, lo, hi, _ = window_taps(window, in_spatial)
    planes = np.ascontiguousarray(bottom).reshape((n * c,) + in3)
    # an index within one plane: int32 halves the array the backward writes and reads back
    # (25 MB instead of 51 at VGG16's pool1, batch 8)
    index = np.int32 if planes[0].size < 2 ** 31 else np.int64
    switches = np.empty((n * c, int(np.prod(out3))), index)
    _first_max_switches(planes, out3, dil3, start, lo, hi, switches)
    return planes, switches


def _onnx_indices(switches, bottom_shape, storage_order):
    """ONNX Indices: plane · (spatial size) + the switch, column-major over space if asked."""
    n, c, *in_spatial = bottom_shape
    size = int(np.prod(in_spatial))
    flat = switches.copy()
    if storage_order:
        flat = np.ravel_multi_index(np.unravel_index(np.maximum(flat, 0), in_spatial), in_spatial, order="F")
    return flat + np.arange(n * c, dtype=np.int64)[:, None] * size


def _pool_forward(bottom_data, window, attrs, n_outputs):
    bottom = bottom_data[0]
    planes, switches = _switches(bottom, window)
    flat = planes.reshape(planes.shape[0], -1)
    top = np.take_along_axis(flat, np.maximum(switches, 0), axis=1)
    top[switches < 0] = np.finfo(bottom.dtype).min
    out_shape = bottom.shape[:2] + window.out
    tops = [top.reshape(out_shape)]
    if n_outputs > 1:
        tops.append(_onnx_indices(switches, bottom.shape, int(attrs.get("storage_order", 0))).reshape(out_shape))
    return tops


def _pool_backward(top_diff, bottom_data, window, out=None):
    bottom = bottom_data[0]
    g = top_diff[0]
    if g is None:                       # only Indices was consumed downstream: nothing flows back
        k = next((t.shape[0] for t in top_diff if t is not None), 1)
        return [np.zeros((k,) + bottom.shape, bottom.dtype)]
    planes, switches = _switches(bottom, window)
    k = g.shape[0]
    g = np.ascontiguousarray(g, dtype=bottom.dtype).reshape(k, planes.shape[0], -1)
    if out is None or out[0] is None:
        bottom_diff = np.zeros((k,) + bottom.shape, bottom.dtype)   # calloc: zeroed as first touched
    else:
        bottom_diff = out_array(out, 0, (k,) + bottom.shape, bottom.dtype)
        bottom_diff.fill(0)
    _scatter_through_switches(g, switches, bottom_diff.reshape(k, planes.shape[0], -1))
    return [bottom_diff]


def _n_outputs(attrs):
    """Indices is computed only when the node has it (two outputs)."""
    return max(1, int(attrs.get("n_outputs", 1)))


# --- MaxPool ----------------------------------------------------------------------------------------

def maxpool_forward(bottom_data, attrs):
    window = pool_window("MaxPool", attrs, bottom_data[0].shape[2:])
    return _pool_forward(bottom_data, window, attrs, _n_outputs(attrs))


def maxpool_backward(top_diff, bottom_data, top_data, attrs, *, top_shapes, out=None):
    bottom = bottom_data[0]
    top_shape = top_shapes[0]
    window = pool_window("MaxPool", attrs, bottom.shape[2:], top_shape[2:])
    return _pool_backward(top_diff, bottom_data, window, out)


# --- GlobalMaxPool: one window covering every spatial position ---------------------------------------

def _as_one_axis(bottom):
    """(N, C, *spatial) → (N, C, S): one window over a row-major flattening keeps the scan order."""
    return np.ascontiguousarray(bottom).reshape(bottom.shape[:2] + (-1,))


def global_window(size):
    return PoolWindow((size,), (1,), (1,), (0,), (0,), (1,))


def global_maxpool_forward(bottom_data, attrs):
    bottom = bottom_data[0]
    flat = _as_one_axis(bottom)
    top = _pool_forward([flat], global_window(flat.shape[2]), attrs, 1)[0]
    return [top.reshape(bottom.shape[:2] + (1,) * (bottom.ndim - 2))]


def global_maxpool_backward(top_diff, bottom_data, top_data, attrs, *, out=None):
    bottom = bottom_data[0]
    flat = _as_one_axis(bottom)
    g = None if top_diff[0] is None else top_diff[0].reshape(top_diff[0].shape[:3] + (1,))
    memory = [None if o is None else o.reshape(o.shape[:1] + flat.shape) for o in (out or [None])]
    bottom_diff = _pool_backward([g], [flat], global_window(flat.shape[2]), memory)[0]
    return [bottom_diff.reshape(bottom_diff.shape[:1] + bottom.shape)]
