"""ConvTranspose: finite differences (x, and W and bias when not constants), ONNX Runtime parity
over strides, dilations, pads, output_padding, output_shape, auto_pad and groups."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair

X_SHAPE = (2, 4, 5, 3)   # N != C != H != W
# (name, attrs, weight shape (C, M/G, kh, kw))
CASES = [
    ("plain", {}, (4, 3, 3, 2)),
    ("stride2-pads", {"strides": [2, 2], "pads": [1, 0, 1, 1]}, (4, 2, 3, 3)),
    ("output_padding", {"strides": [2, 3], "output_padding": [1, 2]}, (4, 2, 2, 3)),
    ("dilation", {"dilations": [2, 1], "pads": [1, 1, 1, 1]}, (4, 3, 3, 3)),
    ("groups", {"group": 2, "strides": [2, 1]}, (4, 3, 3, 3)),
    ("depthwise", {"group": 4}, (4, 1, 3, 3)),
    ("output_shape", {"strides": [2, 2], "output_shape": [10, 6]}, (4, 2, 3, 3)),
    ("same_upper", {"strides": [2, 2], "auto_pad": "SAME_UPPER"}, (4, 2, 3, 3)),
    ("same_lower", {"strides": [2, 2], "auto_pad": "SAME_LOWER"}, (4, 2, 4, 3)),
]


def operands(w_shape, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(X_SHAPE), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1])


@pytest.mark.parametrize("name,attrs,w_shape", CASES, ids=[c[0] for c in CASES])
def test_forward_matches_onnxruntime(name, attrs, w_shape):
    """Tolerance: rtol 1e-5, atol 1e-5 (float32 sums of ≤ 36 products in another order)."""
    x, w, b = (a.astype(np.float32) for a in operands(w_shape, 1))
    b = np.resize(b, w_shape[1] * attrs.get("group", 1))
    got, expected = forward_pair("ConvTranspose", [x, w, b], attrs)
    assert got[0].shape == expected[0].shape
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,attrs,w_shape", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("weights", [False, True], ids=["x", "x-w-b"])
def test_finite_differences(name, attrs, w_shape, weights):
    x, w, b = operands(w_shape, 2)
    b = np.resize(b, w_shape[1] * attrs.get("group", 1))
    result = check_op("ConvTranspose", [x, w, b], attrs, propagate_down=[True, weights, weights],
                      k=2, max_points=60)
    assert result.ok, result


def test_backward_is_the_convolution():
    """dx of ConvTranspose(x; W) is Conv(dy; W) with the same strides and pads."""
    attrs = {"strides": [2, 2], "pads": [1, 0, 1, 1]}
    x, w, _ = operands((4, 2, 3, 3), 3)
    y = REGISTRY["ConvTranspose"].forward([x, w], attrs)[0]
    dy = np.random.default_rng(4).standard_normal((1,) + y.shape)
    a = layer(attrs, [x, w], [y], propagate_down=[True, False])
    dx = backward(REGISTRY["ConvTranspose"], [dy], [None, w], [None], a)[0]
    conv = REGISTRY["Conv"].forward([dy[0], w], attrs)[0]
    np.testing.assert_allclose(dx[0], conv, rtol=1e-12)
