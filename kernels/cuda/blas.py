"""Batched matrix products on the device: cuBLAS through CuPy when CuPy is importable, else a
shared-memory tiled Numba kernel (which is also what runs under the CUDA simulator).

    out[z] = alpha · op(a[z mod Ba]) @ op(b[z mod Bb])        z = 0 … Bo − 1

with a (Ba, M, P), or (Ba, P, M) read transposed when ``trans_a``; b (Bb, P, N), or (Bb, N, P)
when ``trans_b``; out (Bo, M, N), with Ba and Bb dividing Bo (a layer's G group weights against
many images: entry z = image·G + g reads weight group g). Operands may be strided views (the kernel
indexes them, CuPy reads them through ``__cuda_array_interface__``); ``out`` is written whole.

Why CuPy first: cuBLAS is what Caffe's own GPU backward calls (caffe_gpu_gemm), and the tiled
kernel here is a plain 16×16 shared-memory tiling with no register blocking — correct, but
expected to be several times slower than cuBLAS on large layers. That expectation has NOT been
measured: this code was written and tested without a GPU, under the simulator, where only the
Numba kernel can run. ``CAFFE_PORT_CUDA_MATMUL=numba`` (or ``cupy``) forces one backend, for
measuring both on a GPU.
"""
from __future__ import annotations

import os

import numpy as np
from numba import cuda, float32, float64

from . import device

TILE = 4 if device.SIMULATED else 16     # the simulator runs a thread per Python thread: keep blocks small
MAX_GRID_Z = 1 if device.SIMULATED else 65535

_kernels: dict = {}
_cupy_state: list = []     # [module or None], decided once


def cupy_module():
    """CuPy when it imports and sees a GPU, and neither the simulator nor the environment
    (CAFFE_PORT_CUDA_MATMUL=numba) rules it out; else None."""
    if not _cupy_state:
        module = None
        choice = os.environ.get("CAFFE_PORT_CUDA_MATMUL", "auto")
        if not device.SIMULATED and choice != "numba":
            try:     # pragma: no cover - needs CuPy and a GPU
                import cupy
                if cupy.cuda.runtime.getDeviceCount() > 0:
                    module = cupy
            except Exception:
                module = None
            if module is None and choice == "cupy":
                raise RuntimeError("CAFFE_PORT_CUDA_MATMUL=cupy, but CuPy cannot be imported or sees no GPU")
        _cupy_state.append(module)
    return _cupy_state[0]


def backend() -> str:
    return "cupy" if cupy_module() is not None else "numba"


def _tiled_kernel(tile, numba_type):
    """The tiled product for one tile size and element type (shared arrays need both fixed)."""
    key = (tile, str(numba_type))
    if key in _kernels:
        return _kernels[key]

    @cuda.jit   # not cached: Numba caches no closures; one compile per (tile, type) and process
    def tiled(a, b, trans_a, trans_b, alpha, out):
        tile_a = cuda.shared.array((tile, tile), numba_type)
        tile_b = cuda.shared.array((tile, tile), numba_type)
        ty, tx = cuda.threadIdx.y, cuda.threadIdx.x
        row = cuda.blockIdx.y * tile + ty
        col = cuda.blockIdx.x * tile + tx
        m, n = out.shape[1], out.shape[2]
        inner = a.shape[1] if trans_a else a.shape[2]
        for z in range(cuda.blockIdx.z, out.shape[0], cuda.gridDim.z):
            za = z % a.shape[0]
            zb = z % b.shape[0]
            acc = alpha * 0
            for p0 in range(0, inner, tile):
                # every thread loads one element of each tile (zero past the edges), so all of
                # them reach both barriers
                p = p0 + tx
                if row < m and p < inner:
                    tile_a[ty, tx] = a[za, p, row] if trans_a else a[za, row, p]
                else:
                    tile_a[ty, tx] = 0
                p = p0 + ty
                if col < n and p < inner:
                    tile_b[ty, tx] = b[zb, col, p] if trans_b else b[zb, p, col]
                else:
                    tile_b[ty, tx] = 0
                cuda.syncthreads()
                for t in range(tile):
                    acc += tile_a[ty, t] * tile_b[t, tx]
                cuda.syncthreads()
            if row < m and col < n:
                out[z, row, col] = alpha * acc

    _kernels[key] = tiled
    return tiled


def _check(a, b, trans_a, trans_b, out):
    m, p = (a.shape[2], a.shape[1]) if trans_a else (a.shape[1], a.shape[2])
    p2, n = (b.shape[2], b.shape[1]) if trans_b else (b.shape[1], b.shape[2])
    bo = out.shape[0]
    if p != p2 or tuple(out.shape[1:]) != (m, n) or bo % a.shape[0] or bo % b.shape[0]:
        raise ValueError(f"matmul: a {tuple(a.shape)} (trans {trans_a}) and b {tuple(b.shape)} "
                         f"(trans {trans_b}) do not give out {tuple(out.shape)}")


def matmul(a, b, out, trans_a=False, trans_b=False, alpha=1.0, tile=None):
    """out[z] = alpha · op(a[z mod Ba]) @ op(b[z mod Bb]); all three 3-D device arrays."""
    _check(a, b, trans_a, trans_b, out)
    if out.size == 0:
        return out
    cp = cupy_module()
    if cp is not None and tile is None:     # pragma: no cover - needs CuPy and a GPU
        return _cupy_matmul(cp, a, b, out, trans_a, trans_b, alpha)
    tile = tile or TILE
    numba_type = {np.dtype(np.float32): float32, np.dtype(np.float64): float64}[np.dtype(out.dtype)]
    blocks = (-(-out.shape[2] // tile), -(-out.shape[1] // tile), min(out.shape[0], MAX_GRID_Z))
    _tiled_kernel(tile, numba_type)[blocks, (tile, tile)](a, b, bool(trans_a), bool(trans_b),
                                                           out.dtype.type(alpha), out)
    return out


def _cupy_matmul(cp, a, b, out, trans_a, trans_b, alpha):   # pragma: no cover - needs a GPU
    """cuBLAS through CuPy, on the same memory (CuPy wraps the Numba arrays, no copies). An operand
    with Ba < Bo entries is repeated by viewing the batch as (Bo / Ba, Ba)."""
    ca, cb, co = cp.asarray(a), cp.asarray(b), cp.asarray(out)
    if trans_a:
        ca = ca.transpose(0, 2, 1)
    if trans_b:
        cb = cb.transpose(0, 2, 1)
    bo, ba, bb = out.shape[0], a.shape[0], b.shape[0]
    if 1 < ba < bo or 1 < bb < bo:
        if ba != bo and bb != bo:        # both repeat with different periods: one product per entry
            for z in range(bo):
                cp.matmul(ca[z % ba], cb[z % bb], out=co[z])
            if alpha != 1:
                co *= out.dtype.type(alpha)
            return out
        period = min(ba, bb)
        co = co.reshape(bo // period, period, *co.shape[1:])
        ca = ca[None] if ba == period else ca.reshape(bo // period, period, *ca.shape[1:])
        cb = cb[None] if bb == period else cb.reshape(bo // period, period, *cb.shape[1:])
    cp.matmul(ca, cb, out=co)
    if alpha != 1:
        co *= out.dtype.type(alpha)
    return out
