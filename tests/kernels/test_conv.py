"""Conv: float64 finite differences, ONNX Runtime forward parity, stacking, chunking, float32."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY, conv
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

OP = REGISTRY["Conv"]


def make(x_shape, w_shape, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    bottoms = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)]
    if bias:
        bottoms.append(rng.standard_normal(w_shape[0]))
    return bottoms


# (id, x shape, W shape, attrs, bias); every x has N != C != H != W
CASES = [
    ("plain", (2, 3, 6, 5), (4, 3, 3, 3), {"pads": [1, 1, 1, 1]}, True),
    ("no_bias", (2, 3, 6, 5), (4, 3, 3, 3), {}, False),
    ("group2", (2, 4, 7, 6), (6, 2, 3, 2), {"group": 2, "pads": [1, 0, 1, 1]}, True),
    ("depthwise", (2, 3, 7, 6), (3, 1, 3, 3), {"group": 3, "pads": [1, 1, 1, 1]}, True),
    ("depthwise_x2_stride2", (2, 3, 8, 7), (6, 1, 3, 3),
     {"group": 3, "strides": [2, 2], "pads": [1, 1, 1, 1]}, False),
    ("stride3", (2, 3, 10, 8), (4, 3, 3, 2), {"strides": [3, 2], "pads": [1, 1, 0, 1]}, True),
    ("dilation2", (2, 3, 9, 7), (4, 3, 3, 2), {"dilations": [2, 2], "pads": [2, 1, 2, 1]}, True),
    ("asymmetric_pads", (2, 3, 6, 5), (4, 3, 3, 3), {"pads": [2, 0, 0, 1]}, True),
    # odd total pads (3 and 1), so SAME_UPPER and SAME_LOWER place them differently
    ("same_upper", (2, 3, 7, 6), (4, 3, 4, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, True),
    ("same_lower", (2, 3, 7, 6), (4, 3, 4, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, True),
    ("same_lower_dilated", (2, 3, 8, 7), (4, 3, 2, 2),
     {"auto_pad": "SAME_LOWER", "strides": [2, 1], "dilations": [2, 1]}, False),
    ("valid", (2, 3, 8, 7), (4, 3, 3, 2), {"auto_pad": "VALID", "strides": [2, 3]}, True),
    ("kernel_shape", (2, 3, 6, 5), (4, 3, 2, 3),
     {"kernel_shape": [2, 3], "pads": [0, 1, 1, 0]}, True),
    ("conv1d", (2, 3, 9), (4, 3, 3), {"strides": [2], "pads": [1, 2]}, True),
    ("conv3d", (2, 3, 5, 4, 6), (4, 3, 2, 3, 2),
     {"pads": [1, 0, 1, 0, 1, 1], "strides": [1, 2, 1]}, True),
]
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,x_shape,w_shape,attrs,bias", CASES, ids=IDS)
def test_input_diff_finite_differences(name, x_shape, w_shape, attrs, bias):
    bottoms = make(x_shape, w_shape, bias)
    pd = [True] + [False] * (len(bottoms) - 1)
    result = check_op("Conv", bottoms, attrs, propagate_down=pd, k=2)
    assert result.ok, result


PARAM_CASES = [c for c in CASES if c[0] in ("plain", "group2", "depthwise_x2_stride2", "stride3",
                                            "dilation2", "same_lower", "conv1d", "conv3d")]


@pytest.mark.parametrize("name,x_shape,w_shape,attrs,bias", PARAM_CASES,
                         ids=[c[0] for c in PARAM_CASES])
def test_weight_and_bias_diffs_finite_differences(name, x_shape, w_shape, attrs, bias):
    bottoms = make(x_shape, w_shape, bias, seed=1)
    result = check_op("Conv", bottoms, attrs, propagate_down=[True] * len(bottoms), k=2,
                      max_points=60)
    assert result.ok, result


def test_constant_weights_get_no_diff():
    x, w, b = make((2, 3, 6, 5), (4, 3, 3, 3))
    y = OP.forward([x, w, b], layer({}, [x, w, b], []).attrs)
    g = np.ones((1,) + y[0].shape)
    # The runtime keeps only W: x arrives as None, its shape in bottom_shapes.
    a = layer({}, [x, w, b], y, propagate_down=[True, False, False])
    diff = backward(OP, [g], [None, w, b], [None], a)
    assert diff[0].shape == (1,) + x.shape and diff[1] is None and diff[2] is None


# ONNX Runtime refuses dilation with SAME_* auto_pad, so that case has no oracle (and no model that
# runs forward can contain it).
ORT_CASES = [c for c in CASES if c[0] != "same_lower_dilated"]


@pytest.mark.parametrize("opset", [1, 11, 21])
@pytest.mark.parametrize("name,x_shape,w_shape,attrs,bias", ORT_CASES,
                         ids=[c[0] for c in ORT_CASES])
def test_forward_matches_onnxruntime(name, x_shape, w_shape, attrs, bias, opset):
    bottoms = [b.astype(np.float32) for b in make(x_shape, w_shape, bias, seed=2)]
    names = ["x", "w", "b"][:len(bottoms)]
    model = one_node_model("Conv", list(zip(names, bottoms)), attrs, constants=names[1:],
                           opset=opset)
    expected = run_onnxruntime(model, {"x": bottoms[0]})[0]
    got = OP.forward(bottoms, layer(attrs, bottoms, []).attrs)[0]
    assert got.dtype == np.float32 and got.shape == expected.shape
    # float32, sums of at most 27 products of N(0,1) numbers: rtol 1e-5, atol 1e-5.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,x_shape,w_shape,attrs,bias", CASES, ids=IDS)
def test_stacked_diffs_equal_separate_ones(name, x_shape, w_shape, attrs, bias):
    bottoms = [b.astype(np.float32) for b in make(x_shape, w_shape, bias, seed=3)]
    y = OP.forward(bottoms, layer(attrs, bottoms, []).attrs)
    g = np.random.default_rng(4).standard_normal((3,) + y[0].shape).astype(np.float32)
    a = layer(attrs, bottoms, y, propagate_down=[True] * len(bottoms))
    stacked = backward(OP, [g], bottoms, y, a)
    for k in range(3):
        single = backward(OP, [g[k:k + 1]], bottoms, y, a)
        # dX is the same arithmetic per image: bit-identical.
        np.testing.assert_array_equal(stacked[0][k:k + 1], single[0])
        for s, d in zip(stacked[1:], single[1:]):
            # dW, db: BLAS may block the K·M-row product differently from the M-row one, so the
            # float32 sums agree to rounding: 1e-6 of the largest entry (float32 eps 1.2e-7).
            np.testing.assert_allclose(s[k:k + 1], d, rtol=0, atol=1e-6 * np.abs(d).max())


@pytest.mark.parametrize("name,x_shape,w_shape,attrs,bias", CASES, ids=IDS)
def test_float32_backward_matches_float64(name, x_shape, w_shape, attrs, bias):
    b64 = make(x_shape, w_shape, bias, seed=5)
    b32 = [b.astype(np.float32) for b in b64]
    y = OP.forward(b64, layer(attrs, b64, []).attrs)
    g64 = np.random.default_rng(6).standard_normal((2,) + y[0].shape)
    pd = [True] * len(b64)
    d64 = backward(OP, [g64], b64, y, layer(attrs, b64, y, propagate_down=pd))
    d32 = backward(OP, [g64.astype(np.float32)], b32, [y[0].astype(np.float32)],
                      layer(attrs, b32, y, propagate_down=pd))
    for a32, a64 in zip(d32, d64):
        assert a32.dtype == np.float32
        # float32 rounding of sums of at most ~100 O(1) products: 2e-6 of the largest entry
        # (float32 eps 1.2e-7; measured at most 2.7e-7).
        np.testing.assert_allclose(a32, a64, rtol=0, atol=2e-6 * np.abs(a64).max())


@pytest.mark.parametrize("budget_rows", [1, 3, "images"])
def test_chunked_backward_matches_whole(monkeypatch, budget_rows):
    """Column-buffer chunks (several images, or a few output rows of one image) change nothing."""
    x, w, b = make((3, 4, 9, 8), (6, 2, 3, 3), seed=7)
    attrs = {"group": 2, "strides": [2, 1], "pads": [1, 1, 2, 1]}
    y = OP.forward([x, w, b], layer(attrs, [x, w, b], []).attrs)
    g = np.random.default_rng(8).standard_normal((2,) + y[0].shape)
    a = layer(attrs, [x, w, b], y, propagate_down=[True, True, True])
    whole = backward(OP, [g], [x, w, b], y, a)
    OW, rows = y[0].shape[3], y[0].shape[2]
    row_bytes = 4 * 9 * OW * 8          # C·kvol·OW float64 values
    budget = 2 * rows * row_bytes if budget_rows == "images" else budget_rows * row_bytes
    monkeypatch.setattr(conv, "COLUMN_BUDGET", budget)
    assert len(list(conv._chunks(6, rows, row_bytes))) > 1
    chunked = backward(OP, [g], [x, w, b], y, a)
    for c, w_ in zip(chunked, whole):
        np.testing.assert_allclose(c, w_, rtol=1e-12, atol=1e-12)
    result = check_op("Conv", [x, w, b], attrs, propagate_down=[True, True, False], k=2,
                      max_points=40)
    assert result.ok, result


def test_same_pads_follow_the_onnx_spec():
    """Begin pads as the spec gives them; the ORT parity test confirms them on odd total pads."""
    # in 8, stride 2, kernel 4: out 4, total pad (4−1)·2 + 4 − 8 = 2 → 1/1;
    # kernel 3: total (4−1)·2 + 3 − 8 = 1 → 0/1 (SAME_UPPER) or 1/0 (SAME_LOWER).
    a = {"auto_pad": "SAME_UPPER", "strides": [2, 2]}
    assert conv.Geometry((1, 1, 8, 8), (1, 1, 4, 3), a).begin == [0, 1, 0]
    a = {"auto_pad": "SAME_LOWER", "strides": [2, 2]}
    assert conv.Geometry((1, 1, 8, 8), (1, 1, 4, 3), a).begin == [0, 1, 1]


def test_bad_attributes_name_the_node():
    x, w = make((2, 3, 6, 5), (4, 3, 3, 3), bias=False)
    with pytest.raises(ModelError, match="'conv7'"):
        OP.forward([x, w], {"group": 2, "node_name": "conv7"})
    with pytest.raises(ModelError, match="'conv7'"):
        OP.forward([x, w], {"auto_pad": "SAME", "node_name": "conv7"})
