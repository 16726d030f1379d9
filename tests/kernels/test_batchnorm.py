"""BatchNormalization (inference): finite differences, ONNX Runtime parity, training refused."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

OP = REGISTRY["BatchNormalization"]
CONSTANT_STATS = [True, False, False, False, False]


def make(x_shape, param_shape, seed=0):
    """[x, scale, B, mean, var] with var > 0."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape)
    scale, bias, mean = (rng.standard_normal(param_shape) for _ in range(3))
    var = rng.uniform(0.2, 2.0, param_shape)
    return [x, scale, bias, mean, var]


# (id, x shape, parameter shape, attrs); N != C != H != W
CASES = [
    ("spatial", (2, 3, 5, 4), (3,), {"epsilon": 1e-3}),
    ("spatial_2d_input", (4, 3), (3,), {}),
    ("spatial_3d_input", (2, 3, 5), (3,), {"opset": 9}),
    ("spatial0_chw", (2, 3, 5, 4), (3, 5, 4), {"spatial": 0, "opset": 7}),
    ("spatial0_flat", (2, 3, 5, 4), (60,), {"spatial": 0, "opset": 8}),
    ("spatial0_per_channel", (2, 3, 5, 4), (3,), {"spatial": 0, "opset": 7}),
    ("opset6_is_test", (2, 3, 5, 4), (3,), {"is_test": 1, "opset": 6}),
]
IDS = [c[0] for c in CASES]


def split(attrs):
    attrs = dict(attrs)
    return attrs.pop("opset", 15), attrs


@pytest.mark.parametrize("name,x_shape,param_shape,attrs", CASES, ids=IDS)
def test_input_diff_finite_differences(name, x_shape, param_shape, attrs):
    opset, attrs = split(attrs)
    result = check_op("BatchNormalization", make(x_shape, param_shape), dict(attrs, opset=opset),
                      propagate_down=CONSTANT_STATS, k=2)
    assert result.ok, result


@pytest.mark.parametrize("name,x_shape,param_shape,attrs", CASES, ids=IDS)
def test_bias_diff_finite_differences(name, x_shape, param_shape, attrs):
    opset, attrs = split(attrs)
    result = check_op("BatchNormalization", make(x_shape, param_shape, seed=1),
                      dict(attrs, opset=opset), propagate_down=[True, False, True, False, False],
                      k=2)
    assert result.ok, result


@pytest.mark.parametrize("name,x_shape,param_shape,attrs", CASES, ids=IDS)
def test_scale_diff_finite_differences(name, x_shape, param_shape, attrs):
    """The scale diff Σ dY·x̂ reads x, which the registry keeps only for the X diff's sake today
    (bottoms=(1, 4)); here the backward is handed x explicitly."""
    opset, attrs = split(attrs)
    bottoms = make(x_shape, param_shape, seed=1)

    def with_x(top_diff, bottom_data, top_data, a, **controls):
        return OP.backward(top_diff, [bottoms[0]] + list(bottom_data[1:]), top_data, a, **controls)

    result = check_op("BatchNormalization", bottoms, dict(attrs, opset=opset), backward=with_x,
                      propagate_down=[True, True, True, False, False], k=2)
    assert result.ok, result


# ONNX Runtime implements BatchNormalization from opset 7, and spatial=0 only with (C, H, W)
# parameters.
ORT_CASES = [(n, x, p, a, opset) for n, x, p, a in CASES
             if n not in ("spatial0_flat", "spatial0_per_channel", "opset6_is_test")
             for opset in ([7, 9, 14, 15] if "opset" not in a else [a["opset"]])]


@pytest.mark.parametrize("name,x_shape,param_shape,attrs,opset", ORT_CASES,
                         ids=[f"{c[0]}-{c[4]}" for c in ORT_CASES])
