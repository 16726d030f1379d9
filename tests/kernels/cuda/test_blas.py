"""The tiled Numba matmul (the no-CuPy fallback, and what the simulator runs) against numpy:
transposes, shared operands broadcast over the batch, sizes that are not multiples of the tile,
alpha, strided views; float32 (rtol 1e-5) and float64 (rtol 1e-12)."""
import numpy as np
import pytest

from caffe_port.kernels.cuda import blas, device


@pytest.mark.parametrize("tile", [2, 4, 8])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_tiled_matches_numpy(tile, trans_a, trans_b):
    rng = np.random.default_rng(tile)
    bo, m, p, n = 3, 5, 7, 6
    a = rng.standard_normal((1, p, m) if trans_a else (1, m, p)).astype(np.float32)   # shared
    b = rng.standard_normal((bo, n, p) if trans_b else (bo, p, n)).astype(np.float32)
    out = device.empty((bo, m, n), np.float32)
    blas.matmul(device.upload(a), device.upload(b), out, trans_a, trans_b, alpha=0.5, tile=tile)
    op_a = a.transpose(0, 2, 1) if trans_a else a
    op_b = b.transpose(0, 2, 1) if trans_b else b
    np.testing.assert_allclose(device.to_host(out), 0.5 * np.matmul(op_a, op_b), rtol=1e-5, atol=1e-6)


def test_float64_and_strided_operand():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((2, 4, 3))
    b_full = rng.standard_normal((2, 3, 10))
    b = device.upload(b_full)[:, :, 2:7]            # a strided view, as conv's row chunks are
    out = device.empty((2, 4, 5), np.float64)
    blas.matmul(device.upload(a), b, out)
    np.testing.assert_allclose(device.to_host(out), a @ b_full[:, :, 2:7], rtol=1e-12)


def test_shape_mismatch_is_refused():
    a = device.empty((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match="do not give"):
        blas.matmul(a, device.empty((1, 4, 2), np.float32), device.empty((1, 2, 2), np.float32))


def test_simulator_uses_the_numba_kernel():
    assert blas.backend() == "numba"
