"""Conv backward on the device: the transposed convolution as a batched matmul and a col2im
gather, a direct gather for depthwise convolutions; weight and bias diffs when asked.

The rule is the CPU kernel's (kernels/conv.py), with B = K·N stacked images, x (N, C, D, H, W),
W (M, C/G, kd, kh, kw) and dY (B, M, OD, OH, OW), all convolutions lifted to 3-D:

    cols[b, g] = W_gᵀ (C/G·kvol, M/G) @ dY[b, g] (M/G, OD·OH·OW)            (blas.matmul, batched)
    dX[b, c, z, y, x] = Σ_{i, j, l} cols[b, c, i, j, l, od, oh, ow]          (col2im)

where the sum runs over the taps whose output position od = (z + pd − i·dd)/sd (likewise oh, ow)
is integral and inside dY. col2im is a gather — one thread per dX element, taps in row-major
order as the CPU scatter adds them — so no two threads write one element and no atomics are
needed. The column buffer is bounded (``COLUMN_BUDGET``) by taking a few images, or a few output
rows of one image, at a time. Depthwise (C = G > 1):

    dX[b, c, z, y, x] = Σ_{m < M/C, i, j, l} W[c·M/C + m, 0, i, j, l] · dY[b, c·M/C + m, od, oh, ow]

Only when ``propagate_down`` asks: dW[k] = Σ_n dY[k, n]_g @ im2col(x[n])_gᵀ and db[k, o] = Σ dY[k, :, o].
Shapes in and out as in the CPU kernel: dY (K, N, M, *OS) → dX (K, N, C, *S), dW (K, *W.shape),
db (K, M).
"""
import numpy as np
from numba import cuda

from caffe_port.errors import ModelError
from caffe_port.kernels.conv import Geometry

from . import blas, device
from .device import kernel, launch

# Bytes of column buffer held at once on the device: a VGG16 conv1_2 image (64·9 rows of 224²
# pixels, 116 MB in float32) fits whole, so chunks are whole images there. Not tuned on a GPU.
COLUMN_BUDGET = 256 << 20


def _geo(geo):
    """(kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, OD, OH, OW) for the kernels."""
    return tuple(int(v) for v in geo.kernel + geo.strides + geo.begin + geo.dilations + geo.out)


