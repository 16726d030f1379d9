"""MaxPool / GlobalMaxPool: finite differences, ONNX Runtime forward parity, switches by hand."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

SHAPE = (2, 3, 7, 6)  # N != C != H != W


def distinct(rng, shape):
    """Values 4/size apart: no window holds a near-tie, so no point sits on a kink."""
    size = int(np.prod(shape))
    return rng.permutation(size).reshape(shape) * (4.0 / size) - 2.0


CASES = [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2]}, SHAPE),
    ("MaxPool", {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 2, 1], "ceil_mode": 1}, SHAPE),
    ("MaxPool", {"kernel_shape": [2, 3], "strides": [1, 2], "dilations": [2, 1], "pads": [1, 1, 0, 1]}, SHAPE),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, SHAPE),
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"}, (2, 3, 5, 4)),
    ("MaxPool", {"kernel_shape": [3], "strides": [2], "pads": [1, 2], "ceil_mode": 1}, (2, 3, 9)),
    ("MaxPool", {"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 0]}, (2, 3, 4, 5, 6)),
    ("GlobalMaxPool", {}, SHAPE),
    ("GlobalMaxPool", {}, (2, 3, 4, 5, 2)),
]
IDS = ["3x3s2", "asym-pads-ceil", "dilated", "same-upper", "same-lower", "1d", "3d", "global", "global-3d"]


@pytest.mark.parametrize("op_type,attrs,shape", CASES, ids=IDS)
def test_finite_differences(op_type, attrs, shape):
    x = distinct(np.random.default_rng(1), shape)
    result = check_op(op_type, [x], attrs, k=2)
    assert result.ok, result
    assert result.kinks == 0, result


ORT_CASES = [
    # (attrs, input shape, opset, with Indices)
    ({"kernel_shape": [3, 3], "strides": [2, 2]}, (2, 3, 7, 6), 12, True),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [0, 1, 1, 0], "ceil_mode": 1}, (2, 3, 8, 7), 12, True),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}, (1, 3, 7, 9), 11, False),
    ({"kernel_shape": [2, 2], "strides": [3, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1}, (2, 3, 4, 7), 10, False),
    ({"kernel_shape": [3, 2], "strides": [1, 2], "dilations": [2, 2]}, (2, 3, 7, 6), 12, True),
    ({"kernel_shape": [3, 3], "strides": [2, 1], "storage_order": 1}, (2, 3, 7, 5), 12, True),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, (2, 3, 6, 7), 8, True),
    ({"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"}, (2, 3, 6, 7), 22, False),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER", "dilations": [2, 1]}, (2, 3, 9, 7), 12, False),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID", "ceil_mode": 1}, (2, 3, 8, 7), 12, False),
    ({"kernel_shape": [3], "strides": [2], "pads": [2, 1], "ceil_mode": 1}, (2, 3, 10), 12, True),
    ({"kernel_shape": [2, 3, 2], "strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1]}, (2, 3, 5, 4, 6), 12, True),
    ({"kernel_shape": [3, 3], "strides": [2, 2]}, (1, 2, 5, 5), 1, False),
]


@pytest.mark.parametrize("attrs,shape,opset,indices", ORT_CASES)
def test_forward_matches_onnxruntime(attrs, shape, opset, indices):
    """Max pooling selects inputs, so values and Indices must be equal exactly."""
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    n_out = 2 if indices else 1
    expected = run_onnxruntime(one_node_model("MaxPool", [("x", x)], attrs, opset=opset, n_outputs=n_out),
                               {"x": x})
    got = REGISTRY["MaxPool"].forward([x], layer(attrs, [x], expected, opset=opset).attrs)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_array_equal(g, e)


def test_forward_matches_onnxruntime_random_nodes():
    """A seeded sweep over 1- to 3-D nodes: every attribute family mixed; values exact."""
    rng = np.random.default_rng(3)
    checked = 0
    while checked < 40:
        nd = int(rng.integers(1, 4))
        kernel = [int(rng.integers(1, 4)) for _ in range(nd)]
        attrs = {"kernel_shape": kernel, "strides": [int(rng.integers(1, 4)) for _ in range(nd)],
                 "ceil_mode": int(rng.integers(0, 2)), "dilations": [int(rng.integers(1, 3)) for _ in range(nd)]}
        if rng.random() < 0.25:
            attrs["auto_pad"] = str(rng.choice(["VALID", "SAME_UPPER", "SAME_LOWER"]))
            if attrs["auto_pad"] != "VALID":
                attrs["strides"] = [min(s, k) for s, k in zip(attrs["strides"], kernel)]  # ORT: pads ≥ 0
        else:
            attrs["pads"] = [int(rng.integers(0, k)) for k in kernel + kernel]
        spatial = tuple(int(rng.integers(5, 10)) for _ in range(nd))   # ≥ the widest extent, 5
        x = rng.standard_normal((2, 3) + spatial).astype(np.float32)
        expected = run_onnxruntime(one_node_model("MaxPool", [("x", x)], attrs, opset=12, n_outputs=2), {"x": x})
        got = REGISTRY["MaxPool"].forward([x], layer(attrs, [x], expected, opset=12).attrs)
        assert got[0].shape == expected[0].shape, attrs
        np.testing.assert_array_equal(got[0], expected[0], err_msg=str(attrs))
        np.testing.assert_array_equal(got[1], expected[1], err_msg=str(attrs))
        checked += 1


@pytest.mark.parametrize("shape", [(2, 3, 7, 6), (2, 3, 9), (2, 3, 4, 5, 3)])
def test_global_forward_matches_onnxruntime(shape):
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    expected = run_onnxruntime(one_node_model("GlobalMaxPool", [("x", x)]), {"x": x})[0]
    got = REGISTRY["GlobalMaxPool"].forward([x], {})[0]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def backward_of(op_type, x, g, attrs):
    top = REGISTRY[op_type].forward([x], layer(attrs, [x], []).attrs)
    return backward(REGISTRY[op_type], [g], [x], top, layer(attrs, [x], top))[0]


def test_tie_goes_to_first_maximum_in_scan_order():
    x = np.array([[[[1.0, 5.0, 5.0],
                    [5.0, 2.0, 0.0],
                    [0.0, 5.0, 0.0]]]])
    g = np.full((1, 1, 1, 1, 1), 7.0)
    got = backward_of("MaxPool", x, g, {"kernel_shape": [3, 3]})
    expected = np.zeros((1,) + x.shape)
    expected[0, 0, 0, 0, 1] = 7.0            # row-major: (0, 1) precedes (0, 2), (1, 0), (2, 1)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(backward_of("GlobalMaxPool", x, g, {}), expected)


def test_overlapping_windows_accumulate():
    """3×3 stride 2 on 5×5: the centre is every window's maximum and takes all four diffs."""
    x = -np.arange(25.0).reshape(1, 1, 5, 5) / 25
    x[0, 0, 2, 2] = 1.0
    g = np.array([1.0, 10.0, 100.0, 1000.0]).reshape(1, 1, 1, 2, 2)
    got = backward_of("MaxPool", x, g, {"kernel_shape": [3, 3], "strides": [2, 2]})
    expected = np.zeros((1,) + x.shape)
    expected[0, 0, 0, 2, 2] = 1111.0
    np.testing.assert_array_equal(got, expected)


