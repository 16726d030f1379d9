"""MatMul (numpy.matmul semantics) backward on the device.

The rule is the CPU kernel's (kernels/matmul.py): with A (..., M, P), B (..., P, N) (1-D operands
promoted as numpy does) and dY (K, *batch, M, N),

    dA[k] = dY[k] @ Bᵀ      summed over the batch axes A was broadcast along
    dB[k] = Aᵀ @ dY[k]      summed likewise

each only when ``propagate_down`` asks. A 2-D B (a fully connected layer written as MatMul) takes
one product over all K·batch·M rows for dA, and one per k over the batch·M rows for dB; otherwise
the operand is laid out over the full batch (once, when it was broadcast) and the product runs
batched over K·batch entries, the operand repeating every batch entries.
"""
import numpy as np

from caffe_port.kernels.matmul import promoted

from . import blas, device


def _full_batch(x, shape, batch):
    """x of promoted ``shape`` (…, R, S) as a contiguous (prod(batch), R, S), broadcast if needed."""
    full = tuple(batch) + tuple(shape[-2:])
    if tuple(shape) != full:
        x = device.broadcast_to(x.reshape(shape), shape, full)
    count = int(np.prod(batch, dtype=np.int64))
    return x.reshape((count,) + tuple(shape[-2:]))


def matmul_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    """top_diff [dY (K, *Y.shape)] → [dA (K, *A.shape) or None, dB (K, *B.shape) or None]."""
    dy = top_diff[0]
    if dy is None:
        return [None, None]
    propagate_down = list(propagate_down) + [False, False]
    dtype = dy.dtype
    shapes = [tuple(bottom_shapes[i]) if bottom_data[i] is None else tuple(bottom_data[i].shape)
              for i in (0, 1)]
    a_p, b_p = promoted(shapes[0], True), promoted(shapes[1], False)
    m, p, n = a_p[-2], a_p[-1], b_p[-1]
    k = dy.shape[0]
    batch = tuple(np.broadcast_shapes(a_p[:-2], b_p[:-2]))
    rows = int(np.prod(batch, dtype=np.int64))
    bottom_diff = [None, None]
    if propagate_down[0]:
        b = device.operand(bottom_data[1], dtype).reshape(b_p)
        if len(b_p) == 2:
            d_a = device.empty((1, k * rows * m, p), dtype)
            blas.matmul(dy.reshape(1, k * rows * m, n), b.reshape((1,) + b_p), d_a, trans_b=True)
            d_a = d_a.reshape((k,) + a_p)
        else:
            d_full = device.empty((k * rows, m, p), dtype)
            blas.matmul(dy.reshape(k * rows, m, n), _full_batch(b, b_p, batch), d_full, trans_b=True)
            d_a = device.reduce_to(d_full.reshape((k,) + batch + (m, p)), a_p)
        bottom_diff[0] = d_a.reshape((k,) + shapes[0])
    if propagate_down[1]:
        a = device.operand(bottom_data[0], dtype).reshape(a_p)
        if len(b_p) == 2:
            a_rows = _full_batch(a, a_p, batch).reshape(1, rows * m, p)
            d_b = device.empty((k, p, n), dtype)
            blas.matmul(a_rows, dy.reshape(k, rows * m, n), d_b, trans_a=True)
        else:
            d_full = device.empty((k * rows, p, n), dtype)
            blas.matmul(_full_batch(a, a_p, batch), dy.reshape(k * rows, m, n), d_full, trans_a=True)
            d_b = device.reduce_to(d_full.reshape((k,) + batch + (p, n)), b_p)
        bottom_diff[1] = d_b.reshape((k,) + shapes[1])
    return bottom_diff