@kernel
def _col2im(cols, geo, nb, channels, depth, height, width, r0, nr, zero, first, b0, bottom_diff):
    """bottom_diff (B, C, D, H, W) flat, images b0 … b0 + nb − 1: (+)= the columns of
    cols (nb, C, kd, kh, kw, nr, OW) flat, which hold output rows r0 … r0 + nr − 1 (row = od·OH + oh)."""
    kd, kh, kw = geo[0], geo[1], geo[2]
    sd, sh, sw = geo[3], geo[4], geo[5]
    pd, ph, pw = geo[6], geo[7], geo[8]
    dd, dh, dw = geo[9], geo[10], geo[11]
    out_d, out_h, out_w = geo[12], geo[13], geo[14]
    count = nb * channels * depth * height * width
    for e in range(cuda.grid(1), count, cuda.gridsize(1)):
        x = e % width
        rest = e // width
        y = rest % height
        rest //= height
        z = rest % depth
        rest //= depth
        c = rest % channels
        b = rest // channels
        acc = zero
        for i in range(kd):
            tz = z + pd - i * dd
            if tz < 0 or tz % sd != 0 or tz // sd >= out_d:
                continue
            od = tz // sd
            for j in range(kh):
                ty = y + ph - j * dh
                if ty < 0 or ty % sh != 0 or ty // sh >= out_h:
                    continue
                r = od * out_h + ty // sh - r0
                if r < 0 or r >= nr:
                    continue
                for l in range(kw):
                    tx = x + pw - l * dw
                    if tx < 0 or tx % sw != 0 or tx // sw >= out_w:
                        continue
                    acc += cols[((((((b * channels + c) * kd + i) * kh + j) * kw + l) * nr + r) * out_w
                                 + tx // sw)]
        target = b0 * channels * depth * height * width + e
        if first:
            bottom_diff[target] = acc
        else:
            bottom_diff[target] += acc


@kernel
def _im2col(bottom_data, geo, b0, channels, depth, height, width, zero, cols):
    """cols (nb, C, kd, kh, kw, OD·OH, OW) flat ← bottom_data (N, C, D, H, W) flat, zero outside."""
    kd, kh, kw = geo[0], geo[1], geo[2]
    sd, sh, sw = geo[3], geo[4], geo[5]
    pd, ph, pw = geo[6], geo[7], geo[8]
    dd, dh, dw = geo[9], geo[10], geo[11]
    out_d, out_h, out_w = geo[12], geo[13], geo[14]
    for e in range(cuda.grid(1), cols.size, cuda.gridsize(1)):
        ow = e % out_w
        rest = e // out_w
        oh = rest % out_h
        rest //= out_h
        od = rest % out_d
        rest //= out_d
        l = rest % kw
        rest //= kw
        j = rest % kh
        rest //= kh
        i = rest % kd
        rest //= kd
        c = rest % channels
        b = rest // channels
        z = od * sd - pd + i * dd
        y = oh * sh - ph + j * dh
        x = ow * sw - pw + l * dw
        if 0 <= z < depth and 0 <= y < height and 0 <= x < width:
            cols[e] = bottom_data[((((b0 + b) * channels + c) * depth + z) * height + y) * width + x]
        else:
            cols[e] = zero


@kernel
def _depthwise(top_diff, weight, geo, images, channels, depth, height, width, mult, zero, bottom_diff):
    """top_diff (B, M, OD, OH, OW), weight (M, kd, kh, kw), bottom_diff (B, C, D, H, W), all flat;
    M = C·mult. One thread per dX element, summing over m, then the taps in row-major order."""
    kd, kh, kw = geo[0], geo[1], geo[2]
    sd, sh, sw = geo[3], geo[4], geo[5]
    pd, ph, pw = geo[6], geo[7], geo[8]
    dd, dh, dw = geo[9], geo[10], geo[11]
    out_d, out_h, out_w = geo[12], geo[13], geo[14]
    count = images * channels * depth * height * width
    for e in range(cuda.grid(1), count, cuda.gridsize(1)):
        x = e % width
        rest = e // width
        y = rest % height
        rest //= height
        z = rest % depth
        rest //= depth
        c = rest % channels
        b = rest // channels
        acc = zero
        for m in range(mult):
            o = c * mult + m
            for i in range(kd):
                tz = z + pd - i * dd
                if tz < 0 or tz % sd != 0 or tz // sd >= out_d:
                    continue
                for j in range(kh):
                    ty = y + ph - j * dh
                    if ty < 0 or ty % sh != 0 or ty // sh >= out_h:
                        continue
                    for l in range(kw):
                        tx = x + pw - l * dw
                        if tx < 0 or tx % sw != 0 or tx // sw >= out_w:
                            continue
                        acc += (weight[((o * kd + i) * kh + j) * kw + l]
                                * top_diff[(((b * channels * mult + o) * out_d + tz // sd) * out_h
                                            + ty // sh) * out_w + tx // sw])
        bottom_diff[e] = acc


def _chunks(n_images, rows, row_bytes):
    """(b0, nb, r0, nr): whole images while one fits the budget, else a few output rows of one."""
    image_bytes = rows * row_bytes
    if image_bytes <= COLUMN_BUDGET:
        per = max(1, COLUMN_BUDGET // max(1, image_bytes))
        for b0 in range(0, n_images, per):
            yield b0, min(per, n_images - b0), 0, rows
    else:
        per = max(1, COLUMN_BUDGET // row_bytes)
        for b0 in range(n_images):
            for r0 in range(0, rows, per):
                yield b0, 1, r0, min(per, rows - r0)


def _input_diff(dy, weight, geo, channels):
    """dy (B, M, OD, OH, OW) → dX (B, C, D, H, W) on the device."""
    images, m_out = dy.shape[0], dy.shape[1]
    groups = geo.group
    out_d, out_h, out_w = geo.out
    depth, height, width = geo.spatial
    dtype = dy.dtype
    zero = dtype.type(0)
    packed = _geo(geo)
    bottom_diff = device.empty((images, channels, depth, height, width), dtype)
    if channels == groups and groups > 1:
        count = bottom_diff.size
        _depthwise[launch(count)](device.flat(dy), device.flat(weight), packed, images, channels, depth,
                                  height, width, m_out // channels, zero, device.flat(bottom_diff))
        return bottom_diff
    rows, ckk = out_d * out_h, channels * geo.kvol
    wt = weight.reshape(groups, m_out // groups, ckk // groups)          # read transposed
    dy3 = dy.reshape(images, m_out, rows * out_w)
    row_bytes = ckk * out_w * dtype.itemsize
    largest = max(nb * nr for _, nb, _, nr in _chunks(images, rows, row_bytes))
    buf = device.empty((largest * ckk * out_w,), dtype)
    for b0, nb, r0, nr in _chunks(images, rows, row_bytes):
        if nr == rows:
            rhs = dy3[b0:b0 + nb].reshape(nb * groups, m_out // groups, rows * out_w)
        else:
            rhs = dy3[b0].reshape(groups, m_out // groups, rows * out_w)[:, :, r0 * out_w:(r0 + nr) * out_w]
        cols = buf[:nb * ckk * nr * out_w].reshape(nb * groups, ckk // groups, nr * out_w)
        blas.matmul(wt, rhs, cols, trans_a=True)
        count = nb * channels * depth * height * width
        _col2im[launch(count)](device.flat(cols), packed, nb, channels, depth, height, width, r0, nr,
                               zero, r0 == 0, b0, device.flat(bottom_diff))
    return bottom_diff


def _weight_diff(dy, x, weight_shape, geo):
    """dy (K, N, M, OD, OH, OW), x (N, C, D, H, W) → dW (K, *W.shape), summed over the batch."""
    k_stack, images, m_out = dy.shape[0], dy.shape[1], dy.shape[2]
    channels, groups = x.shape[1], geo.group
    out_d, out_h, out_w = geo.out
    depth, height, width = geo.spatial
    pixels, ckk = out_d * out_h * out_w, channels * geo.kvol
    dtype = dy.dtype
    packed = _geo(geo)
    cols = device.empty((ckk * pixels,), dtype)
    part = device.empty((groups, m_out // groups, ckk // groups), dtype)
    weight_diff = device.zeros((k_stack, groups, m_out // groups, ckk // groups), dtype)
    for n in range(images):
        _im2col[launch(cols.size)](device.flat(x), packed, n, channels, depth, height, width,
                                   dtype.type(0), cols)
        rhs = cols.reshape(groups, ckk // groups, pixels)
        for k in range(k_stack):
            lhs = dy[k, n].reshape(groups, m_out // groups, pixels)
            blas.matmul(lhs, rhs, part, trans_b=True)
            device.accumulate(weight_diff[k], part)
    return weight_diff.reshape((k_stack,) + tuple(weight_shape))


def conv_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    """top_diff [dY (K, N, M, *OS)] → [dX (K, N, C, *S), dW (K, *W.shape) or None, db (K, M) or None]."""
    dy = top_diff[0]
    propagate_down = list(propagate_down) + [False] * 3
    n_in = len(bottom_data)
    if dy is None:
        return [None] * n_in
    weight = bottom_data[1]
    x_shape = tuple(bottom_shapes[0]) if bottom_data[0] is None else tuple(bottom_data[0].shape)
    geo = Geometry(x_shape, tuple(weight.shape), attrs)
    dtype = dy.dtype
    k_stack, images, m_out = dy.shape[0], x_shape[0], weight.shape[0]
    out = tuple(dy.shape[3:])
    if out != tuple(geo.out[3 - geo.nd:]):
        raise ModelError(f"Conv node {attrs.get('node_name', 'Conv')!r}: top diff extent {out} but the "
                         f"attributes give {tuple(geo.out[3 - geo.nd:])}")
    dy6 = dy.reshape((k_stack, images, m_out) + tuple(geo.out))
    bottom_diff = [None] * n_in
    if propagate_down[0]:
        w = device.operand(weight, dtype)
        dx = _input_diff(dy6.reshape((k_stack * images, m_out) + tuple(geo.out)), w, geo, x_shape[1])
        bottom_diff[0] = dx.reshape((k_stack,) + x_shape)
    if propagate_down[1]:
        if bottom_data[0] is None:
            raise ValueError(f"Conv node {attrs.get('node_name', 'Conv')!r}: the weight diff needs the "
                             "input x, which the runtime did not keep")
        x = device.operand(bottom_data[0], dtype)
        x5 = x.reshape(x_shape[:2] + tuple(geo.spatial))
        bottom_diff[1] = _weight_diff(dy6, x5, tuple(weight.shape), geo)
    if n_in > 2 and propagate_down[2]:
        bottom_diff[2] = device.sum_axes(dy.reshape(k_stack, images, m_out, int(np.prod(out))), (1, 3))
    return bottom_diff