def test_padding_never_wins():
    """All inputs negative: a zero pad would be the maximum if it could win."""
    x = -1.0 - np.arange(12.0).reshape(1, 1, 3, 4)
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    top = REGISTRY["MaxPool"].forward([x], layer(attrs, [x], []).attrs)[0]
    assert top.shape == (1, 1, 2, 3)
    np.testing.assert_array_equal(top[0, 0], [[-1.0, -2.0, -4.0], [-5.0, -6.0, -8.0]])
    g = np.ones((1,) + top.shape)
    got = backward_of("MaxPool", x, g, attrs)
    assert got.sum() == top.size and got.min() == 0.0


def test_backward_takes_output_size_from_top_shapes():
    """The switches follow the runtime's output size: a shorter top leaves the tail without diff."""
    x = distinct(np.random.default_rng(4), (1, 2, 7, 7))
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}
    top = REGISTRY["MaxPool"].forward([x], layer(attrs, [x], []).attrs)[0]
    assert top.shape[2:] == (3, 3)
    cropped = top[:, :, :2, :2]
    g = np.ones((1,) + cropped.shape)
    got = backward(REGISTRY["MaxPool"], [g], [x], [cropped], layer(attrs, [x], [cropped]))[0]
    assert got.sum() == 2 * 4 and not got[..., 5:, :].any() and not got[..., :, 5:].any()


def test_indices_output_takes_no_diff():
    x = distinct(np.random.default_rng(5), SHAPE)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2]}
    tops = REGISTRY["MaxPool"].forward([x], layer(attrs, [x], [np.empty((2, 3, 3, 2))] * 2).attrs)
    assert len(tops) == 2 and tops[1].dtype == np.int64
    g = np.random.default_rng(6).standard_normal((2,) + tops[0].shape)
    a = layer(attrs, [x], tops)
    with_indices = backward(REGISTRY["MaxPool"], [g, None], [x], tops, a)
    assert len(with_indices) == 1
    np.testing.assert_array_equal(with_indices[0], backward_of("MaxPool", x, g, attrs))


@pytest.mark.parametrize("op_type,attrs", [("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2]}),
                                           ("GlobalMaxPool", {})])
def test_stacked_diffs_equal_separate_ones(op_type, attrs):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    top = REGISTRY[op_type].forward([x], layer(attrs, [x], []).attrs)
    a = layer(attrs, [x], top)
    g = rng.standard_normal((3,) + top[0].shape).astype(np.float32)
    stacked = backward(REGISTRY[op_type], [g], [x], top, a)[0]
    assert stacked.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(stacked[k:k + 1], backward(REGISTRY[op_type], [g[k:k + 1]], [x], top, a)[0])


def test_float32_matches_float64():
    """Same switches (the float64 data are the float32 data); sums agree to float32 precision."""
    rng = np.random.default_rng(8)
    x32 = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    attrs = {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}
    g32 = rng.standard_normal((2, 2, 3, 9, 8)).astype(np.float32)
    d32 = backward_of("MaxPool", x32, g32, attrs)
    d64 = backward_of("MaxPool", x32.astype(np.float64), g32.astype(np.float64), attrs)
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=1e-6, atol=1e-6)


def test_unknown_auto_pad_is_a_model_error():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ModelError, match="auto_pad"):
        REGISTRY["MaxPool"].forward([x], layer({"kernel_shape": [2, 2], "auto_pad": "SAME"}, [x], []).attrs)
