"""ReduceMean / ReduceSum: finite differences and ONNX Runtime parity, axes as attribute or input."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

SHAPE = (2, 3, 5, 4)  # N != C != H != W
AXES_INPUT_FROM = {"ReduceSum": 13, "ReduceMean": 18}   # opsets that take axes as an input


def node(op_type, opset, axes, attrs):
    """(bottoms, attrs) for a node, axes placed where ``opset`` wants them (None: no axes)."""
    attrs = dict(attrs)
    extra = []
    if axes is not None:
        if opset >= AXES_INPUT_FROM[op_type]:
            extra = [np.array(axes, np.int64)]
        else:
            attrs["axes"] = list(axes)
    return extra, attrs


CASES = [
    # (axes, keepdims, noop_with_empty_axes)
    ([1], 1, 0), ([2, 3], 1, 0), ([-1, 0], 0, 0), ([0, 2, 3], 0, 0), (None, 1, 0), (None, 0, 0),
    ([], 1, 1), (None, 0, 1),
]
# noop_with_empty_axes came with axes as an input, so the attribute opsets take no noop cases
PARAMS = [(op, old, axes, keep, noop) for op in AXES_INPUT_FROM for old in (True, False)
          for axes, keep, noop in CASES if not (old and noop)]
IDS = [f"{op}-{'attr' if old else 'input'}-{axes}-keep{keep}-noop{noop}" for op, old, axes, keep, noop in PARAMS]


@pytest.mark.parametrize("op_type,old,axes,keepdims,noop", PARAMS, ids=IDS)
def test_finite_differences(op_type, old, axes, keepdims, noop):
    opset = AXES_INPUT_FROM[op_type] - (2 if old else 0)
    x = np.random.default_rng(1).standard_normal(SHAPE)
    attrs = {"keepdims": keepdims, "opset": opset} | ({} if old else {"noop_with_empty_axes": noop})
    extra, attrs = node(op_type, opset, axes, attrs)
    result = check_op(op_type, [x] + extra, attrs, propagate_down=[True] + [False] * len(extra), k=2,
                      max_points=60)
    assert result.ok, result


@pytest.mark.parametrize("op_type,old,axes,keepdims,noop", PARAMS, ids=IDS)
def test_forward_matches_onnxruntime(op_type, old, axes, keepdims, noop):
    """Tolerance: rtol 1e-6, atol 1e-6 (float32 sums of ≤ 120 terms in different orders)."""
    opset = AXES_INPUT_FROM[op_type] - (2 if old else 0)
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    attrs = {"keepdims": keepdims} | ({} if old else {"noop_with_empty_axes": noop})
    extra, attrs = node(op_type, opset, axes, attrs)
    inputs = [("x", x)] + [("axes", a) for a in extra]
    expected = run_onnxruntime(one_node_model(op_type, inputs, attrs, opset=opset, constants=["axes"]),
                               {"x": x})[0]
    bottoms = [x] + extra
    got = REGISTRY[op_type].forward(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)[0]
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_mean_backward_by_hand():
    """Mean over H, W of (1, 2, 2, 3) with keepdims = 0: each input gets dy / 6."""
    g = np.array([[[6.0, -12.0]]])
    a = layer({"axes": [2, 3], "keepdims": 0, "opset": 13}, [np.zeros((1, 2, 2, 3))], [np.zeros((1, 2))])
    got = backward(REGISTRY["ReduceMean"], [g], [None], [None], a)[0]
    assert got.shape == (1, 1, 2, 2, 3)
    np.testing.assert_array_equal(got[0, 0, 0], np.full((2, 3), 1.0))
    np.testing.assert_array_equal(got[0, 0, 1], np.full((2, 3), -2.0))


def test_axes_input_takes_no_diff():
    x = np.ones(SHAPE)
    axes = np.array([1], np.int64)
    a = layer({"opset": 13}, [x, axes], [np.ones((2, 1, 5, 4))], propagate_down=[True, False])
    out = backward(REGISTRY["ReduceSum"], [np.ones((1, 2, 1, 5, 4))], [None, axes], [None], a)
    assert len(out) == 2 and out[1] is None and out[0].shape == (1,) + SHAPE


def test_stacked_diffs_equal_separate_ones():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    a0 = {"axes": [1, 3], "keepdims": 0, "opset": 13}
    top = REGISTRY["ReduceMean"].forward([x], a0)
    a = layer(a0, [x], top)
    g = rng.standard_normal((3,) + top[0].shape).astype(np.float32)
    stacked = backward(REGISTRY["ReduceMean"], [g], [None], [None], a)[0]
    assert stacked.dtype == np.float32
    for k in range(3):
        np.testing.assert_array_equal(stacked[k:k + 1], backward(REGISTRY["ReduceMean"], [g[k:k + 1]], [None], [None], a)[0])


def test_float32_matches_float64():
    """Division by the count in float32 against float64: rtol 1e-6."""
    rng = np.random.default_rng(4)
    a = layer({"axes": [2, 3], "keepdims": 1, "opset": 13}, [np.zeros(SHAPE)], [np.zeros((2, 3, 1, 1))])
    g = rng.standard_normal((2, 2, 3, 1, 1))
    d64 = backward(REGISTRY["ReduceMean"], [g], [None], [None], a)[0]
    d32 = backward(REGISTRY["ReduceMean"], [g.astype(np.float32)], [None], [None], a)[0]
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=1e-6)


def test_repeated_axis_is_a_model_error():
    with pytest.raises(ModelError, match="twice"):
        REGISTRY["ReduceSum"].forward([np.ones(SHAPE)], {"axes": [1, -3], "opset": 11})


# --- the reductions that read x (axes an attribute before opset 18, an input from it) -------------

READING = ("ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp")
READING_CASES = [([1], 1), ([2, 3], 0), ([-1, 0], 1), (None, 0)]


def reading_node(opset, axes):
    if axes is None:
        return [], {}
    return ([np.array(axes, np.int64)], {}) if opset >= 18 else ([], {"axes": list(axes)})


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("axes,keepdims", READING_CASES)
@pytest.mark.parametrize("op_type", READING)
def test_reading_reductions(op_type, axes, keepdims, opset):
    """Finite differences on x with distinct values away from 0 (no max ties, no |x| kink), and
    ONNX Runtime parity: rtol 2e-6, atol 1e-6 (float32 sums, exp and log in another order)."""
    rng = np.random.default_rng(5)
    x = rng.permutation(np.linspace(0.2, 3.0, int(np.prod(SHAPE)))).reshape(SHAPE)
    x = x * np.where(rng.random(SHAPE) < 0.5, -1, 1)
    extra, attrs = reading_node(opset, axes)
    attrs = attrs | {"keepdims": keepdims, "opset": opset}
    result = check_op(op_type, [x] + extra, attrs, propagate_down=[True] + [False] * len(extra),
                      k=2, max_points=60)
    assert result.ok, result
    x32 = x.astype(np.float32)
    inputs = [("x", x32)] + [("axes", a) for a in extra]
    expected = run_onnxruntime(one_node_model(op_type, inputs, attrs_without_opset(attrs),
                                              opset=opset, constants=["axes"]), {"x": x32})[0]
    got = REGISTRY[op_type].forward([x32] + extra, layer(attrs, [x32] + extra, [], opset=opset).attrs)[0]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-6)


def attrs_without_opset(attrs):
    return {k: v for k, v in attrs.items() if k != "opset"}


def test_max_ties_go_to_the_first():
    """Caffe's rule: of tied maxima the first (in C order over the reduced axes) takes the diff."""
    x = np.array([[[1.0, 3.0], [3.0, 0.0]]])
    a = layer({"axes": [1, 2], "keepdims": 0, "opset": 17}, [x], [np.array([3.0])])
    got = backward(REGISTRY["ReduceMax"], [np.array([[5.0]])], [x], [None], a)[0]
    np.testing.assert_array_equal(got, [[[[0.0, 5.0], [0.0, 0.0]]]])


def test_l2_of_zeros_passes_zero():
    x = np.zeros((1, 3))
    a = layer({"axes": [1], "keepdims": 1, "opset": 17}, [x], [np.zeros((1, 1))])
    got = backward(REGISTRY["ReduceL2"], [np.ones((1, 1, 1))], [x], [None], a)[0]
    assert np.isfinite(got).all() and not got.any()


def test_diff_over_unit_axes_is_writable():
    """Reducing axes of length 1 (a 1×1 map's global pool): the diff is a fresh, writable array,
    which an in-place ReLU below may overwrite."""
    x = np.zeros((2, 3, 1, 1))
    g = np.ones((1, 2, 3, 1, 1))
    a = layer({"axes": [2, 3], "keepdims": 1, "opset": 13}, [x], [x])
    d = backward(REGISTRY["ReduceMean"], [g], [None], [None], a)[0]
    assert d.flags.writeable and not np.shares_memory(d, g)
