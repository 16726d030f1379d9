"""Gemm (ONNX Gemm, the fully connected layer): Y = alpha · op(A) · op(B) + beta · C.

op(A) is A or Aᵀ (``transA``), op(B) is B or Bᵀ (``transB``): op(A) (M, P), op(B) (P, N), Y (M, N);
C (optional from opset 11) broadcasts unidirectionally to (M, N): a scalar, (N,), (1, N), (M, 1) or
(M, N). With a stacked top diff dY (K, M, N):

    d op(A)[k] = alpha · dY[k] · op(B)ᵀ          (K, M, P), then transposed back if transA
    d op(B)[k] = alpha · op(A)ᵀ · dY[k]          (K, P, N), then transposed back if transB
    dC[k]      = beta · dY[k] summed over the axes C was broadcast along

The A diff is one matmul over the K·M stacked rows; the B and C diffs are computed only when
``propagate_down`` asks (B is normally the constant weight).
"""
import numpy as np

from caffe_port.errors import ModelError

from .elementwise import reduce_to


def _operands(bottom_data, attrs, dtype):
    a, b = bottom_data[0], bottom_data[1]
    a = None if a is None else a.astype(dtype, copy=False)
    b = None if b is None else b.astype(dtype, copy=False)
    op_a = None if a is None else (a.T if attrs.get("transA", 0) else a)
    op_b = None if b is None else (b.T if attrs.get("transB", 0) else b)
    return op_a, op_b


def gemm_forward(bottom_data, attrs):
    """bottom_data = [A (M, P) or (P, M), B (P, N) or (N, P), optional C] → [Y (M, N)]."""
    dtype = bottom_data[0].dtype
    op_a, op_b = _operands(bottom_data, attrs, dtype)
    if op_a.ndim != 2 or op_b.ndim != 2 or op_a.shape[1] != op_b.shape[0]:
        raise ModelError(f"Gemm node {attrs.get('node_name', 'Gemm')!r}: operands "
                         f"{bottom_data[0].shape} and {bottom_data[1].shape} do not multiply with "
                         f"transA={attrs.get('transA', 0)}, transB={attrs.get('transB', 0)}")
    top = np.matmul(op_a, op_b)
    alpha = dtype.type(attrs.get("alpha", 1.0))
    if alpha != 1:
        top *= alpha
    if len(bottom_data) > 2 and bottom_data[2] is not None:
        top += dtype.type(attrs.get("beta", 1.0)) * bottom_data[2].astype(dtype, copy=False)
    return [top]


def gemm_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    """top_diff [dY (K, M, N)]
    → [dA (K, *A.shape), dB (K, *B.shape) or None, dC (K, *C.shape) or None]."""
    dy = top_diff[0]
    n_in = len(bottom_data)
    if dy is None:
        return [None] * n_in
    propagate_down = list(propagate_down) + [False] * 3
    dtype = dy.dtype
    op_a, op_b = _operands(bottom_data, attrs, dtype)
    K, M, N = dy.shape
    alpha = dtype.type(attrs.get("alpha", 1.0))
    bottom_diff = [None] * n_in
    if propagate_down[0]:
        d_op_a = np.matmul(dy.reshape(K * M, N), op_b.T).reshape(K, M, -1)   # (K, M, P)
        if alpha != 1:
            d_op_a *= alpha
        if attrs.get("transA", 0):
            d_op_a = np.ascontiguousarray(d_op_a.transpose(0, 2, 1))
        bottom_diff[0] = d_op_a
    if propagate_down[1]:
        d_op_b = np.matmul(op_a.T, dy)                                         # (K, P, N)
        if alpha != 1:
            d_op_b *= alpha
        if attrs.get("transB", 0):
            d_op_b = np.ascontiguousarray(d_op_b.transpose(0, 2, 1))
        bottom_diff[1] = d_op_b
    if n_in > 2 and propagate_down[2]:
        c_shape = bottom_shapes[2] if bottom_data[2] is None else bottom_data[2].shape
        bottom_diff[2] = reduce_to(dy, c_shape) * dtype.type(attrs.get("beta", 1.0))
    return bottom_diff
