"""AveragePool and GlobalAveragePool backward on the device.

The rule and divisors are the CPU kernel's (kernels/avgpool.py): with W(o) the taps of window o
inside the input and d(o) its divisor,

    bottom_diff[k, p] = Σ_{o : p ∈ W(o)} top_diff[k, o] / d(o)

computed as a gather: one thread per bottom element walks the outputs whose windows can reach it
(per axis o·stride − pad_begin ≤ p ≤ o·stride − pad_begin + (kernel − 1)·dilation), in increasing
o as the CPU scatter adds them, keeping those with p on a tap inside the input. The backward reads
no data. GlobalAveragePool: bottom_diff = top_diff / (spatial size), broadcast.
"""
import numpy as np
from numba import cuda

from caffe_port.kernels.avgpool import pool_tables

from . import device
from .device import kernel, launch
from .maxpool import lift


@kernel
def _average_gather(top_diff, stack, planes, in3, out3, strides, pads, reach, dil3, start, lo, hi,
                    divisor, zero, bottom_diff):
    """top_diff (K, P, O) flat; start/lo/hi/divisor (3, width) flat; bottom_diff (K, P, D·H·W) flat."""
    width = start.size // 3
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
                # the position must be a tap t, lo ≤ t < hi, of the window along each axis
                offset = d - start[od]
                if offset < 0 or offset % dil3[0] != 0 or not lo[od] <= offset // dil3[0] < hi[od]:
                    continue
                for oh in range(oh_begin, oh_end):
                    offset = h - start[width + oh]
                    if (offset < 0 or offset % dil3[1] != 0
                            or not lo[width + oh] <= offset // dil3[1] < hi[width + oh]):
                        continue
                    for ow in range(ow_begin, ow_end):
                        offset = w - start[2 * width + ow]
                        if (offset < 0 or offset % dil3[2] != 0
                                or not lo[2 * width + ow] <= offset // dil3[2] < hi[2 * width + ow]):
                            continue
                        size = divisor[od] * divisor[width + oh] * divisor[2 * width + ow]
                        o = (od * out3[1] + oh) * out3[2] + ow
                        acc += top_diff[(k * planes + p) * outputs + o] / size
            bottom_diff[(k * planes + p) * plane_size + index] = acc


def avgpool_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes, top_shapes):
    """top_diff [dY (K, N, C, *out)] → [dX (K, N, C, *in)]; shapes from attrs."""
    bottom_shape, top_shape = tuple(bottom_shapes[0]), tuple(top_shapes[0])
    g = top_diff[0]
    dtype = g.dtype
    window, in3, out3, dil3, start, lo, hi, divisor = pool_tables(attrs, bottom_shape, top_shape, dtype)
    nd = len(bottom_shape) - 2
    k, planes = g.shape[0], bottom_shape[0] * bottom_shape[1]
    bottom_diff = device.empty((k,) + bottom_shape, dtype)
    reach = tuple((kk - 1) * dd for kk, dd in zip(lift(window.kernel, nd, 1), lift(window.dilations, nd, 1)))
    count = planes * int(np.prod(in3))
    if count:
        _average_gather[launch(count)](
            device.flat(g), k, planes, tuple(int(v) for v in in3), tuple(int(v) for v in out3),
            lift(window.strides, nd, 1), lift(window.pad_begin, nd, 0), reach,
            tuple(int(v) for v in dil3), device.upload(start.reshape(-1)), device.upload(lo.reshape(-1)),
            device.upload(hi.reshape(-1)), device.upload(divisor.reshape(-1)), dtype.type(0),
            device.flat(bottom_diff))
    return [bottom_diff]


def global_avgpool_backward(top_diff, bottom_data, top_data, attrs, *, bottom_shapes):
    """bottom_diff = top_diff / (number of spatial positions), broadcast over them."""
    bottom_shape = tuple(bottom_shapes[0])
    g = top_diff[0]
    k = g.shape[0]
    size = int(np.prod(bottom_shape[2:]))
    pooled = (k,) + bottom_shape[:2] + (1,) * (len(bottom_shape) - 2)
    return [device.broadcast_to(g.reshape(pooled), pooled, (k,) + bottom_shape, divisor=size)]
