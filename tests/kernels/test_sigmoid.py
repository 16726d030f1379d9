"""Sigmoid: finite differences, ONNX Runtime parity, backward from the kept top."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair, one_node_model, run_onnxruntime

SHAPE = (2, 3, 5, 4)  # N != C != H != W


def test_finite_differences():
    x = 3 * np.random.default_rng(1).standard_normal(SHAPE)
    result = check_op("Sigmoid", [x], {}, k=2)
    assert result.ok, result


def test_forward_matches_onnxruntime():
    """Tolerance: rtol 1e-6, atol 1e-7 (float32 exp)."""
    x = (4 * np.random.default_rng(2).standard_normal(SHAPE)).astype(np.float32)
    expected = run_onnxruntime(one_node_model("Sigmoid", [("x", x)]), {"x": x})[0]
    got = REGISTRY["Sigmoid"].forward([x], {})[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_backward_reads_only_the_top():
    """dx = dy·y·(1 − y), by hand; the bottom is not passed."""
    y = np.array([[0.5, 0.25, 0.9]])
    g = np.array([[[2.0, 4.0, 10.0]]])
    got = backward(REGISTRY["Sigmoid"], [g], [None], [y], layer({}, [y], [y]))[0]
    np.testing.assert_allclose(got, [[[0.5, 0.75, 0.9]]], rtol=1e-14)


def test_saturated_inputs_stay_finite():
    x = np.array([[-200.0, -30.0, 0.0, 30.0, 200.0]], np.float32)
    y = REGISTRY["Sigmoid"].forward([x], {})[0]
    assert np.isfinite(y).all() and y[0, 0] == 0.0 and y[0, -1] == 1.0 and y[0, 2] == 0.5
    d = backward(REGISTRY["Sigmoid"], [np.ones((1,) + x.shape, np.float32)], [None], [y], {})[0]
    assert np.isfinite(d).all() and d[0, 0, 0] == 0.0 and d[0, 0, -1] == 0.0


def test_stacked_diffs_equal_separate_ones():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    top = REGISTRY["Sigmoid"].forward([x], {})
    g = rng.standard_normal((3,) + SHAPE).astype(np.float32)
    stacked = backward(REGISTRY["Sigmoid"], [g], [None], top, {})[0]
    assert stacked.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(stacked[k:k + 1], backward(REGISTRY["Sigmoid"], [g[k:k + 1]], [None], top, {})[0])


def test_float32_matches_float64():
    """Same data in both precisions; rtol 1e-6, atol 1e-6: 1 − y from a float32 y near ±1 is
    only good to about 2·eps32 absolutely (|g| ≲ 4 here), as in Caffe's float backward."""
    rng = np.random.default_rng(4)
    x = (3 * rng.standard_normal(SHAPE)).astype(np.float32)
    g = rng.standard_normal((2,) + SHAPE).astype(np.float32)
    diffs = [backward(REGISTRY["Sigmoid"], [g.astype(t)], [None], REGISTRY["Sigmoid"].forward([x.astype(t)], {}), {})[0]
             for t in (np.float32, np.float64)]
    np.testing.assert_allclose(diffs[0], diffs[1], rtol=1e-6, atol=1e-6)


# --- HardSigmoid -------------------------------------------------------------------------------------

HARD_CASES = [{}, {"alpha": 1 / 6, "beta": 0.5}]     # ONNX's default, and PyTorch's hardsigmoid


@pytest.mark.parametrize("attrs", HARD_CASES, ids=["onnx-default", "pytorch"])
def test_hard_sigmoid_finite_differences(attrs):
    x = 4 * np.random.default_rng(5).standard_normal(SHAPE)
    alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    # keep clear of the two kinks, α·x + β ∈ {0, 1}
    for kink in (-beta / alpha, (1 - beta) / alpha):
        x = np.where(np.abs(x - kink) < 1e-3, kink + 1e-3, x)
    result = check_op("HardSigmoid", [x], attrs, k=2)
    assert result.ok, result


@pytest.mark.parametrize("attrs", HARD_CASES, ids=["onnx-default", "pytorch"])
def test_hard_sigmoid_forward_matches_onnxruntime(attrs):
    """Tolerance: rtol 1e-6, atol 1e-7 (one multiply-add in float32)."""
    x = (4 * np.random.default_rng(6).standard_normal(SHAPE)).astype(np.float32)
    got, expected = forward_pair("HardSigmoid", [x], attrs)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6, atol=1e-7)


def test_hard_sigmoid_is_a_gate_not_a_rectifier():
    """The same true gradient under every rule, read from the top only."""
    y = np.array([[0.0, 0.3, 1.0, 0.9]])
    g = np.array([[[-2.0, -2.0, 3.0, 4.0]]])
    assert not REGISTRY["HardSigmoid"].relu_family
    got = backward(REGISTRY["HardSigmoid"], [g], [None], [y], layer({}, [y], [y], rule="guided"))[0]
    np.testing.assert_allclose(got, [[[0.0, -0.4, 0.0, 0.8]]], rtol=1e-15)
