"""ReLU family: float64 finite differences, ONNX Runtime forward parity, the three rules."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

SHAPE = (2, 3, 5, 4)  # N != C != H != W


def away_from_zero(rng, shape, margin=1e-3):
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, margin, x)


CASES = [
    ("Relu", {}, lambda x: [x]),
    ("LeakyRelu", {"alpha": 0.2}, lambda x: [x]),
    ("PRelu", {}, lambda x: [x, np.array([0.1, -0.3, 0.5]).reshape(3, 1, 1)]),
    ("Clip", {}, lambda x: [3 * x, np.array(-1.0), np.array(2.0)]),
]


@pytest.mark.parametrize("op_type,attrs,make", CASES, ids=[c[0] for c in CASES])
def test_finite_differences(op_type, attrs, make):
    rng = np.random.default_rng(1)
    bottoms = make(away_from_zero(rng, SHAPE))
    pd = [True] + [False] * (len(bottoms) - 1)
    result = check_op(op_type, bottoms, attrs, propagate_down=pd, k=2)
    assert result.ok, result


@pytest.mark.parametrize("op_type,attrs,make", CASES, ids=[c[0] for c in CASES])
def test_forward_matches_onnxruntime(op_type, attrs, make):
    rng = np.random.default_rng(2)
    bottoms = [b.astype(np.float32) for b in make(rng.standard_normal(SHAPE))]
    names = [f"x{i}" for i in range(len(bottoms))]
    model = one_node_model(op_type, list(zip(names, bottoms)), attrs, constants=names[1:])
    expected = run_onnxruntime(model, {"x0": bottoms[0]})[0]
    got = REGISTRY[op_type].forward(bottoms, layer(attrs, bottoms, []).attrs)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_clip_opset6_attributes():
    x = np.linspace(-3, 3, 13)
    top = REGISTRY["Clip"].forward([x], {"min": -1.0, "max": 2.0})
    assert top[0].min() == -1.0 and top[0].max() == 2.0


@pytest.mark.parametrize("rule", ["backprop", "deconvnet", "guided"])
def test_three_rules_by_hand(rule):
    x = np.array([[-2.0, -1.0, 1.0, 2.0]])
    g = np.array([[[-3.0, 4.0, -5.0, 6.0]]])
    attrs = layer({}, [x], [np.maximum(x, 0)], rule=rule)
    got = backward(REGISTRY["Relu"], [g], [x], [np.maximum(x, 0)], attrs)[0]
    expected = {"backprop": [[[0, 0, -5, 6]]], "deconvnet": [[[0, 4, 0, 6]]],
                "guided": [[[0, 0, 0, 6]]]}[rule]
    np.testing.assert_array_equal(got, expected)


def test_leaky_guided_keeps_slope():
    x = np.array([[-2.0, 3.0]])
    g = np.array([[[5.0, -1.0]]])
    attrs = layer({"alpha": 0.1}, [x], [x], rule="guided")
    got = backward(REGISTRY["LeakyRelu"], [g], [x], [x], attrs)[0]
    np.testing.assert_allclose(got, [[[0.5, 0.0]]])


def test_stacked_diffs_equal_separate_ones():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    y = np.maximum(x, 0)
    g = rng.standard_normal((3,) + SHAPE).astype(np.float32)
    for rule in ("backprop", "deconvnet", "guided"):
        a = layer({}, [x], [y], rule=rule)
        stacked = backward(REGISTRY["Relu"], [g], [x], [y], a)[0]
        for k in range(3):
            single = backward(REGISTRY["Relu"], [g[k:k + 1]], [x], [y], a)[0]
            np.testing.assert_array_equal(stacked[k:k + 1], single)
