"""AveragePool / GlobalAveragePool: finite differences, ONNX Runtime's divisors, parity."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

SHAPE = (2, 3, 7, 6)  # N != C != H != W

CASES = [
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2]}, SHAPE),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 2], "ceil_mode": 1,
                     "count_include_pad": 1}, SHAPE),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 2], "ceil_mode": 1,
                     "count_include_pad": 0}, SHAPE),
    ("AveragePool", {"kernel_shape": [2, 3], "strides": [1, 2], "dilations": [2, 1], "pads": [1, 1, 0, 1],
                     "count_include_pad": 1}, SHAPE),
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER",
                     "count_include_pad": 1}, SHAPE),
    ("AveragePool", {"kernel_shape": [3], "strides": [2], "pads": [1, 2], "ceil_mode": 1}, (2, 3, 9)),
    ("AveragePool", {"kernel_shape": [2, 3, 2], "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 0],
                     "count_include_pad": 1}, (2, 3, 4, 5, 6)),
    ("GlobalAveragePool", {}, SHAPE),
    ("GlobalAveragePool", {}, (2, 3, 4)),
]
IDS = ["3x3s2", "ceil-include-pad", "ceil-exclude-pad", "dilated", "same-lower", "1d", "3d", "global",
       "global-1d"]


@pytest.mark.parametrize("op_type,attrs,shape", CASES, ids=IDS)
def test_finite_differences(op_type, attrs, shape):
    x = np.random.default_rng(1).standard_normal(shape)
    result = check_op(op_type, [x], attrs, k=2)
    assert result.ok, result


def pool_ones(attrs, length, opset=19):
    """ONNX Runtime's and this kernel's 1-D AveragePool of ones: top = (taps in input) / divisor."""
    x = np.ones((1, 1, length), np.float32)
    ort = run_onnxruntime(one_node_model("AveragePool", [("x", x)], attrs, opset=opset), {"x": x})[0]
    ours = REGISTRY["AveragePool"].forward([x], layer(attrs, [x], [], opset=opset).attrs)[0]
    return ort[0, 0], ours[0, 0]


# (length, kernel, stride, pads, count_include_pad) -> (taps inside the input, divisor) per output;
# windows that cross the padding, and (ceil_mode) windows that run past the end padding.
DIVISORS = [
    ((7, 3, 2, (1, 1), 1), [(2, 3), (3, 3), (3, 3), (2, 3)]),
    ((7, 3, 2, (1, 1), 0), [(2, 2), (3, 3), (3, 3), (2, 2)]),
    ((8, 3, 2, (0, 0), 1), [(3, 3), (3, 3), (3, 3), (2, 2)]),            # last window [6, 9): 2 in padded input
    ((8, 3, 2, (1, 2), 1), [(2, 3), (3, 3), (3, 3), (3, 3), (1, 3)]),
    ((8, 4, 3, (2, 1), 1), [(2, 4), (4, 4), (4, 4), (1, 2)]),            # last window [7, 11) ∩ [−2, 9)
    ((8, 4, 3, (2, 1), 0), [(2, 2), (4, 4), (4, 4), (1, 1)]),
    ((5, 3, 3, (2, 2), 1), [(1, 3), (3, 3), (1, 3)]),
    ((6, 3, 4, (0, 2), 1), [(3, 3), (2, 3)]),
]


@pytest.mark.parametrize("case,expected", DIVISORS, ids=[str(c) for c, _ in DIVISORS])
def test_divisor_rule_measured_in_onnxruntime(case, expected):
    """count_include_pad = 1 divides by the taps inside [−pad_begin, in + pad_end), 0 by those
    inside the input: stated by hand, then checked against ONNX Runtime and the kernel."""
    length, kernel, stride, pads, include = case
    attrs = {"kernel_shape": [kernel], "strides": [stride], "pads": list(pads), "ceil_mode": 1,
             "count_include_pad": include}
    ort, ours = pool_ones(attrs, length)
    stated = np.array([taps / divisor for taps, divisor in expected], np.float32)
    np.testing.assert_allclose(ort, stated, rtol=1e-7)
    np.testing.assert_allclose(ours, stated, rtol=1e-7)


def test_dilated_divisor_counts_taps_not_span():
    """Length 8, kernel 3, dilation 2, stride 3, pads (0, 2), ceil_mode: the last window's taps
    6, 8, 10 meet the padded input [0, 10) at 6 and 8, the input at 6 only."""
    attrs = {"kernel_shape": [3], "strides": [3], "pads": [0, 2], "ceil_mode": 1, "dilations": [2]}
    for include, last in ((1, 0.5), (0, 1.0)):
        ort, ours = pool_ones(dict(attrs, count_include_pad=include), 8)
        assert ort.shape == (3,)
        np.testing.assert_allclose(ort[-1], last, rtol=1e-7)
        np.testing.assert_allclose(ours, ort, rtol=1e-7)


ORT_CASES = [
    # (attrs, input shape, opset): odd sizes, stride 2, ceil_mode, asymmetric pads, both divisors
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1, "count_include_pad": 1},
     (2, 3, 7, 9), 11),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1, "count_include_pad": 0},
     (2, 3, 7, 9), 11),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 1},
     (1, 3, 9, 7), 10),
    ({"kernel_shape": [5, 5], "strides": [3, 3], "pads": [2, 2, 2, 2], "count_include_pad": 1}, (2, 3, 11, 7), 7),
    ({"kernel_shape": [2, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER", "count_include_pad": 1},
     (2, 3, 7, 8), 11),
    ({"kernel_shape": [3, 2], "strides": [2, 1], "auto_pad": "VALID", "ceil_mode": 1}, (2, 3, 8, 7), 11),
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 2, 2, 1], "ceil_mode": 1, "dilations": [2, 1],
      "count_include_pad": 1}, (2, 3, 9, 7), 19),
    ({"kernel_shape": [3], "strides": [2], "pads": [2, 1], "ceil_mode": 1, "count_include_pad": 1}, (2, 3, 10), 22),
    ({"kernel_shape": [2, 3, 2], "strides": [2, 1, 2], "pads": [1, 0, 0, 0, 1, 1], "ceil_mode": 1,
      "count_include_pad": 1}, (2, 3, 5, 4, 7), 19),
]


@pytest.mark.parametrize("attrs,shape,opset", ORT_CASES)
def test_forward_matches_onnxruntime(attrs, shape, opset):
    """Tolerance: float32 sums of ≤ 25 terms, rtol 1e-6 / atol 1e-6."""
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    expected = run_onnxruntime(one_node_model("AveragePool", [("x", x)], attrs, opset=opset), {"x": x})[0]
    got = REGISTRY["AveragePool"].forward([x], layer(attrs, [x], [], opset=opset).attrs)[0]
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_forward_matches_onnxruntime_random_nodes():
    """A seeded sweep over 1- to 3-D nodes, every attribute family mixed (rtol 1e-6 / atol 1e-6)."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        nd = int(rng.integers(1, 4))
        kernel = [int(rng.integers(1, 4)) for _ in range(nd)]
        attrs = {"kernel_shape": kernel, "strides": [int(rng.integers(1, 4)) for _ in range(nd)],
                 "ceil_mode": int(rng.integers(0, 2)), "dilations": [int(rng.integers(1, 3)) for _ in range(nd)],
                 "count_include_pad": int(rng.integers(0, 2))}
        if rng.random() < 0.25:
            attrs["auto_pad"] = str(rng.choice(["VALID", "SAME_UPPER", "SAME_LOWER"]))
            if attrs["auto_pad"] != "VALID":
                attrs["strides"] = [min(s, k) for s, k in zip(attrs["strides"], kernel)]  # ORT: pads ≥ 0
        else:
            attrs["pads"] = [int(rng.integers(0, k)) for k in kernel + kernel]
        spatial = tuple(int(rng.integers(5, 10)) for _ in range(nd))   # ≥ the widest extent, 5
        x = rng.standard_normal((2, 3) + spatial).astype(np.float32)
        expected = run_onnxruntime(one_node_model("AveragePool", [("x", x)], attrs, opset=19), {"x": x})[0]
        got = REGISTRY["AveragePool"].forward([x], layer(attrs, [x], [], opset=19).attrs)[0]
        assert got.shape == expected.shape, attrs
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, err_msg=str(attrs))


