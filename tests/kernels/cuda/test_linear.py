"""CUDA Gemm, MatMul and BatchNormalization against the CPU kernels; float32, K = 2.

Tolerance for the products: the tiled kernel and BLAS sum in different orders, rtol 1e-5 with
atol 1e-5 of the largest |entry|. BatchNormalization multiplies by the same float32 factor as the
CPU (exact for dX); its parameter diffs are sums in another order (rtol 1e-5, atol 1e-6).
"""
import numpy as np
import pytest


def data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_constant_weight(trans_a, trans_b, check):
    a = data((5, 3) if trans_a else (3, 5), 0)
    b = data((4, 5) if trans_b else (5, 4), 1)
    attrs = {"transA": trans_a, "transB": trans_b, "alpha": 0.5, "beta": 2.0}
    check("Gemm", [a, b, data((4,), 2)], attrs, constants=(1, 2), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c_shape", [(3, 4), (1, 4), (3, 1), ()])
def test_gemm_every_diff(c_shape, check):
    """Operands computed in the graph: dA, dB and dC (summed over C's broadcast axes)."""
    attrs = {"transB": 1, "alpha": 1.5, "beta": 0.5}
    check("Gemm", [data((3, 5), 3), data((4, 5), 4), data(c_shape, 5)], attrs, rtol=1e-5, atol=1e-5)


CASES = [
    ("1d_1d", (5,), (5,)),
    ("1d_2d", (5,), (5, 4)),
    ("2d_1d", (3, 5), (5,)),
    ("batched_2d", (2, 6, 3, 5), (5, 4)),
    ("2d_batched", (3, 5), (2, 5, 4)),
    ("batched", (2, 3, 5), (2, 5, 4)),
    ("broadcast_a", (1, 3, 5), (2, 5, 4)),
    ("broadcast_both", (2, 1, 3, 5), (6, 5, 4)),
]


@pytest.mark.parametrize("name,a_shape,b_shape", CASES, ids=[c[0] for c in CASES])
def test_matmul(name, a_shape, b_shape, check):
    check("MatMul", [data(a_shape, 6), data(b_shape, 7)], {}, rtol=1e-5, atol=1e-5)


def test_matmul_constant_weight(check):
    check("MatMul", [data((2, 3, 5), 8), data((5, 4), 9)], {}, constants=(1,), rtol=1e-5, atol=1e-5)


def bn_bottoms(shape, seed, spatial=True):
    rng = np.random.default_rng(seed)
    param = (shape[1],) if spatial else shape[1:]
    return [rng.standard_normal(shape), rng.standard_normal(param), rng.standard_normal(param),
            rng.standard_normal(param), rng.uniform(0.5, 2.0, param)]


def test_batchnorm_input_diff(check):
    check("BatchNormalization", bn_bottoms((2, 3, 5, 4), 10), {"epsilon": 1e-3}, constants=(1, 2, 3, 4), opset=15)


def test_batchnorm_parameter_diffs(both):
    """Scale and B computed in the graph: their diffs, given x (which the runtime then keeps)."""
    from helpers.kernel_calls import layer
    bottoms = [b.astype(np.float32) for b in bn_bottoms((2, 3, 5, 4), 11)]
    attrs = layer({}, bottoms, [bottoms[0]], [True, True, True, False, False], opset=15)
    g = np.random.default_rng(12).standard_normal((2, 2, 3, 5, 4)).astype(np.float32)
    cpu, gpu = both("BatchNormalization", [g], bottoms, [None], attrs, device_bottoms=(0, 1, 2))
    for c, d in zip(cpu, gpu):
        assert (c is None) == (d is None)
        if c is not None:
            np.testing.assert_allclose(d, c, rtol=1e-5, atol=1e-6 * np.abs(c).max())


def test_batchnorm_per_activation(check):
    """spatial = 0 (opset < 9): one parameter per activation."""
    check("BatchNormalization", bn_bottoms((2, 3, 4), 12, spatial=False), {"spatial": 0, "is_test": 1},
          constants=(1, 2, 3, 4), opset=7)


def test_batchnorm_factor_is_kept_and_forgotten():
    """The factor scale/sqrt(var + eps) is computed once per set of constants, and again after
    device.forget names one of them (net surgery)."""
    from caffe_port.kernels.cuda import batchnorm, device
    from helpers.kernel_calls import backward, layer
    bottoms = [b.astype(np.float32) for b in bn_bottoms((2, 3, 5, 4), 13)]
    attrs = layer({}, bottoms, [bottoms[0]], [True, False, False, False, False], opset=15)
    g = device.upload(np.ones((1, 2, 3, 5, 4), np.float32))
    first = device.to_host(backward(batchnorm.batchnorm_backward, [g], [None] + bottoms[1:], [None], attrs)[0])
    bottoms[1][...] *= 2                                   # surgery in place: same array object
    stale = device.to_host(backward(batchnorm.batchnorm_backward, [g], [None] + bottoms[1:], [None], attrs)[0])
    np.testing.assert_array_equal(stale, first)
    device.forget([bottoms[1]])
    fresh = device.to_host(backward(batchnorm.batchnorm_backward, [g], [None] + bottoms[1:], [None], attrs)[0])
    np.testing.assert_allclose(fresh, 2 * first, rtol=1e-6)
