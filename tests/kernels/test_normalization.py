"""LayerNormalization, InstanceNormalization, GroupNormalization: finite differences (x, and scale
and bias when they are not constants), ONNX Runtime parity, LayerNorm's optional outputs."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair

SHAPE = (2, 6, 5, 4)  # N != C != H != W; C = 6 splits into 2 and 3 groups


def affine(rng, shape):
    return 1 + 0.5 * rng.standard_normal(shape), 0.3 * rng.standard_normal(shape)


# (op, attrs, scale/bias shape, opset)
CASES = [
    ("LayerNormalization", {}, (4,), 17),
    ("LayerNormalization", {"axis": 1, "epsilon": 1e-3}, (6, 5, 4), 17),
    ("LayerNormalization", {"axis": -2}, (5, 1), 17),            # broadcast scale
    ("InstanceNormalization", {}, (6,), 17),
    ("GroupNormalization", {"num_groups": 2}, (6,), 21),
    ("GroupNormalization", {"num_groups": 3, "epsilon": 1e-2}, (6,), 21),
    ("GroupNormalization", {"num_groups": 3}, (3,), 18),          # the opset-18 per-group form
]
IDS = [f"{op}-{attrs}-{shape}-opset{opset}" for op, attrs, shape, opset in CASES]


@pytest.mark.parametrize("op_type,attrs,shape,opset", CASES, ids=IDS)
@pytest.mark.parametrize("affine_diffs", [False, True], ids=["x", "x-scale-bias"])
def test_finite_differences(op_type, attrs, shape, opset, affine_diffs):
    rng = np.random.default_rng(1)
    x = 2 * rng.standard_normal(SHAPE) + 0.5
    scale, bias = affine(rng, shape)
    result = check_op(op_type, [x, scale, bias], attrs | {"opset": opset},
                      propagate_down=[True, affine_diffs, affine_diffs], k=2)
    assert result.ok, result


@pytest.mark.parametrize("op_type,attrs,shape,opset", CASES, ids=IDS)
def test_forward_matches_onnxruntime(op_type, attrs, shape, opset):
    """Tolerance: rtol 1e-5, atol 2e-6 (float32 statistics over ≤ 120 values, summed in another
    order; x̂ is of order 1)."""
    rng = np.random.default_rng(2)
    x = (2 * rng.standard_normal(SHAPE) + 0.5).astype(np.float32)
    scale, bias = (a.astype(np.float32) for a in affine(rng, shape))
    got, expected = forward_pair(op_type, [x, scale, bias], attrs, opset=opset)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=2e-6)


def test_group_norm_opset18_by_hand():
    """Per-group scale (G values) equals the per-channel scale with each value repeated."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SHAPE)
    scale, bias = affine(rng, (3,))
    a18 = layer({"num_groups": 3, "opset": 18}, [x], [x]).attrs
    a21 = layer({"num_groups": 3, "opset": 21}, [x], [x]).attrs
    op = REGISTRY["GroupNormalization"]
    np.testing.assert_allclose(op.forward([x, scale, bias], a18)[0],
                               op.forward([x, np.repeat(scale, 2), np.repeat(bias, 2)], a21)[0], rtol=1e-13)


def test_layer_norm_extra_outputs():
    """Mean and InvStdDev match ONNX Runtime, and their diffs are checked by finite differences."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(SHAPE) + 1).astype(np.float32)
    scale, bias = (a.astype(np.float32) for a in affine(rng, (5, 4)))
    got, expected = forward_pair("LayerNormalization", [x, scale, bias], {"axis": 2}, n_outputs=3)
    for ours, theirs in zip(got, expected):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=2e-6)
    result = check_op("LayerNormalization", [x.astype(np.float64), scale, bias], {"axis": 2},
                      propagate_down=[True, False, False], n_outputs=3, k=2)
    assert result.ok, result


def test_layer_norm_without_bias():
    x = np.random.default_rng(5).standard_normal(SHAPE).astype(np.float32)
    scale = np.full((4,), 2.0, np.float32)
    got, expected = forward_pair("LayerNormalization", [x, scale])
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=2e-6)
    g = np.ones((1,) + SHAPE, np.float32)
    d = backward(REGISTRY["LayerNormalization"], [g], [x, scale], [None],
                 layer({}, [x, scale], [x], propagate_down=[True, False]))
    assert len(d) == 2 and d[1] is None and np.abs(d[0]).max() < 1e-4   # constant g: dx = 0


def test_stacked_diffs_equal_separate_ones():
    rng = np.random.default_rng(6)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    scale, bias = (a.astype(np.float32) for a in affine(rng, (6,)))
    g = rng.standard_normal((3,) + SHAPE).astype(np.float32)
    op = REGISTRY["InstanceNormalization"]
    a = layer({}, [x, scale, bias], [x], propagate_down=[True, False, False])
    stacked = backward(op, [g], [x, scale, bias], [None], a)[0]
    for k in range(3):
        np.testing.assert_allclose(stacked[k:k + 1], backward(op, [g[k:k + 1]], [x, scale, bias], [None], a)[0],
                                   rtol=1e-6, atol=1e-6)
