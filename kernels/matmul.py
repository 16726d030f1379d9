"""MatMul (ONNX MatMul = numpy.matmul): Y = A @ B over the last two axes, batch axes broadcast.

A (..., M, P), B (..., P, N), Y (broadcast batch, M, N); a 1-D A is read as a row (1, P) and a 1-D B
as a column (P, 1), and that unit axis is dropped from Y. With a stacked top diff dY (K, *Y.shape):

    dA[k] = dY[k] @ Bᵀ      summed over the batch axes A was broadcast along → (K, *A.shape)
    dB[k] = Aᵀ @ dY[k]      summed likewise                                   → (K, *B.shape)

each only when ``propagate_down`` asks. With a 2-D B (a fully connected layer written as MatMul),
dA is one matmul over all K·batch·M rows and dB one matmul per k over the batch·M rows.
"""
import numpy as np

from caffe_port.errors import ModelError

from .elementwise import reduce_to


def matmul_forward(bottom_data, attrs):
    """bottom_data = [A, B] → [A @ B] (numpy.matmul semantics)."""
    a, b = bottom_data[0], bottom_data[1].astype(bottom_data[0].dtype, copy=False)
    try:
        return [np.matmul(a, b)]
    except ValueError:
        raise ModelError(f"MatMul node {attrs.get('node_name', 'MatMul')!r}: operands "
                         f"{a.shape} and {b.shape} do not multiply") from None


def promoted(shape, is_a):
    """The ≥2-D shape numpy.matmul uses for an operand (1-D A → (1, P), 1-D B → (P, 1))."""
    if len(shape) == 1:
        return (1,) + tuple(shape) if is_a else tuple(shape) + (1,)
    return tuple(shape)


def _swap(x):
    return np.swapaxes(x, -1, -2)


def matmul_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes):
    """top_diff [dY (K, *Y.shape)] → [dA (K, *A.shape) or None, dB (K, *B.shape) or None]."""
    dy = top_diff[0]
    if dy is None:
        return [None, None]
    propagate_down = list(propagate_down) + [False, False]
    dtype = dy.dtype
    shapes = [tuple(bottom_shapes[i]) if bottom_data[i] is None else bottom_data[i].shape
              for i in (0, 1)]
    a_p, b_p = promoted(shapes[0], True), promoted(shapes[1], False)
    M, P, N = a_p[-2], a_p[-1], b_p[-1]
    K = dy.shape[0]
    batch = np.broadcast_shapes(a_p[:-2], b_p[:-2])
    dy_p = dy.reshape((K,) + batch + (M, N))
    a = None if bottom_data[0] is None else bottom_data[0].astype(dtype, copy=False).reshape(a_p)
    b = None if bottom_data[1] is None else bottom_data[1].astype(dtype, copy=False).reshape(b_p)
    bottom_diff = [None, None]
    if propagate_down[0]:
        if len(b_p) == 2:
            # A 2-D B is shared by every row of A (so batch == A's batch): one matmul over
            # the K·batch·M rows.
            d_a = np.matmul(dy_p.reshape(-1, N), b.T).reshape((K,) + a_p)
        else:
            d_a = reduce_to(np.matmul(dy_p, _swap(b)), a_p)
        bottom_diff[0] = d_a.reshape((K,) + shapes[0])
    if propagate_down[1]:
        if len(b_p) == 2:
            # Every row of A (over batch and M) meets the same B: sum over them inside the matmul.
            d_b = np.matmul(a.reshape(-1, P).T, dy_p.reshape(K, -1, N))
        else:
            d_b = reduce_to(np.matmul(_swap(a), dy_p), b_p)
        bottom_diff[1] = d_b.reshape((K,) + shapes[1])
    return bottom_diff

