"""Erf, Exp, Log, Neg, Abs, Reciprocal, Sqrt and the step functions: finite differences and ONNX
Runtime parity."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair

SHAPE = (2, 3, 5, 4)  # N != C != H != W
# (op, input maker): positive inputs where the function needs them, away from 0 for Abs
SMOOTH = {
    "Erf": lambda r: 1.5 * r.standard_normal(SHAPE),
    "Exp": lambda r: r.standard_normal(SHAPE),
    "Log": lambda r: r.uniform(0.1, 5.0, SHAPE),
    "Neg": lambda r: r.standard_normal(SHAPE),
    "Abs": lambda r: np.where(r.random(SHAPE) < 0.5, -1, 1) * r.uniform(0.01, 3.0, SHAPE),
    "Reciprocal": lambda r: np.where(r.random(SHAPE) < 0.5, -1, 1) * r.uniform(0.2, 3.0, SHAPE),
    "Sqrt": lambda r: r.uniform(0.05, 5.0, SHAPE),
}
STEPS = ("Floor", "Ceil", "Round", "Sign")


@pytest.mark.parametrize("op_type", list(SMOOTH))
def test_finite_differences(op_type):
    result = check_op(op_type, [SMOOTH[op_type](np.random.default_rng(1))], {}, k=2)
    assert result.ok, result


@pytest.mark.parametrize("op_type", list(SMOOTH) + list(STEPS))
def test_forward_matches_onnxruntime(op_type):
    """Tolerance: rtol 2e-6, atol 1e-7 (float32 exp/log/erf approximations agree to a few ulp;
    the step functions exactly)."""
    rng = np.random.default_rng(2)
    x = (SMOOTH[op_type](rng) if op_type in SMOOTH else 3 * rng.standard_normal(SHAPE)).astype(np.float32)
    if op_type == "Round":
        x[0, 0, 0, :2] = [0.5, 2.5]                 # half to even
    got, expected = forward_pair(op_type, [x])
    assert got[0].dtype == np.float32
    tol = (2e-6, 1e-7) if op_type in SMOOTH else (0, 0)
    np.testing.assert_allclose(got[0], expected[0], rtol=tol[0], atol=tol[1])


@pytest.mark.parametrize("op_type", STEPS)
def test_step_functions_pass_zero(op_type):
    x = np.random.default_rng(3).standard_normal(SHAPE)
    g = np.ones((2,) + SHAPE)
    assert not backward(REGISTRY[op_type], [g], [x], [x], layer({}, [x], [x]))[0].any()


def test_float32_diff_stays_float32():
    x = np.random.default_rng(4).uniform(0.5, 2, SHAPE).astype(np.float32)
    g = np.ones((1,) + SHAPE, np.float32)
    for op_type in SMOOTH:
        op = REGISTRY[op_type]
        y = op.forward([x], {})
        assert backward(op, [g], [x], y, layer({}, [x], y))[0].dtype == np.float32, op_type
