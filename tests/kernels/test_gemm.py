"""Gemm: float64 finite differences, ONNX Runtime forward parity, stacking, float32."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

OP = REGISTRY["Gemm"]
M, P, N = 3, 5, 4          # op(A) (M, P), op(B) (P, N): all different


def make(trans_a, trans_b, c_shape, seed=0):
    rng = np.random.default_rng(seed)
    bottoms = [rng.standard_normal((P, M) if trans_a else (M, P)),
               rng.standard_normal((N, P) if trans_b else (P, N))]
    if c_shape is not None:
        bottoms.append(rng.standard_normal(c_shape))
    return bottoms


TRANSPOSES = [(0, 0), (1, 0), (0, 1), (1, 1)]
C_SHAPES = [None, (), (N,), (1, N), (M, 1), (M, N)]
SCALES = [{}, {"alpha": 0.5, "beta": -2.0}]


def case_attrs(trans, scales):
    return dict(scales, transA=trans[0], transB=trans[1])


@pytest.mark.parametrize("scales", SCALES, ids=["default", "alpha_beta"])
@pytest.mark.parametrize("c_shape", C_SHAPES, ids=[str(c) for c in C_SHAPES])
@pytest.mark.parametrize("trans", TRANSPOSES, ids=[f"tA{a}tB{b}" for a, b in TRANSPOSES])
def test_finite_differences(trans, c_shape, scales):
    bottoms = make(*trans, c_shape)
    result = check_op("Gemm", bottoms, case_attrs(trans, scales),
                      propagate_down=[True] * len(bottoms), k=2)
    assert result.ok, result


def test_constant_weight_gets_no_diff():
    a, b, c = make(0, 1, (N,))
    attrs = {"transB": 1}
    y = OP.forward([a, b, c], layer(attrs, [a, b, c], []).attrs)
    pd = [True, False, False]
    # The runtime keeps only B (the other operand of A): A arrives as None.
    diff = backward(OP, [np.ones((2,) + y[0].shape)], [None, b, c], y,
                       layer(attrs, [a, b, c], y, propagate_down=pd))
    assert diff[0].shape == (2, M, P) and diff[1] is None and diff[2] is None


# ONNX Runtime implements Gemm from opset 7 (before, C broadcast only with broadcast=1).
@pytest.mark.parametrize("opset", [7, 11, 13])
@pytest.mark.parametrize("c_shape", C_SHAPES, ids=[str(c) for c in C_SHAPES])
@pytest.mark.parametrize("trans", TRANSPOSES, ids=[f"tA{a}tB{b}" for a, b in TRANSPOSES])
def test_forward_matches_onnxruntime(trans, c_shape, opset):
    if c_shape is None and opset < 11:
        pytest.skip("C is required before opset 11")
    attrs = case_attrs(trans, {"alpha": 0.5, "beta": -2.0})
    bottoms = [x.astype(np.float32) for x in make(*trans, c_shape, seed=2)]
    names = ["a", "b", "c"][:len(bottoms)]
    model = one_node_model("Gemm", list(zip(names, bottoms)), attrs, constants=names[1:],
                           opset=opset)
    expected = run_onnxruntime(model, {"a": bottoms[0]})[0]
    got = OP.forward(bottoms, layer(attrs, bottoms, []).attrs)[0]
    assert got.dtype == np.float32
    # float32, sums of 5 products of N(0,1) numbers: rtol 1e-5, atol 1e-6.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("trans", TRANSPOSES, ids=[f"tA{a}tB{b}" for a, b in TRANSPOSES])
def test_stacked_diffs_equal_separate_ones(trans):
    bottoms = [x.astype(np.float32) for x in make(*trans, (1, N), seed=3)]
    attrs = case_attrs(trans, {"alpha": 0.5, "beta": -2.0})
    y = OP.forward(bottoms, layer(attrs, bottoms, []).attrs)
    g = np.random.default_rng(4).standard_normal((3,) + y[0].shape).astype(np.float32)
    a = layer(attrs, bottoms, y, propagate_down=[True, True, True])
    stacked = backward(OP, [g], bottoms, y, a)
    for k in range(3):
        single = backward(OP, [g[k:k + 1]], bottoms, y, a)
        for s, d in zip(stacked, single):
            # BLAS may block a K·M-row product differently from an M-row one: float32 rounding,
            # 1e-6 of the largest entry (float32 eps 1.2e-7).
            np.testing.assert_allclose(s[k:k + 1], d, rtol=0, atol=1e-6 * np.abs(d).max())


@pytest.mark.parametrize("trans", TRANSPOSES, ids=[f"tA{a}tB{b}" for a, b in TRANSPOSES])
def test_float32_backward_matches_float64(trans):
    b64 = make(*trans, (M, N), seed=5)
    b32 = [x.astype(np.float32) for x in b64]
    attrs = case_attrs(trans, {"alpha": 0.5, "beta": -2.0})
    y = OP.forward(b64, layer(attrs, b64, []).attrs)
    g64 = np.random.default_rng(6).standard_normal((2,) + y[0].shape)
    pd = [True, True, True]
    d64 = backward(OP, [g64], b64, y, layer(attrs, b64, y, propagate_down=pd))
    d32 = backward(OP, [g64.astype(np.float32)], b32, [y[0].astype(np.float32)],
                      layer(attrs, b32, y, propagate_down=pd))
    for a32, a64 in zip(d32, d64):
        assert a32.dtype == np.float32
        # float32 rounding of sums of a few O(1) products: 1e-6 of the largest entry.
        np.testing.assert_allclose(a32, a64, rtol=0, atol=1e-6 * np.abs(a64).max())


def test_operands_that_do_not_multiply_name_the_node():
    a, b = make(0, 0, None)
    with pytest.raises(ModelError, match="'fc8'"):
        OP.forward([a, b], {"transB": 1, "node_name": "fc8"})
