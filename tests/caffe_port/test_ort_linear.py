"""The fully connected input diff through ONNX Runtime (caffe_port/ort_linear.py) equals the library
kernels it stands in for (kernels/gemm.py, kernels/matmul.py) in every Gemm transposition and
scaling and every MatMul operand rank; anything else takes the kernel, bit for bit; it forgets a
weight written in place; the CPU backend chooses it for Gemm and MatMul.

Tolerance: |route − kernel| ≤ 1e-5 · max|kernel| — float32 sums of up to 64 products in another
order (MLAS against OpenBLAS)."""
import numpy as np
import pytest

from caffe_port.kernels import gemm, matmul
from caffe_port.ort_linear import LinearInputDiff
from helpers.kernel_calls import backward, layer

GEMM_CASES = [  # A shape, B shape, C shape or None, attrs
    ((3, 7), (7, 5), (5,), {}),
    ((3, 7), (5, 7), (5,), {"transB": 1}),
    ((7, 3), (7, 5), None, {"transA": 1}),
    ((7, 3), (5, 7), (3, 5), {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}),
    ((1, 64), (10, 64), (1, 10), {"transB": 1, "alpha": 3.0}),
]


def gemm_layer(a, b, c, attrs, propagate_down):
    bottoms = [a, b] + ([c] if c is not None else [])
    top = gemm.gemm_forward(bottoms, layer(attrs, bottoms, [None]).attrs)[0]
    return bottoms, top, layer(attrs, bottoms, [top], propagate_down=propagate_down)


def assert_route_matches(route, kernel):
    assert len(route) == len(kernel)
    for r, k in zip(route, kernel):
        assert (r is None) == (k is None)
        if k is not None:
            assert r.shape == k.shape and r.dtype == k.dtype
            np.testing.assert_allclose(r, k, rtol=0, atol=1e-5 * np.abs(k).max())


@pytest.mark.parametrize("a_shape,b_shape,c_shape,attrs", GEMM_CASES)
def test_gemm_route_equals_the_kernel(a_shape, b_shape, c_shape, attrs):
    """dA (and dC where asked) for K = 3 stacked diffs, A not read (the walker passes None)."""
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in (a_shape, b_shape))
    c = None if c_shape is None else rng.standard_normal(c_shape).astype(np.float32)
    propagate_down = [True, False] + ([True] if c is not None else [])
    bottoms, top, lay = gemm_layer(a, b, c, attrs, propagate_down)
    dy = rng.standard_normal((3,) + top.shape).astype(np.float32)
    seen = [None, b] + ([c] if c is not None else [])
    route = LinearInputDiff()
    assert_route_matches(backward(route.gemm_backward, [dy], seen, [None], lay),
                         backward(gemm.gemm_backward, [dy], seen, [None], lay))
    assert len(route.sessions) == 1


@pytest.mark.parametrize("a_shape", [(6,), (4, 6), (2, 3, 6)])
def test_matmul_route_equals_the_kernel(a_shape):
    rng = np.random.default_rng(2)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal((6, 5)).astype(np.float32)
    top = matmul.matmul_forward([a, b], {})[0]
    lay = layer({}, [a, b], [top], propagate_down=[True, False])
    dy = rng.standard_normal((2,) + top.shape).astype(np.float32)
    route = LinearInputDiff()
    got = backward(route.matmul_backward, [dy], [None, b], [None], lay)
    assert_route_matches(got, backward(matmul.matmul_backward, [dy], [None, b], [None], lay))
    assert got[0].shape == (2,) + a_shape and len(route.sessions) == 1


def test_what_the_route_does_not_take_is_the_kernel_bit_for_bit():
    """float64, a differentiable B (both diffs asked), a batched B: the kernel's own arrays, and no
    session built."""
    rng = np.random.default_rng(3)
    route = LinearInputDiff()
    a, b = rng.standard_normal((4, 6)), rng.standard_normal((6, 5))
    cases = []
    for dtype, pd in ((np.float64, [True, False]), (np.float32, [True, True])):
        x, w = a.astype(dtype), b.astype(dtype)
        bottoms, top, lay = gemm_layer(x, w, None, {}, pd)
        dy = rng.standard_normal((2,) + top.shape).astype(dtype)
        cases.append((route.gemm_backward, gemm.gemm_backward, [dy], [x, w], lay))
    x, w = rng.standard_normal((3, 4, 6)).astype(np.float32), rng.standard_normal((3, 6, 5)).astype(np.float32)
    top = matmul.matmul_forward([x, w], {})[0]
    lay = layer({}, [x, w], [top], propagate_down=[True, False])
    cases.append((route.matmul_backward, matmul.matmul_backward,
                  [rng.standard_normal((2,) + top.shape).astype(np.float32)], [None, w], lay))
    for through_route, kernel, dy, seen, lay in cases:
        got, want = backward(through_route, dy, seen, [None], lay), backward(kernel, dy, seen, [None], lay)
        for g, k in zip(got, want):
            assert (g is None) == (k is None)
            if k is not None:
                np.testing.assert_array_equal(g, k)
    assert len(route.sessions) == 0


def test_forgets_a_weight_written_in_place():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((2, 6)).astype(np.float32)
    b = rng.standard_normal((5, 6)).astype(np.float32)
    _, top, lay = gemm_layer(a, b, None, {"transB": 1}, [True, False])
    dy = rng.standard_normal((1,) + top.shape).astype(np.float32)
    route = LinearInputDiff()
    before = backward(route.gemm_backward, [dy], [None, b], [None], lay)[0]
    b *= 2
    stale = backward(route.gemm_backward, [dy], [None, b], [None], lay)[0]
    np.testing.assert_array_equal(stale, before)    # the session holds its own copy: why forget exists
    route.forget(b)
    after = backward(route.gemm_backward, [dy], [None, b], [None], lay)[0]
    np.testing.assert_allclose(after, 2 * before, rtol=1e-5, atol=1e-6)


def test_the_cpu_backend_routes_conv_gemm_and_matmul():
    from caffe_port.backend import CpuBackend
    from caffe_port.kernels import REGISTRY
    backend = CpuBackend.__new__(CpuBackend)
    CpuBackend.__init__(backend, type("R", (), {"graph": None})())
    assert set(backend.routes) == {REGISTRY[op].backward_kernel for op in ("Conv", "Gemm", "MatMul")}


@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_the_input_diff_goes_into_the_walks_memory(op):
    """Given ``out`` memory (NaN garbage), dA is written there and that array returned, the same
    bits as into memory of its own."""
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 7)).astype(np.float32), rng.standard_normal((7, 5)).astype(np.float32)
    if op == "Gemm":
        bottoms, top, lay = gemm_layer(a, b, None, {"alpha": 0.5}, [True, False])
    else:
        top = matmul.matmul_forward([a, b], {})[0]
        lay = layer({}, [a, b], [top], propagate_down=[True, False])
    dy = rng.standard_normal((2,) + top.shape).astype(np.float32)
    route = LinearInputDiff()
    run = route.gemm_backward if op == "Gemm" else route.matmul_backward
    own = backward(run, [dy], [None, b], [None], lay)[0]
    memory = np.full((2,) + a.shape, np.nan, np.float32)
    lay.controls["out"] = (memory, None)
    got = backward(run, [dy], [None, b], [None], lay)[0]
    assert got.__array_interface__["data"][0] == memory.__array_interface__["data"][0]
    np.testing.assert_array_equal(got, own)
