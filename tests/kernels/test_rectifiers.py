"""Rectifiers (HardSwish, Elu, Selu, Celu, Gelu, Softplus, Mish, ThresholdedRelu): float64 finite
differences, ONNX Runtime forward parity, and the three rules with each one's own f'(x)."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair

SHAPE = (2, 3, 5, 4)  # N != C != H != W
# (op, attrs, opset): every rectifier at the opset that has it (Gelu from 20, HardSwish from 14)
CASES = [
    ("HardSwish", {}, 14),
    ("Elu", {}, 17), ("Elu", {"alpha": 0.4}, 17),
    ("Selu", {}, 17), ("Selu", {"alpha": 1.5, "gamma": 2.0}, 17),
    ("Celu", {"alpha": 0.7}, 17),
    ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20),
    ("Softplus", {}, 17), ("Mish", {}, 18),
    ("ThresholdedRelu", {"alpha": 0.5}, 17),
]
IDS = [f"{op}-{'-'.join(f'{k}{v}' for k, v in attrs.items()) or 'default'}" for op, attrs, _ in CASES]
KINKS = {"HardSwish": (-3.0, 3.0), "ThresholdedRelu": (0.5,), "Elu": (0.0,), "Selu": (0.0,),
         "Celu": (0.0,)}


def inputs(op_type, rng, scale=3.0):
    """Gaussian inputs, kept 1e-3 away from the op's kinks (central differences straddle them)."""
    x = scale * rng.standard_normal(SHAPE)
    for kink in KINKS.get(op_type, ()):
        near = np.abs(x - kink) < 1e-3
        x = np.where(near, kink + 1e-3, x)
    return x


def slope(op_type, attrs, x, h=1e-6):
    """f'(x) by central differences of the op's own forward (float64)."""
    f = REGISTRY[op_type].forward
    a = layer(attrs, [x], [x]).attrs
    return (f([x + h], a)[0] - f([x - h], a)[0]) / (2 * h)


@pytest.mark.parametrize("op_type,attrs,opset", CASES, ids=IDS)
def test_finite_differences(op_type, attrs, opset):
    result = check_op(op_type, [inputs(op_type, np.random.default_rng(1))], attrs, k=2)
    assert result.ok, result


@pytest.mark.parametrize("op_type,attrs,opset", CASES, ids=IDS)
def test_forward_matches_onnxruntime(op_type, attrs, opset):
    """Tolerance: rtol 2e-6, atol 1e-6 (ours in float64 then rounded; ONNX Runtime's float32
    exp/erf/tanh approximations are good to a few ulp)."""
    x = inputs(op_type, np.random.default_rng(2)).astype(np.float32)
    got, expected = forward_pair(op_type, [x], attrs, opset=opset)
    assert got[0].dtype == np.float32
    np.testing.assert_allclose(got[0], expected[0], rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("rule", ["backprop", "deconvnet", "guided"])
@pytest.mark.parametrize("op_type,attrs,opset", CASES, ids=IDS)
def test_the_three_rules(op_type, attrs, opset, rule):
    """backprop g·f'(x), deconvnet max(g, 0), guided max(g, 0)·f'(x); f' by differences
    (tolerance 1e-7 absolute, the differences' own error)."""
    rng = np.random.default_rng(3)
    x = inputs(op_type, rng)
    g = rng.standard_normal((2,) + SHAPE)
    a = layer(attrs, [x], [x], rule=rule)
    got = backward(REGISTRY[op_type], [g], [x], [None], a)[0]
    local = slope(op_type, attrs, x)
    expected = {"backprop": g * local, "deconvnet": np.maximum(g, 0),
                "guided": np.maximum(g, 0) * local}[rule]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)


def test_rectifiers_are_in_the_relu_family():
    for op_type, _, _ in CASES:
        assert REGISTRY[op_type].relu_family and "rule" in REGISTRY[op_type].controls


def test_in_place_writes_over_the_top_diff():
    x = inputs("Gelu", np.random.default_rng(4)).astype(np.float32)
    g = np.random.default_rng(5).standard_normal((1,) + SHAPE).astype(np.float32)
    expected = backward(REGISTRY["Gelu"], [g.copy()], [x], [None], layer({}, [x], [x]))[0]
    a = layer({}, [x], [x])
    got = REGISTRY["Gelu"].backward([g], [x], [None], a.attrs, **a.controls, in_place=True)[0]
    assert np.shares_memory(got, g)
    np.testing.assert_array_equal(got, expected)


def test_gelu_by_hand():
    """GELU(x) = x·Φ(x): Φ(0) = ½, Φ(1) = 0.841344746…; f'(0) = ½."""
    x = np.array([[0.0, 1.0, -1.0]])
    y = REGISTRY["Gelu"].forward([x], {})[0]
    np.testing.assert_allclose(y, [[0.0, 0.8413447460685429, -0.15865525393145707]], rtol=1e-14)
    d = backward(REGISTRY["Gelu"], [np.ones((1, 1, 3))], [x], [None], layer({}, [x], [y]))[0]
    assert d[0, 0, 0] == 0.5


def test_saturated_inputs_stay_finite():
    x = np.array([[-200.0, -50.0, 0.0, 50.0, 200.0]], np.float32)
    for op_type, attrs, _ in CASES:
        y = REGISTRY[op_type].forward([x], layer(attrs, [x], [x]).attrs)[0]
        d = backward(REGISTRY[op_type], [np.ones((1,) + x.shape, np.float32)], [x], [None],
                     layer(attrs, [x], [y]))[0]
        assert np.isfinite(y).all() and np.isfinite(d).all(), op_type