def test_global_forward_matches_onnxruntime():
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 6)).astype(np.float32)
    expected = run_onnxruntime(one_node_model("GlobalAveragePool", [("x", x)]), {"x": x})[0]
    got = REGISTRY["GlobalAveragePool"].forward([x], {})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_backward_reads_no_data():
    """The registry keeps nothing for AveragePool: the backward works from shapes alone."""
    assert REGISTRY["AveragePool"].bottoms_read([True]) == () and not REGISTRY["AveragePool"].tops
    x = np.random.default_rng(5).standard_normal(SHAPE)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1}
    top = REGISTRY["AveragePool"].forward([x], layer(attrs, [x], []).attrs)
    a = layer(attrs, [x], top)
    g = np.ones((1,) + top[0].shape)
    got = backward(REGISTRY["AveragePool"], [g], [None], [None], a)[0]
    # each output spreads 1/9 over its in-input taps; the corner input sits in exactly one window
    assert got.shape == (1,) + SHAPE
    np.testing.assert_allclose(got[0, 0, 0, 0, 0], 1 / 9, rtol=1e-15)


@pytest.mark.parametrize("op_type,attrs", [
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1, "count_include_pad": 1}),
    ("GlobalAveragePool", {})])
def test_stacked_diffs_equal_separate_ones(op_type, attrs):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    top = REGISTRY[op_type].forward([x], layer(attrs, [x], []).attrs)
    a = layer(attrs, [x], top)
    g = rng.standard_normal((3,) + top[0].shape).astype(np.float32)
    stacked = backward(REGISTRY[op_type], [g], [None], [None], a)[0]
    assert stacked.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(stacked[k:k + 1], backward(REGISTRY[op_type], [g[k:k + 1]], [None], [None], a)[0])


def test_float32_matches_float64():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 9, 8))
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1,
             "count_include_pad": 0}
    top = REGISTRY["AveragePool"].forward([x], layer(attrs, [x], []).attrs)
    a = layer(attrs, [x], top)
    g = rng.standard_normal((2,) + top[0].shape)
    d64 = backward(REGISTRY["AveragePool"], [g], [None], [None], a)[0]
    d32 = backward(REGISTRY["AveragePool"], [g.astype(np.float32)], [None], [None], a)[0]
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=1e-6, atol=1e-6)


def test_global_diff_over_a_1x1_map_is_writable():
    """DenseNet at a small input ends on a 1×1 map: the pool's diff must be a fresh, writable
    array (an in-place ReLU below writes over it)."""
    x = np.zeros((2, 3, 1, 1))
    g = np.ones((1, 2, 3, 1, 1))
    a = layer({}, [x], [x])
    d = backward(REGISTRY["GlobalAveragePool"], [g], [None], [None], a)[0]
    assert d.flags.writeable and not np.shares_memory(d, g)
