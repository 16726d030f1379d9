"""A faster route for the input diff of fully connected layers through ONNX Runtime's own matmul:
Gemm, and MatMul by a 2-D weight.

    Gemm    Y = α · op(A) · op(B) + β · C      d op(A) = α · dY · op(B)ᵀ
    MatMul  Y = A @ B,  B (P, N)                dA      = dY @ Bᵀ

Either is one matmul of the stacked top diff (K·M rows of N) by a constant (N, P) matrix — op(B)ᵀ or
Bᵀ — which a one-node MatMul session holds as its initializer (``caffe_port.ort_sessions``).

Why not numpy's matmul (kernels/gemm.py, kernels/matmul.py, the reference this route is tested
against): numpy's OpenBLAS keeps its threads spinning for about 0.1 s after each threaded call
(OPENBLAS_THREAD_TIMEOUT is read once, when numpy loads, and cannot be changed afterwards), which
stole a core from the ONNX Runtime layers that run next — CaffeNet's forward+backward took 33 ms
more CPU per pass when numpy had been imported before caffe_port. ONNX Runtime's sessions here do
not spin, and on this project's 2-core AMD EPYC its matmul was also faster on the fc shapes
(dY · W, float32, wall-clock minimum of 15, numpy's idle threads spinning vs ORT's not):
(5, 4096)·(4096, 4096) 4.6 vs 41 ms, (8, 4096)·(4096, 9216) 23 vs 104 ms, and within 10 % at
batch 1 (one row: 8.1 vs 7.5 ms, a memory-bound gemv either way).

float64 (finite-difference checks), a B that is itself differentiable (not a weight), a batched B
and the B and C diffs take the library kernel.
"""
from __future__ import annotations

import numpy as np

from caffe_port.kernels import gemm, matmul
from caffe_port.kernels.registry import out_array
from caffe_port.ort_sessions import WeightSessions, one_node, run_into


class LinearInputDiff:
    """Gemm's and MatMul's backward with the A diff from ONNX Runtime; called as kernels (the
    contract of caffe_port.kernels), with one-node sessions keyed by the weight they hold."""

    def __init__(self):
        self.sessions = WeightSessions()

    def gemm_backward(self, top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes, out=None):
        dy, b = top_diff[0], bottom_data[1]
        asked = list(propagate_down) + [False] * 3
        if not _routable(dy, b, asked):
            return gemm.gemm_backward(top_diff, bottom_data, top_data, attrs,
                                      propagate_down=propagate_down, bottom_shapes=bottom_shapes)
        rest = [False] + asked[1:len(bottom_data)]     # C's diff, when asked, from the kernel
        bottom_diff = gemm.gemm_backward(top_diff, bottom_data, top_data, attrs,
                                         propagate_down=rest, bottom_shapes=bottom_shapes)
        K, M, N = dy.shape
        trans_b = bool(attrs.get("transB", 0))
        weight = b if trans_b else b.T                  # op(B)ᵀ, (N, P)
        trans_a = bool(attrs.get("transA", 0))
        memory = None if trans_a or bottom_shapes[0] is None else \
            out_array(out, 0, (K,) + tuple(bottom_shapes[0]), np.float32)
        d = self._times(("Gemm", trans_b), b, weight, dy.reshape(K * M, N), memory)
        if d is None:
            return gemm.gemm_backward(top_diff, bottom_data, top_data, attrs,
                                      propagate_down=propagate_down, bottom_shapes=bottom_shapes)
        d = d.reshape(K, M, -1)
        alpha = np.float32(attrs.get("alpha", 1.0))
        if alpha != 1:
            d *= alpha
        if trans_a:
            d = np.ascontiguousarray(d.transpose(0, 2, 1))
        bottom_diff[0] = d
        return bottom_diff

    def matmul_backward(self, top_diff, bottom_data, top_data, attrs, *, propagate_down, bottom_shapes, out=None):
        dy, b = top_diff[0], bottom_data[1]
        asked = list(propagate_down) + [False, False]
        d = None
        if _routable(dy, b, asked):
            a_shape = tuple(bottom_shapes[0]) if bottom_data[0] is None else bottom_data[0].shape
            memory = out_array(out, 0, (dy.shape[0],) + tuple(a_shape), np.float32)
            d = self._times(("MatMul",), b, b.T, dy.reshape(-1, b.shape[1]), memory)
        if d is None:
            return matmul.matmul_backward(top_diff, bottom_data, top_data, attrs,
                                          propagate_down=propagate_down, bottom_shapes=bottom_shapes)
        return [d.reshape((dy.shape[0],) + a_shape), None]

    def forget(self, weight):
        """Drop every session built from ``weight`` (its values changed)."""
        self.sessions.forget(weight)

    def clear(self):
        self.sessions.clear()

    def _times(self, key, owner, weight, rows, memory=None):
        """rows (R, N) float32 @ weight (N, P) in a session keyed by ``owner`` (the graph's array),
        written into ``memory`` (R·P floats) when given; None where ONNX Runtime refuses the
        shapes (the library kernel then says why)."""
        n, p = weight.shape
        if rows.shape[1] != n:
            return None
        build = lambda: one_node("MatMul", weight, [None, n])  # noqa: E731
        result = np.empty((rows.shape[0], p), np.float32) if memory is None or memory.size != rows.shape[0] * p \
            else memory.reshape(rows.shape[0], p)
        try:
            session = self.sessions.get(key + (n, p), owner, build)
            return run_into(session, np.ascontiguousarray(rows), result)
        except RuntimeError:
            return None


def _routable(dy, b, asked):
    """Only A's diff asked, float32, and B a 2-D float32 array that needs no diff (a weight)."""
    return (dy is not None and asked[0] and not asked[1] and dy.dtype == np.float32
            and b is not None and b.ndim == 2 and b.dtype == np.float32)
