"""CUDA Add, Sum, Sub, Mul, Div, Max, Min, Pow against the CPU kernels: numpy broadcasting both
ways, scalars, constants, ties, K = 2.

Tolerance: products and quotients are the CPU's float32 operations; the broadcast sums run in
another order (rtol 1e-5, atol 1e-6 of the largest |entry|); Pow uses the device's pow and log
(rtol 1e-5).
"""
import numpy as np
import pytest

N, C, H, W = 2, 3, 5, 4
SHAPES = [
    ("same", (N, C, H, W), (N, C, H, W)),
    ("channel", (N, C, H, W), (C, 1, 1)),
    ("channel_first", (C, 1, 1), (N, C, H, W)),
    ("scalar", (N, C, H, W), ()),
    ("both", (N, 1, H, 1), (1, C, 1, W)),
]
IDS = [s[0] for s in SHAPES]


def data(shape, seed, positive=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.abs(x) + 0.5 if positive else x


@pytest.mark.parametrize("op_type", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("name,shape_a,shape_b", SHAPES, ids=IDS)
def test_binary(op_type, name, shape_a, shape_b, check):
    check(op_type, [data(shape_a, 1), data(shape_b, 2, positive=op_type == "Div")], {}, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op_type", ["Mul", "Div", "Sub"])
def test_constant_operand(op_type, check):
    """A float64 constant must not upcast the float32 diff (it is cast on the device)."""
    from caffe_port.kernels import REGISTRY
    b = np.random.default_rng(3).uniform(0.5, 2, (C, 1, 1))            # float64: a graph constant
    a = data((N, C, H, W), 4).astype(np.float32)
    from caffe_port.kernels.cuda import device
    from helpers.kernel_calls import backward, layer
    y = REGISTRY[op_type].forward([a, b], {})[0].astype(np.float32)
    attrs = layer({}, [a, b], [y], [True, False])
    g = data((2, N, C, H, W), 5).astype(np.float32)
    cpu = backward(REGISTRY[op_type], [g], [a, b], [None], attrs)
    gpu = backward(REGISTRY[op_type].cuda_backward(), [device.upload(g)], [device.upload(a), b], [None], attrs)
    assert gpu[1] is None and gpu[0].dtype == np.float32
    np.testing.assert_allclose(device.to_host(gpu[0]), cpu[0], rtol=1e-6)


def test_sum_variadic(check):
    check("Sum", [data((N, C, H, W), 6), data((C, 1, 1), 7), data((W,), 8)], {}, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op_type", ["Max", "Min"])
def test_max_min_with_ties(op_type, check):
    """Rounded operands tie often: the first operand holding y takes the diff, on both sides."""
    operands = [np.round(data((N, C, H, W), 9)), np.round(data((C, 1, 1), 10)), np.round(data((N, C, H, W), 11))]
    check(op_type, operands, {}, rtol=1e-5, atol=1e-6)


def test_max_constant_claims_ties(check):
    """An earlier constant that holds y claims the position though it takes no diff."""
    check("Max", [np.zeros((1,)), np.round(data((N, C, H, W), 12))], {}, constants=(0,))


def test_pow(check):
    x = data((N, C, H, W), 13)
    x[0, 0, 0, :2] = [0.0, -1.0]            # ∂/∂p is 0 where x <= 0
    check("Pow", [x, np.full((C, 1, 1), 2.0)], {}, rtol=1e-5, atol=1e-6)


def test_pow_positive_base(check):
    check("Pow", [data((N, C, H, W), 14, positive=True), data((W,), 15)], {}, rtol=1e-5, atol=1e-6)
