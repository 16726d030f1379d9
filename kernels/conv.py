"""Conv (ONNX Conv, opsets 1–21): 1-D, 2-D and 3-D convolution with groups, strides,
dilations, pads and auto_pad, and its backward.

Forward, with x (N, C, H, W), W (M, C/G, kh, kw), group G (output channel o sees the input
channels of its group), stride s, dilation d and begin pad p:

    y[n,o,u,v] = b[o] + Σ_{c∈group(o), i, j} W[o, c mod C/G, i, j]
                                               · x[n, c, u·s − p + i·d, v·s − p + j·d]

(x is zero outside its bounds). Backward, the transposed convolution of the top diff with W:

    dX[n,c,y,x] = Σ_{o∈group(c), i, j} W[o, c mod C/G, i, j]
                                        · dY[n, o, (y + p − i·d)/s, (x + p − j·d)/s]

summing only where both quotients are integral and inside dY. With a stacked top diff the
shapes are dY (K, N, M, OH, OW) → dX (K, N, C, H, W). Only if ``propagate_down`` asks (W and b
are normally constants) also

    dW[k,o,c',i,j] = Σ_{n,u,v} dY[k,n,o,u,v] · x[n, c, u·s − p + i·d, v·s − p + j·d]
                                                        (K, M, C/G, kh, kw), c = group(o)·C/G + c'
    db[k,o]        = Σ_{n,u,v} dY[k,n,o,u,v]            (K, M)

1-D and 2-D convolutions run as 3-D ones with unit leading extents. The work is a BLAS matmul
per group over the K·N stacked images, W_gᵀ (C/G·kvol, M/G) @ dY_g (M/G, images·OD·OH·OW),
giving a column buffer that a Numba col2im scatters into dX; the buffer is bounded
(``COLUMN_BUDGET``) by taking a few images, or a few output rows of one image, at a time.
Depthwise convolutions (one input channel per group) skip the matmul and scatter directly.
"""
import numpy as np

from caffe_port.errors import ModelError

from .jit import jit, pjit, prange

# Bytes of column buffer held at once. Small enough that a chunk stays in cache between the
# matmul that writes it and the col2im that reads it: of 2–64 MiB, 8 MiB was fastest over the
# VGG16 layers (conv1_2 backward 21 ms at 8 MiB, 32 ms at 64 MiB, on 2 cores).
COLUMN_BUDGET = 8 << 20


# --- geometry: every convolution as a 3-D one ----------------------------------------------------

def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _ints(attrs, name, default):
    """An ints attribute as a list; absent or empty (ONNX writes both) means the default."""
    value = attrs.get(name)
    return list(default) if value is None or len(value) == 0 else [int(v) for v in value]


