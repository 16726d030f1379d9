"""MaxPool and GlobalMaxPool backward on the device: Caffe's switches, recomputed from the kept
bottom, then gathered.

The rule is the CPU kernel's (kernels/maxpool.py, which also defines the windows): the switch
s(o) of output o is the first maximal tap of its window in scan order, and

    bottom_diff[k, p] = Σ_{o : s(o) = p} top_diff[k, o]

Two kernels: one thread per output finds s(o) (as the CPU does, −1 for a window with no tap
inside the input); then one thread per bottom element walks the outputs whose windows can reach
it, o·stride − pad_begin ≤ p ≤ o·stride − pad_begin + (kernel − 1)·dilation per axis, in
increasing o, and adds the diffs of those whose switch it is. The gather needs no atomics, and
adds in the order the CPU scatter does. Shapes: bottom (N, C, *in), top_diff (K, N, C, *out),
bottom_diff (K, N, C, *in), 1 to 3 spatial axes.
"""
import numpy as np
from numba import cuda

from caffe_port.kernels.maxpool import global_window, pool_window, window_taps

from . import device
from .device import kernel, launch


@kernel
def _first_max_switches(bottom, planes, in3, out3, dil3, start, lo, hi, switches):
    """bottom (P, D, H, W) flat; start/lo/hi (3, width) tap tables; switches (P, O) flat."""
    width = start.size // 3
    outputs = out3[0] * out3[1] * out3[2]
    plane_size = in3[0] * in3[1] * in3[2]
    for e in range(cuda.grid(1), planes * outputs, cuda.gridsize(1)):
        p = e // outputs
        o = e - p * outputs
        ow = o % out3[2]
        oh = (o // out3[2]) % out3[1]
        od = o // (out3[2] * out3[1])
        best = -1
        best_value = bottom[p * plane_size]
        for td in range(lo[od], hi[od]):
            d = start[od] + td * dil3[0]
            for th in range(lo[width + oh], hi[width + oh]):
                h = start[width + oh] + th * dil3[1]
                for tw in range(lo[2 * width + ow], hi[2 * width + ow]):
                    w = start[2 * width + ow] + tw * dil3[2]
                    index = (d * in3[1] + h) * in3[2] + w
                    v = bottom[p * plane_size + index]
                    if best < 0 or v > best_value:       # strict: ties keep the first
                        best = index
                        best_value = v
        switches[e] = best


@kernel
def _gather_through_switches(top_diff, switches, stack, planes, in3, out3, strides, pads, reach,
                             zero, bottom_diff):
    """top_diff (K, P, O) flat; switches (P, O) flat; bottom_diff (K, P, D·H·W) flat, written whole."""
    plane_size = in3[0] * in3[1] * in3[2]
    outputs = out3[0] * out3[1] * out3[2]
    for e in range(cuda.grid(1), planes * plane_size, cuda.gridsize(1)):
        p = e // plane_size
        index = e - p * plane_size
        w = index % in3[2]
        h = (index // in3[2]) % in3[1]
        d = index // (in3[2] * in3[1])
        od_end = min(out3[0], (d + pads[0]) // strides[0] + 1)
        oh_end = min(out3[1], (h + pads[1]) // strides[1] + 1)
        ow_end = min(out3[2], (w + pads[2]) // strides[2] + 1)
        # the first output whose window [o·stride − pad_begin, … + reach] can hold the position
        od_begin = max(0, -((reach[0] - d - pads[0]) // strides[0]))
        oh_begin = max(0, -((reach[1] - h - pads[1]) // strides[1]))
        ow_begin = max(0, -((reach[2] - w - pads[2]) // strides[2]))
        for k in range(stack):
            acc = zero
            for od in range(od_begin, od_end):
                for oh in range(oh_begin, oh_end):
                    for ow in range(ow_begin, ow_end):
                        o = (od * out3[1] + oh) * out3[2] + ow
                        if switches[p * outputs + o] == index:
                            acc += top_diff[(k * planes + p) * outputs + o]
            bottom_diff[(k * planes + p) * plane_size + index] = acc


def lift(values, nd, fill):
    return (fill,) * (3 - nd) + tuple(int(v) for v in values)


def _pool_backward(g, bottom, window):
    """g (K, N, C, *out) and bottom (N, C, *in) device arrays → bottom_diff (K, N, C, *in)."""
    shape = tuple(bottom.shape)
    in_spatial = shape[2:]
    nd = len(in_spatial)
    in3, out3, dil3, start, lo, hi, _ = window_taps(window, in_spatial)
    planes = shape[0] * shape[1]
    outputs = int(np.prod(out3))
    k = g.shape[0]
    dtype = g.dtype
    bottom = device.operand(bottom, dtype)
    switches = device.empty((planes * outputs,), np.int64)
    if switches.size:
        _first_max_switches[launch(switches.size)](
            device.flat(bottom), planes, tuple(int(v) for v in in3), tuple(int(v) for v in out3),
            tuple(int(v) for v in dil3), device.upload(start.reshape(-1)), device.upload(lo.reshape(-1)),
            device.upload(hi.reshape(-1)), switches)
    bottom_diff = device.empty((k,) + shape, dtype)
    reach = tuple((kk - 1) * d for kk, d in zip(lift(window.kernel, nd, 1), lift(window.dilations, nd, 1)))
    count = planes * int(np.prod(in3))
    if count:
        _gather_through_switches[launch(count)](
            device.flat(g), switches, k, planes, tuple(int(v) for v in in3), tuple(int(v) for v in out3),
            lift(window.strides, nd, 1), lift(window.pad_begin, nd, 0), reach, dtype.type(0),
            device.flat(bottom_diff))
    return bottom_diff


def maxpool_backward(top_diff, bottom_data, top_data, attrs, *, top_shapes):
    """top_diff [dY (K, N, C, *out), Indices diff (never given)] → [dX (K, N, C, *in)]."""
    bottom = bottom_data[0]
    g = top_diff[0]
    if g is None:                       # only Indices was consumed downstream: nothing flows back
        k = next((t.shape[0] for t in top_diff if t is not None), 1)
        return [device.zeros((k,) + tuple(bottom.shape), np.float32)]
    window = pool_window("MaxPool", attrs, tuple(bottom.shape[2:]), tuple(top_shapes[0][2:]))
    return [_pool_backward(g, bottom, window)]


def global_maxpool_backward(top_diff, bottom_data, top_data, attrs):
    """One window over all spatial positions, flattened row-major (the scan order)."""
    bottom = bottom_data[0]
    g = top_diff[0]
    shape = tuple(bottom.shape)
    size = int(np.prod(shape[2:]))
    flat_bottom = bottom.reshape(shape[:2] + (size,))
    flat_g = g.reshape((g.shape[0],) + shape[:2] + (1,))
    bottom_diff = _pool_backward(flat_g, flat_bottom, global_window(size))
    return [bottom_diff.reshape((g.shape[0],) + shape)]
