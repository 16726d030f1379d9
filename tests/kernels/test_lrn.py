"""LRN: finite differences, a direct formula, ONNX Runtime forward parity.

Shapes have N ≠ C ≠ H ≠ W throughout: onnx.reference's LRN once iterated the batch axis instead
of the channels, which tests with N = C could not see; it is not used as an oracle here.
"""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

SHAPE = (2, 7, 3, 5)  # N != C != H != W
ATTRS = {"alpha": 0.3, "beta": 0.75, "bias": 1.5}   # alpha large enough that the window matters


def direct_lrn(x, size, alpha, beta, bias):
    """The ONNX formula spelled out: for each channel, sum the squares of its window."""
    channels = x.shape[1]
    y = np.empty_like(x)
    for c in range(channels):
        lo = max(0, c - (size - 1) // 2)
        hi = min(channels - 1, c + size // 2)    # ceil((size − 1) / 2)
        square_sum = np.sum(x[:, lo:hi + 1] ** 2, axis=1)
        y[:, c] = x[:, c] / (bias + alpha / size * square_sum) ** beta
    return y


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 9])
def test_finite_differences(size):
    """Even sizes use the asymmetric window and its mirror in the backward; 9 > C covers it all."""
    x = 2 * np.random.default_rng(size).standard_normal(SHAPE)
    result = check_op("LRN", [x], dict(ATTRS, size=size), k=2)
    assert result.ok, result


def test_finite_differences_rank3_and_caffenet_constants():
    x = 20 * np.random.default_rng(10).standard_normal((3, 8, 4))
    result = check_op("LRN", [x], {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0}, k=2)
    assert result.ok, result


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 9])
def test_forward_matches_direct_formula(size):
    """float64, rtol 1e-12: the running channel sums equal summing each window afresh."""
    x = 2 * np.random.default_rng(size + 20).standard_normal(SHAPE)
    got = REGISTRY["LRN"].forward([x], dict(ATTRS, size=size))[0]
    np.testing.assert_allclose(got, direct_lrn(x, size, **ATTRS), rtol=1e-12)


@pytest.mark.parametrize("size,shape,attrs", [
    (5, (2, 7, 3, 5), ATTRS),
    (3, (3, 9, 4, 2), ATTRS),
    (1, (2, 4, 3, 5), ATTRS),
    (7, (1, 5, 6, 3), ATTRS),                                       # window wider than C
    (5, (2, 11, 5, 4), {"alpha": 1e-4, "beta": 0.75, "bias": 1.0}),  # CaffeNet's constants
    (5, (2, 11, 5, 4), {}),                                           # ONNX defaults
])
def test_forward_matches_onnxruntime(size, shape, attrs):
    """ONNX Runtime's LRN takes 4-D inputs and odd sizes only. Tolerance: rtol 1e-5, atol 1e-6
    (float32 running sums and powf, in different orders)."""
    x = (3 * np.random.default_rng(size).standard_normal(shape)).astype(np.float32)
    a = dict(attrs, size=size)
    expected = run_onnxruntime(one_node_model("LRN", [("x", x)], a, opset=13), {"x": x})[0]
    got = REGISTRY["LRN"].forward([x], layer(a, [x], []).attrs)[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_window_runs_over_channels_not_batch():
    """Only channel 2 is non-zero, with a different value in each image. With size 3, alpha/size =
    0.1, beta = 0.75, bias = 1.5 and s = 1.5 + 0.1·x², by hand: y = x / s^0.75 on channel 2 and
    0 elsewhere; for an all-ones top diff, dx = s^−0.75 on channels 1 and 3, 1.5^−0.75 on 0, 4, 5,
    and s^−0.75 − (2·0.1·0.75)·x²·s^−1.75 on channel 2 — each image with its own x. A kernel
    that ran the window over the batch axis would mix the two images."""
    x = np.zeros((2, 6, 2, 3))
    x[0, 2], x[1, 2] = 2.0, -3.0
    value = x[:, 2]
    s = 1.5 + 0.1 * value ** 2
    top = REGISTRY["LRN"].forward([x], dict(ATTRS, size=3))
    expected_top = np.zeros_like(x)
    expected_top[:, 2] = value / s ** 0.75
    np.testing.assert_allclose(top[0], expected_top, rtol=1e-14)
    diff = backward(REGISTRY["LRN"], [np.ones((1,) + x.shape)], [x], top,
                                    layer(dict(ATTRS, size=3), [x], top))[0][0]
    expected = np.full_like(x, 1.5 ** -0.75)
    expected[:, 1] = expected[:, 3] = s ** -0.75
    expected[:, 2] = s ** -0.75 - 0.15 * value ** 2 * s ** -1.75
    np.testing.assert_allclose(diff, expected, rtol=1e-14)


def test_stacked_diffs_equal_separate_ones():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    a0 = dict(ATTRS, size=5)
    top = REGISTRY["LRN"].forward([x], a0)
    a = layer(a0, [x], top)
    g = rng.standard_normal((3,) + SHAPE).astype(np.float32)
    stacked = backward(REGISTRY["LRN"], [g], [x], top, a)[0]
    assert stacked.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(stacked[k:k + 1], backward(REGISTRY["LRN"], [g[k:k + 1]], [x], top, a)[0])


def test_float32_matches_float64():
    """Same data in both precisions; the float32 backward agrees to rtol 1e-5 / atol 1e-6."""
    rng = np.random.default_rng(4)
    x = (3 * rng.standard_normal((2, 16, 9, 7))).astype(np.float32)
    g = rng.standard_normal((2,) + x.shape).astype(np.float32)
    a0 = dict(ATTRS, size=5)
    diffs = []
    for dtype in (np.float32, np.float64):
        xd = x.astype(dtype)
        top = REGISTRY["LRN"].forward([xd], a0)
        diffs.append(backward(REGISTRY["LRN"], [g.astype(dtype)], [xd], top, layer(a0, [xd], top))[0])
    assert diffs[0].dtype == np.float32
    np.testing.assert_allclose(diffs[0], diffs[1], rtol=1e-5, atol=1e-6)


def test_missing_size_is_a_model_error():
    with pytest.raises(ModelError, match="size"):
        REGISTRY["LRN"].forward([np.ones((1, 3, 2, 2))], {})
