"""Softmax / LogSoftmax: finite differences and ONNX Runtime parity under both opset semantics."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

SHAPE = (2, 3, 5, 4)  # N != C != H != W

# (opset, axis or None for the default): opset 11 coerces to 2-D at axis, opset 13 uses one axis
SEMANTICS = [(11, None), (11, 2), (11, -1), (11, 0), (13, None), (13, 1), (13, -3), (13, 0)]


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", SEMANTICS)
def test_finite_differences(op_type, opset, axis):
    x = 2 * np.random.default_rng(1).standard_normal(SHAPE)
    attrs = {"opset": opset} if axis is None else {"opset": opset, "axis": axis}
    result = check_op(op_type, [x], attrs, k=2, max_points=60)
    assert result.ok, result


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", SEMANTICS)
def test_forward_matches_onnxruntime(op_type, opset, axis):
    """Tolerance: rtol 1e-6, atol 1e-6 (float32 exp/log sums)."""
    x = (3 * np.random.default_rng(2).standard_normal(SHAPE)).astype(np.float32)
    attrs = {} if axis is None else {"axis": axis}
    expected = run_onnxruntime(one_node_model(op_type, [("x", x)], attrs, opset=opset), {"x": x})[0]
    got = REGISTRY[op_type].forward([x], layer(attrs, [x], [], opset=opset).attrs)[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_opsets_normalise_different_blocks():
    """axis = 1 on (N, C, H, W): opset 11 sums to 1 over C·H·W per image, opset 13 over C alone."""
    x = np.random.default_rng(3).standard_normal(SHAPE)
    old = REGISTRY["Softmax"].forward([x], {"opset": 11, "axis": 1})[0]
    new = REGISTRY["Softmax"].forward([x], {"opset": 13, "axis": 1})[0]
    np.testing.assert_allclose(old.sum(axis=(1, 2, 3)), 1.0, rtol=1e-14)
    np.testing.assert_allclose(new.sum(axis=1), 1.0, rtol=1e-14)
    assert not np.allclose(old, new)


def test_backward_formula_by_hand():
    """One row y = softmax(x): dx = y ⊙ (g − Σ g·y); log-softmax: dx = g − exp(y)·Σ g."""
    x = np.array([[0.5, -1.0, 2.0]])
    g = np.array([[[1.0, 2.0, -1.0]]])
    y = np.exp(x) / np.exp(x).sum()
    a = layer({"opset": 13}, [x], [y])
    got = backward(REGISTRY["Softmax"], [g], [None], [y], a)[0]
    np.testing.assert_allclose(got, y * (g - np.sum(g * y)), rtol=1e-14)
    log_y = np.log(y)
    got = backward(REGISTRY["LogSoftmax"], [g], [None], [log_y], a)[0]
    np.testing.assert_allclose(got, g - y * g.sum(), rtol=1e-14)


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
def test_large_inputs_stay_finite(op_type):
    x = np.array([[1000.0, 999.0, -1000.0]], np.float32)
    y = REGISTRY[op_type].forward([x], {"opset": 13})[0]
    assert np.isfinite(y).all()
    expected = x - 1000.0 - np.log1p(np.exp(-1.0))
    np.testing.assert_allclose(y if op_type == "LogSoftmax" else np.log(y[:, :2]),
                               expected if op_type == "LogSoftmax" else expected[:, :2], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
def test_stacked_diffs_equal_separate_ones(op_type):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    a0 = {"opset": 13, "axis": 1}
    top = REGISTRY[op_type].forward([x], a0)
    a = layer(a0, [x], top)
    g = rng.standard_normal((3,) + SHAPE).astype(np.float32)
    stacked = backward(REGISTRY[op_type], [g], [None], top, a)[0]
    assert stacked.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(stacked[k:k + 1], backward(REGISTRY[op_type], [g[k:k + 1]], [None], top, a)[0])


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
def test_float32_matches_float64(op_type):
    """Same data in both precisions; rtol 1e-5 / atol 1e-6."""
    rng = np.random.default_rng(5)
    x = (2 * rng.standard_normal((2, 10, 3))).astype(np.float32)
    g = rng.standard_normal((2,) + x.shape).astype(np.float32)
    a0 = {"opset": 11, "axis": 1}
    diffs = []
    for dtype in (np.float32, np.float64):
        top = REGISTRY[op_type].forward([x.astype(dtype)], a0)
        diffs.append(backward(REGISTRY[op_type], [g.astype(dtype)], [None], top, layer(a0, [x], top))[0])
    assert diffs[0].dtype == np.float32
    np.testing.assert_allclose(diffs[0], diffs[1], rtol=1e-5, atol=1e-6)


def test_axis_out_of_range_is_a_model_error():
    with pytest.raises(ModelError, match="axis"):
        REGISTRY["Softmax"].forward([np.ones((2, 3))], {"opset": 13, "axis": 2})
