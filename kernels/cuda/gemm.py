"""Gemm (the fully connected layer) backward on the device: Y = alpha · op(A) · op(B) + beta · C.

The rule is the CPU kernel's (kernels/gemm.py), with dY (K, M, N):

    d op(A)[k] = alpha · dY[k] · op(B)ᵀ      one matmul over the K·M stacked rows, (K, M, P)
    d op(B)[k] = alpha · op(A)ᵀ · dY[k]      (K, P, N)
    dC[k]      = beta · dY[k] summed over the axes C was broadcast along

each transposed back when transA / transB, and only when ``propagate_down`` asks. The products run
on blas.matmul (cuBLAS through CuPy, or the tiled Numba kernel), reading B in place transposed.
"""
from . import blas, device


def _transposed(x):
    """(K, R, S) → a new contiguous (K, S, R)."""
    k, r, s = x.shape
    out = device.empty((k, s, r), x.dtype)
    device.copy_layout(x, device.layout((k, s, r), (r * s, 1, s)), out, device.layout((k, s, r)))
    return out


def gemm_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    """top_diff [dY (K, M, N)] → [dA (K, *A.shape), dB (K, *B.shape) or None, dC (K, *C.shape) or None]."""
    dy = top_diff[0]
    n_in = len(bottom_data)
    if dy is None:
        return [None] * n_in
    propagate_down = list(propagate_down) + [False] * 3
    dtype = dy.dtype
    trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    k, m, n = dy.shape
    alpha = float(attrs.get("alpha", 1.0))
    bottom_diff = [None] * n_in
    if propagate_down[0]:
        b = device.operand(bottom_data[1], dtype)
        b3 = b.reshape((1,) + tuple(b.shape))
        p = b.shape[1] if trans_b else b.shape[0]
        d_op_a = device.empty((1, k * m, p), dtype)
        # op(B)ᵀ is B itself when transB, else B read transposed
        blas.matmul(dy.reshape(1, k * m, n), b3, d_op_a, trans_b=not trans_b, alpha=alpha)
        d_op_a = d_op_a.reshape(k, m, p)
        bottom_diff[0] = _transposed(d_op_a) if trans_a else d_op_a
    if propagate_down[1]:
        a = device.operand(bottom_data[0], dtype)
        a3 = a.reshape((1,) + tuple(a.shape))
        p = a.shape[0] if trans_a else a.shape[1]
        d_op_b = device.empty((k, p, n), dtype)
        # op(A)ᵀ is A itself when transA, else A read transposed
        blas.matmul(a3, dy, d_op_b, trans_a=not trans_a, alpha=alpha)
        bottom_diff[1] = _transposed(d_op_b) if trans_b else d_op_b
    if n_in > 2 and propagate_down[2]:
        c_shape = tuple(bottom_shapes[2]) if bottom_data[2] is None else tuple(bottom_data[2].shape)
        bottom_diff[2] = device.scaled(device.reduce_to(dy, c_shape), float(attrs.get("beta", 1.0)))
    return bottom_diff