class Geometry:
    """Kernel, strides, dilations and begin pads in 3-D, and the input/output spatial extents."""

    def __init__(self, x_shape, w_shape, attrs):
        name = attrs.get("node_name", "Conv")
        nd = len(w_shape) - 2
        if not 1 <= nd <= 3:
            raise ModelError(f"Conv node {name!r}: {nd} spatial dimensions "
                             "(only 1, 2 or 3 are supported)")
        if len(x_shape) != nd + 2:
            raise ModelError(f"Conv node {name!r}: input of rank {len(x_shape)} with a weight "
                             f"of rank {len(w_shape)}")
        kernel = list(w_shape[2:])
        if _ints(attrs, "kernel_shape", kernel) != kernel:
            raise ModelError(f"Conv node {name!r}: kernel_shape {_ints(attrs, 'kernel_shape', [])} "
                             f"differs from the weight's {kernel}")
        strides = _ints(attrs, "strides", [1] * nd)
        dilations = _ints(attrs, "dilations", [1] * nd)
        self.group = int(attrs.get("group", 1))
        if x_shape[1] != w_shape[1] * self.group or w_shape[0] % self.group:
            raise ModelError(f"Conv node {name!r}: {x_shape[1]} input channels and weight "
                             f"{tuple(w_shape)} do not fit group={self.group}")
        spatial = list(x_shape[2:])
        auto_pad = _text(attrs.get("auto_pad", "NOTSET"))
        extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            # ONNX spec: out = ceil(in / s); the total pad (out−1)·s + extent − in is split
            # evenly, the odd unit going to the end (SAME_UPPER) or to the beginning (SAME_LOWER).
            out = [-(-n // s) for n, s in zip(spatial, strides)]
            total = [max(0, (o - 1) * s + e - n)
                     for o, s, e, n in zip(out, strides, extent, spatial)]
            begin = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
        elif auto_pad == "VALID":
            begin = [0] * nd
            out = [(n - e) // s + 1 for n, e, s in zip(spatial, extent, strides)]
        elif auto_pad == "NOTSET":
            pads = _ints(attrs, "pads", [0] * (2 * nd))
            begin = pads[:nd]
            out = [(n + b + e_ - e) // s + 1
                   for n, b, e_, e, s in zip(spatial, begin, pads[nd:], extent, strides)]
        else:
            raise ModelError(f"Conv node {name!r}: unknown auto_pad {auto_pad!r}")
        if min(out) < 1:
            raise ModelError(f"Conv node {name!r}: output extent {out} from input {spatial}")
        lead = 3 - nd
        self.nd = nd
        self.kernel = [1] * lead + kernel
        self.strides = [1] * lead + strides
        self.dilations = [1] * lead + dilations
        self.begin = [0] * lead + begin
        self.spatial = [1] * lead + spatial
        self.out = [1] * lead + out

    def packed(self):
        """(kd, kh, kw, sd, sh, sw, pd, ph, pw, dd, dh, dw, OH) for the Numba kernels."""
        return np.array(self.kernel + self.strides + self.begin + self.dilations + [self.out[1]],
                        dtype=np.int64)

    @property
    def kvol(self):
        return self.kernel[0] * self.kernel[1] * self.kernel[2]


def _as_3d(a, spatial):
    """View (N, C, *spatial) of any rank as (N, C, D, H, W)."""
    return a.reshape(a.shape[:2] + tuple(spatial))


def _chunks(n_images, rows, row_bytes):
    """(b0, nb, r0, nr): whole images while one fits the budget, else a few output rows of one."""
    budget = COLUMN_BUDGET
    image_bytes = rows * row_bytes
    if image_bytes <= budget:
        per = max(1, budget // image_bytes)
        for b0 in range(0, n_images, per):
            yield b0, min(per, n_images - b0), 0, rows
    else:
        per = max(1, budget // row_bytes)
        for b0 in range(n_images):
            for r0 in range(0, rows, per):
                yield b0, 1, r0, min(per, rows - r0)


def _buffer_elems(n_images, rows, row_elems, itemsize):
    """Elements of the largest chunk's column buffer."""
    chunks = _chunks(n_images, rows, row_elems * itemsize)
    return max(nb * nr for _, nb, _, nr in chunks) * row_elems


# --- Numba kernels: column layout cols[c, i, j, l, b, r, v] for channel c, kernel tap (i, j, l),
#     image b of the chunk, output row r of the chunk (row = od·OH + oh), output column v ---------

@jit
def _valid_columns(x0, sw, width, out_width):
    """The output columns v with 0 <= v·sw + x0 < width, as [lo, hi)."""
    lo = 0 if x0 >= 0 else (-x0 + sw - 1) // sw
    hi = (width - 1 - x0) // sw + 1 if width - 1 - x0 >= 0 else 0
    hi = min(hi, out_width)
    return min(lo, hi), hi


# Unit-stride rows go through these two with slices indexed from 0: Numba then needs no
# negative-index wrap-around, and LLVM vectorises the loop (2–5× on col2im and depthwise rows).

@jit
def _copy_row(src, dst):
    for v in range(dst.shape[0]):
        dst[v] = src[v]


@jit
def _add_row(src, dst):
    for v in range(dst.shape[0]):
        dst[v] += src[v]


@jit
def _add_scaled_row(scale, src, dst):
    for v in range(dst.shape[0]):
        dst[v] += scale * src[v]


@pjit
def _im2col(bottom_data, geo, b0, r0, cols):
    """cols (C, kd, kh, kw, B, R, OW) ← bottom_data (N, C, D, H, W), zero outside the input."""
    C, kd, kh, kw, B, R, OW = cols.shape
    D, H, W = bottom_data.shape[2], bottom_data.shape[3], bottom_data.shape[4]
    sd, sh, sw = geo[3], geo[4], geo[5]
    pd, ph, pw = geo[6], geo[7], geo[8]
    dd, dh, dw = geo[9], geo[10], geo[11]
    OH = geo[12]
    for task in prange(C * B):
        c = task // B
        b = task - c * B
        for i in range(kd):
            for j in range(kh):
                for l in range(kw):
                    x0 = l * dw - pw
                    lo, hi = _valid_columns(x0, sw, W, OW)
                    for rr in range(R):
                        r = r0 + rr
                        od = r // OH
                        z = od * sd - pd + i * dd
                        y = (r - od * OH) * sh - ph + j * dh
                        row = cols[c, i, j, l, b, rr]
                        if z < 0 or z >= D or y < 0 or y >= H:
                            row[:] = 0
                            continue
                        row[:lo] = 0
                        row[hi:] = 0
                        if sw == 1:
                            _copy_row(bottom_data[b0 + b, c, z, y, lo + x0:hi + x0], row[lo:hi])
                        else:
                            for v in range(lo, hi):
                                row[v] = bottom_data[b0 + b, c, z, y, v * sw + x0]


@pjit
def _col2im(cols, geo, b0, r0, zero_first, bottom_diff):
    """bottom_diff (N, C, D, H, W) += the columns of cols (C, kd, kh, kw, B, R, OW) at their pixels.

    One task per (channel, image) plane, so no two tasks write the same element; ``zero_first``
    clears the planes (the first chunk of each image)."""
    C, kd, kh, kw, B, R, OW = cols.shape
    D, H, W = bottom_diff.shape[2], bottom_diff.shape[3], bottom_diff.shape[4]
    sd, sh, sw = geo[3], geo[4], geo[5]
    pd, ph, pw = geo[6], geo[7], geo[8]
    dd, dh, dw = geo[9], geo[10], geo[11]
    OH = geo[12]
    for task in prange(C * B):
        c = task // B
        b = task - c * B
        plane = bottom_diff[b0 + b, c]
        if zero_first:
            plane[:] = 0
        for i in range(kd):
            for j in range(kh):
                for l in range(kw):
                    x0 = l * dw - pw
                    lo, hi = _valid_columns(x0, sw, W, OW)
                    for rr in range(R):
                        r = r0 + rr
                        od = r // OH
                        z = od * sd - pd + i * dd
                        y = (r - od * OH) * sh - ph + j * dh
                        if z < 0 or z >= D or y < 0 or y >= H:
                            continue
                        if sw == 1:
                            _add_row(cols[c, i, j, l, b, rr, lo:hi], plane[z, y, lo + x0:hi + x0])
                        else:
                            for v in range(lo, hi):
                                plane[z, y, v * sw + x0] += cols[c, i, j, l, b, rr, v]


@pjit
def _depthwise_backward(top_diff, weight, geo, bottom_diff):
    """One input channel per group: dX[b,c] = Σ_{m,taps} W[c·mult+m, tap] · dY[b, c·mult+m],
    scattered.

    top_diff (N, M, OD, OH, OW), weight (M, kd, kh, kw), bottom_diff (N, C, D, H, W),
    M = C·mult."""
    N, C, D, H, W = bottom_diff.shape
    M, OD, OH, OW = top_diff.shape[1], top_diff.shape[2], top_diff.shape[3], top_diff.shape[4]
    kd, kh, kw = weight.shape[1], weight.shape[2], weight.shape[3]
    sd, sh, sw = geo[3], geo[4], geo[5]
    pd, ph, pw = geo[6], geo[7], geo[8]
    dd, dh, dw = geo[9], geo[10], geo[11]
    mult = M // C
    for task in prange(N * C):
        b = task // C
        c = task - b * C
        plane = bottom_diff[b, c]
        plane[:] = 0
        for m in range(mult):
            o = c * mult + m
            for i in range(kd):
                for j in range(kh):
                    for l in range(kw):
                        w = weight[o, i, j, l]
                        x0 = l * dw - pw
                        lo, hi = _valid_columns(x0, sw, W, OW)
                        for od in range(OD):
                            z = od * sd - pd + i * dd
                            if z < 0 or z >= D:
                                continue
                            for oh in range(OH):
                                y = oh * sh - ph + j * dh
                                if y < 0 or y >= H:
                                    continue
                                if sw == 1:
                                    _add_scaled_row(w, top_diff[b, o, od, oh, lo:hi],
                                                    plane[z, y, lo + x0:hi + x0])
                                else:
                                    for v in range(lo, hi):
                                        plane[z, y, v * sw + x0] += w * top_diff[b, o, od, oh, v]


# --- forward ------------------------------------------------------------------------------------

def conv_forward(bottom_data, attrs):
    """bottom_data = [x (N, C, *S), W (M, C/G, *k), optional b (M,)] → [y (N, M, *OS)]."""
    x, weight = bottom_data[0], bottom_data[1]
    bias = bottom_data[2] if len(bottom_data) > 2 else None
    geo = Geometry(x.shape, weight.shape, attrs)
    dtype = x.dtype
    weight = weight.astype(dtype, copy=False)
    N, C, M, G = x.shape[0], x.shape[1], weight.shape[0], geo.group
    x5 = np.ascontiguousarray(_as_3d(x, geo.spatial))
    OD, OH, OW = geo.out
    rows, ckk = OD * OH, C * geo.kvol
    lhs = weight.reshape(G, M // G, ckk // G)
    top = np.empty((N, M, rows * OW), dtype)
    buf = np.empty(_buffer_elems(N, rows, ckk * OW, dtype.itemsize), dtype)
    packed = geo.packed()
    for b0, nb, r0, nr in _chunks(N, rows, ckk * OW * dtype.itemsize):
        cols = buf[:ckk * nb * nr * OW].reshape((C,) + tuple(geo.kernel) + (nb, nr, OW))
        _im2col(x5, packed, b0, r0, cols)
        part = np.matmul(lhs, cols.reshape(G, ckk // G, nb * nr * OW))       # (G, M/G, nb·nr·OW)
        top[b0:b0 + nb, :, r0 * OW:(r0 + nr) * OW] = \
            part.reshape(M, nb, nr * OW).transpose(1, 0, 2)
    if bias is not None:
        top += bias.astype(dtype, copy=False)[:, None]
    return [top.reshape((N, M) + tuple(geo.out[3 - geo.nd:]))]


# --- backward -----------------------------------------------------------------------------------

def input_diff(dy5, weight, geo, C):
    """dy5 (B, M, OD, OH, OW) → dX (B, C, D, H, W), the transposed convolution."""
    B, M = dy5.shape[:2]
    G = geo.group
    OD, OH, OW = geo.out
    dtype = dy5.dtype
    bottom_diff = np.empty((B, C) + tuple(geo.spatial), dtype)
    packed = geo.packed()
    if C == G and G > 1:
        _depthwise_backward(dy5, np.ascontiguousarray(weight.reshape((M,) + tuple(geo.kernel))),
                            packed, bottom_diff)
        return bottom_diff
    rows, ckk = OD * OH, C * geo.kvol
    wt = weight.reshape(G, M // G, ckk // G).transpose(0, 2, 1)                # (G, C/G·kvol, M/G)
    dy_rows = dy5.reshape(B, G, M // G, rows * OW)
    buf = np.empty(_buffer_elems(B, rows, ckk * OW, dtype.itemsize), dtype)
    for b0, nb, r0, nr in _chunks(B, rows, ckk * OW * dtype.itemsize):
        part = dy_rows[b0:b0 + nb, :, :, r0 * OW:(r0 + nr) * OW]
        # One matmul per group over all images of the chunk: images go beside the output pixels.
        rhs = part[0] if nb == 1 else part.transpose(1, 2, 0, 3).reshape(G, M // G, nb * nr * OW)
        cols = buf[:ckk * nb * nr * OW].reshape(G, ckk // G, nb * nr * OW)
        np.matmul(wt, rhs, out=cols)
        _col2im(cols.reshape((C,) + tuple(geo.kernel) + (nb, nr, OW)), packed, b0, r0, r0 == 0,
                bottom_diff)
    return bottom_diff


def _weight_diff(dy6, x5, weight, geo):
    """dy6 (K, N, M, OD, OH, OW), x5 (N, C, D, H, W) → dW (K, *W.shape), summed over the batch."""
    K, N, M = dy6.shape[:3]
    C, G = x5.shape[1], geo.group
    OD, OH, OW = geo.out
    rows, ckk = OD * OH, C * geo.kvol
    dtype = dy6.dtype
    acc = np.zeros((G, K * (M // G), ckk // G), dtype)
    dy_rows = dy6.reshape(K, N, G, M // G, rows * OW)
    buf = np.empty(_buffer_elems(N, rows, ckk * OW, dtype.itemsize), dtype)
    packed = geo.packed()
    for b0, nb, r0, nr in _chunks(N, rows, ckk * OW * dtype.itemsize):
        cols = buf[:ckk * nb * nr * OW].reshape((C,) + tuple(geo.kernel) + (nb, nr, OW))
        _im2col(x5, packed, b0, r0, cols)
        part = dy_rows[:, b0:b0 + nb, :, :, r0 * OW:(r0 + nr) * OW]     # (K, nb, G, M/G, nr·OW)
        lhs = part.transpose(2, 0, 3, 1, 4).reshape(G, K * (M // G), nb * nr * OW)
        acc += np.matmul(lhs, cols.reshape(G, ckk // G, nb * nr * OW).transpose(0, 2, 1))
    return acc.reshape(G, K, M // G, ckk // G).transpose(1, 0, 2, 3).reshape((K,) + weight.shape)


def conv_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    """top_diff [dY (K, N, M, *OS)]
    → [dX (K, N, C, *S), dW (K, *W.shape) or None, db (K, M) or None].

    Only dX is computed unless ``propagate_down`` asks for dW (needs x) or db."""
    dy = top_diff[0]
    propagate_down = list(propagate_down) + [False] * 3
    n_in = len(bottom_data)
    if dy is None:
        return [None] * n_in
    weight = bottom_data[1]
    x_shape = tuple(bottom_shapes[0]) if bottom_data[0] is None else bottom_data[0].shape
    geo = Geometry(x_shape, weight.shape, attrs)
    dtype = dy.dtype
    weight = weight.astype(dtype, copy=False)
    K, N, M = dy.shape[0], x_shape[0], weight.shape[0]
    out = tuple(dy.shape[3:])
    if out != tuple(geo.out[3 - geo.nd:]):
        raise ModelError(f"Conv node {attrs.get('node_name', 'Conv')!r}: top diff extent {out} "
                         f"but the attributes give {tuple(geo.out[3 - geo.nd:])}")
    dy6 = np.ascontiguousarray(dy).reshape((K, N, M) + tuple(geo.out))
    bottom_diff = [None] * n_in
    if propagate_down[0]:
        dx = input_diff(dy6.reshape((K * N, M) + tuple(geo.out)), weight, geo, x_shape[1])
        bottom_diff[0] = dx.reshape((K,) + x_shape)
    if propagate_down[1]:
        if bottom_data[0] is None:
            raise ValueError(f"Conv node {attrs.get('node_name', 'Conv')!r}: the weight diff "
                             "needs the input x, which the runtime did not keep")
        x5 = np.ascontiguousarray(_as_3d(bottom_data[0].astype(dtype, copy=False), geo.spatial))
        bottom_diff[1] = _weight_diff(dy6, x5, weight, geo)
    if n_in > 2 and propagate_down[2]:
        bottom_diff[2] = dy6.reshape(K, N, M, -1).sum(axis=(1, 3))
    return bottom_diff
