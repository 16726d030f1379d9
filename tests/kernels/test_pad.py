"""Pad: float64 finite differences for every mode (reflected and replicated positions accumulate),
negative pads, ONNX Runtime forward parity for the attribute form (opset 2), the input forms
(11, 13), the axes input (18) and wrap (19), and stacked K diffs."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

N, C, H, W = 2, 3, 5, 4  # N != C != H != W


def ints(*values):
    return np.array(values, dtype=np.int64)


# pads are [begin of each axis…, end of each axis…]
GROW = [0, 0, 1, 2, 0, 0, 2, 1]
CROP_AND_GROW = [0, 0, -1, 2, 0, -1, 1, -1]       # H: crop 1 then pad 1; W: pad 2, crop 1
SAME_AXIS = [0, 1, -2, 0, 0, 0, 3, -1]             # H: crop 2 at the start, pad 3 at the end

# (id, opset, attributes, [pads, constant_value, axes] inputs (None = absent) or None)
CASES = [
    ("constant_attr", 2, {"pads": GROW, "value": 1.5}, None),
    ("reflect_attr", 2, {"mode": "reflect", "pads": GROW}, None),
    ("edge_attr", 2, {"mode": "edge", "pads": GROW}, None),
    ("constant_crop_attr", 2, {"pads": CROP_AND_GROW}, None),
    ("constant_input", 11, {}, [ints(*GROW), np.array(0.5), None]),
    ("constant_no_value", 11, {"mode": "constant"}, [ints(*CROP_AND_GROW), None, None]),
    ("reflect_crop", 11, {"mode": "reflect"}, [ints(*CROP_AND_GROW), None, None]),
    ("edge_same_axis", 13, {"mode": "edge"}, [ints(*SAME_AXIS), None, None]),
    ("reflect_same_axis", 13, {"mode": "reflect"}, [ints(*SAME_AXIS[:6], 2, -1), None, None]),
    ("constant_axes", 18, {}, [ints(1, -1, 2, 1), np.array(-2.0), ints(1, 3)]),
    ("reflect_axes", 18, {"mode": "reflect"}, [ints(1, 2, 2, 1), None, ints(2, 3)]),
    ("edge_neg_axis", 18, {"mode": "edge"}, [ints(3, 2), None, ints(-1)]),
    ("wrap", 19, {"mode": "wrap"}, [ints(*GROW[:3], 3, 0, 0, 4, 1), None, None]),
    ("wrap_crop_axes", 19, {"mode": "wrap"}, [ints(-1, 2, 3, -1), None, ints(-2, -1)]),
]
IDS = [c[0] for c in CASES]


def pad_bottoms(x, inputs):
    if inputs is None:
        return [x]
    while inputs[-1] is None:
        inputs = inputs[:-1]
    return [x] + list(inputs)


def runtime_call(bottoms, top_diff, attrs, opset):
    """The backward as the runtime calls it: no data kept, only the constant inputs and shapes."""
    tops = REGISTRY["Pad"].forward(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)
    a = layer(attrs, bottoms, tops, [True] + [False] * (len(bottoms) - 1), opset=opset)
    return backward(REGISTRY["Pad"], top_diff, [None] + list(bottoms[1:]), [None], a)


@pytest.mark.parametrize("name,opset,attrs,inputs", CASES, ids=IDS)
def test_finite_differences(name, opset, attrs, inputs):
    rng = np.random.default_rng(1)
    bottoms = pad_bottoms(rng.standard_normal((N, C, H, W)), inputs)
    pd = [True] + [False] * (len(bottoms) - 1)   # pads, value and axes are constants
    result = check_op("Pad", bottoms, dict(attrs, opset=opset), propagate_down=pd, k=2)
    assert result.ok, result  # tol 1e-6


@pytest.mark.parametrize("name,opset,attrs,inputs", CASES, ids=IDS)
def test_forward_matches_onnxruntime(name, opset, attrs, inputs):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    bottoms = [b.astype(np.float32) if b is not None and b.dtype == np.float64 else b
               for b in pad_bottoms(x, inputs)]
    names = ["x", "pads", "value", "axes"][:len(bottoms)]
    names = [n if b is not None else "" for n, b in zip(names, bottoms)]
    model = one_node_model("Pad", list(zip(names, bottoms)), attrs, opset=opset,
                           constants=names[1:])
    expected = run_onnxruntime(model, {"x": x})[0]
    got = REGISTRY["Pad"].forward(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)[0]
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # copies and a constant: exact


@pytest.mark.parametrize("mode,counts", [
    ("constant", [1, 1, 1, 1]),
    ("reflect", [1, 3, 3, 1]),     # 2 1 | 0 1 2 3 | 2 1
    ("edge", [3, 1, 1, 3]),        # 0 0 | 0 1 2 3 | 3 3
    ("wrap", [2, 2, 2, 2]),        # 2 3 | 0 1 2 3 | 0 1
])
def test_backward_counts_copies(mode, counts):
    """With a top diff of ones, each bottom position collects one per copy of itself in the top."""
    x = np.zeros((1, 4))
    g = np.ones((2, 1, 8))
    dx = runtime_call([x, ints(0, 2, 0, 2)], [g], {"mode": mode}, 19)[0]
    np.testing.assert_array_equal(dx, [[counts]] * 2)


def test_cropped_positions_get_no_diff():
    x = np.zeros((1, 5))
    g = np.ones((1, 1, 4))
    dx = runtime_call([x, ints(0, -2, 0, 1)], [g], {"mode": "edge"}, 13)[0]
    np.testing.assert_array_equal(dx, [[[0, 0, 1, 1, 2]]])   # 2 3 4 | 4


def test_bad_pads_are_refused():
    x = np.zeros((1, 4))
    with pytest.raises(ModelError, match="mode"):
        REGISTRY["Pad"].forward([x, ints(0, 1, 0, 1)], {"mode": "mirror"})
    with pytest.raises(ModelError, match="pads"):
        REGISTRY["Pad"].forward([x, ints(0, 1, 0)], {})
    with pytest.raises(ModelError, match="crop"):
        REGISTRY["Pad"].forward([x, ints(0, -3, 0, -2)], {})


@pytest.mark.parametrize("name,opset,attrs,inputs", CASES, ids=IDS)
def test_stacked_diffs_equal_separate_ones(name, opset, attrs, inputs):
    rng = np.random.default_rng(3)
    bottoms = pad_bottoms(rng.standard_normal((N, C, H, W)).astype(np.float32), inputs)
    top = REGISTRY["Pad"].forward(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)[0]
    g = rng.standard_normal((3,) + top.shape).astype(np.float32)
    stacked = runtime_call(bottoms, [g], attrs, opset)
    assert stacked[0].dtype == np.float32 and stacked[0].shape == (3, N, C, H, W)
    assert not np.shares_memory(stacked[0], g)
    assert all(d is None for d in stacked[1:])
    for k in range(3):
        single = runtime_call(bottoms, [g[k:k + 1]], attrs, opset)[0]
        np.testing.assert_array_equal(stacked[0][k:k + 1], single)