def test_forward_matches_onnxruntime(name, x_shape, param_shape, attrs, opset):
    _, attrs = split(attrs)
    bottoms = [b.astype(np.float32) for b in make(x_shape, param_shape, seed=2)]
    names = ["x", "scale", "b", "mean", "var"]
    model = one_node_model("BatchNormalization", list(zip(names, bottoms)), attrs,
                           constants=names[1:], opset=opset)
    expected = run_onnxruntime(model, {"x": bottoms[0]})[0]
    got = OP.forward(bottoms, layer(dict(attrs, opset=opset), bottoms, [],
                                         propagate_down=CONSTANT_STATS).attrs)[0]
    assert got.dtype == np.float32
    # float32, one multiply-add per element: rtol 1e-5, atol 1e-6.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_stacked_diffs_equal_separate_ones():
    bottoms = [b.astype(np.float32) for b in make((2, 3, 5, 4), (3,), seed=3)]
    y = OP.forward(bottoms, {})
    g = np.random.default_rng(4).standard_normal((3,) + y[0].shape).astype(np.float32)
    a = layer({}, bottoms, y, propagate_down=CONSTANT_STATS)
    stacked = backward(OP, [g], [None] + bottoms[1:], y, a)[0]
    for k in range(3):
        single = backward(OP, [g[k:k + 1]], [None] + bottoms[1:], y, a)[0]
        np.testing.assert_array_equal(stacked[k:k + 1], single)


@pytest.mark.parametrize("name,x_shape,param_shape,attrs", CASES, ids=IDS)
def test_float32_backward_matches_float64(name, x_shape, param_shape, attrs):
    opset, attrs = split(attrs)
    attrs["opset"] = opset
    b64 = make(x_shape, param_shape, seed=5)
    b32 = [b.astype(np.float32) for b in b64]
    y = OP.forward(b64, attrs)
    g64 = np.random.default_rng(6).standard_normal((2,) + y[0].shape)
    pd = [True, True, True, False, False]
    d64 = backward(OP, [g64], b64, y, layer(attrs, b64, y, propagate_down=pd, opset=opset))
    d32 = backward(OP, [g64.astype(np.float32)], b32, [y[0].astype(np.float32)],
                      layer(attrs, b32, y, propagate_down=pd, opset=opset))
    for a32, a64 in zip(d32[:3], d64[:3]):
        assert a32.dtype == np.float32
        # float32 rounding of a product (dX) or of sums of at most 40 products: 1e-6 of the
        # largest entry.
        np.testing.assert_allclose(a32, a64, rtol=0, atol=1e-6 * np.abs(a64).max())
    assert d32[3:] == [None, None]


def test_extra_outputs_of_opset6_test_mode_take_no_diff():
    bottoms = make((2, 3, 5, 4), (3,))
    y = OP.forward(bottoms, {"is_test": 1, "opset": 6})[0]
    g = np.ones((1,) + y.shape)
    tops = [y, None, None, None, None]
    a = layer({"is_test": 1}, bottoms, [y] + [np.zeros(3)] * 4, propagate_down=CONSTANT_STATS,
                   opset=6)
    diff = backward(OP, [g, np.ones((1, 3)), None, None, None], [None] + bottoms[1:], tops, a)
    np.testing.assert_allclose(diff[0][0], np.broadcast_to(
        (bottoms[1] / np.sqrt(bottoms[4] + 1e-5))[:, None, None], y.shape), rtol=1e-15)
    assert diff[1:] == [None] * 4


@pytest.mark.parametrize("attrs,n_tops,match", [
    ({"training_mode": 1, "opset": 15}, 3, "training_mode=1"),
    ({"opset": 6}, 1, "is_test=0"),
    ({"opset": 9}, 5, "5 outputs at opset 9"),
], ids=["training_mode", "opset6_default", "opset9_five_outputs"])
def test_training_mode_is_refused(attrs, n_tops, match):
    bottoms = make((2, 3, 5, 4), (3,))
    attrs = dict(attrs, node_name="bn_conv1")
    y = [bottoms[0]] + [np.zeros(3)] * (n_tops - 1)
    a = layer(attrs, bottoms, y, propagate_down=CONSTANT_STATS, opset=attrs["opset"])
    with pytest.raises(ModelError, match=f"'bn_conv1'.*{match}"):
        backward(OP, [np.ones((1,) + bottoms[0].shape)] + [None] * (n_tops - 1), bottoms, y, a)


def test_computed_statistics_are_refused():
    bottoms = make((2, 3, 5, 4), (3,))
    y = OP.forward(bottoms, {})
    g = [np.ones((1,) + y[0].shape)]
    a = layer({"node_name": "bn2"}, bottoms, y,
                   propagate_down=[True, False, False, True, False])
    with pytest.raises(ModelError, match="'bn2'.*constants"):
        backward(OP, g, bottoms, y, a)
    a = layer({}, bottoms, y, propagate_down=CONSTANT_STATS)
    with pytest.raises(ModelError, match="'BatchNormalization'.*constants"):
        backward(OP, g, bottoms[:3] + [None, bottoms[4]], y, a)
