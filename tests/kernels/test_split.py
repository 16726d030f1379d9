"""Split and Slice: float64 finite differences, ONNX Runtime forward parity for every opset form
(Split at 11, 13 and 18; Slice at 9, 10 and 13 with negative steps and clamped ends), tops without
a diff, and stacked K diffs."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

N, C, H, W = 2, 3, 5, 4  # N != C != H != W
BIG = np.iinfo(np.int64).max


def runtime_call(op_type, bottoms, top_diff, attrs, n_outputs=1, opset=17):
    """The backward as the runtime calls it: no data kept, only the constant inputs and shapes."""
    op = REGISTRY[op_type]
    tops = op.forward(bottoms, layer(attrs, bottoms, [None] * n_outputs, opset=opset).attrs)
    a = layer(attrs, bottoms, tops, opset=opset)
    given = [None] + list(bottoms[1:])
    return backward(op, top_diff, given, [None] * len(tops), a)


def forward_with(n_outputs):
    """Split's forward learns the number of tops from attrs["n_outputs"] (equal split)."""
    split_forward = REGISTRY["Split"].forward
    return lambda bottoms, attrs: split_forward(bottoms, dict(attrs, n_outputs=n_outputs))


# --- Split ----------------------------------------------------------------------------------------

# (id, opset, attributes, split input or None, number of tops)
SPLITS = [
    ("attr", 11, {"axis": 1, "split": [1, 2]}, None, 2),
    ("equal_neg_axis", 11, {"axis": -1}, None, 2),
    ("input", 13, {"axis": 2}, np.array([2, 3], dtype=np.int64), 2),
    ("equal3", 13, {"axis": 1}, None, 3),
    ("num_outputs_uneven", 18, {"axis": 2, "num_outputs": 3}, None, 3),
    ("num_outputs_neg_axis", 18, {"axis": -1, "num_outputs": 2}, None, 2),
]


def split_bottoms(x, split):
    return [x] if split is None else [x, split]


@pytest.mark.parametrize("name,opset,attrs,split,n", SPLITS, ids=[s[0] for s in SPLITS])
def test_split_finite_differences(name, opset, attrs, split, n):
    rng = np.random.default_rng(1)
    bottoms = split_bottoms(rng.standard_normal((N, C, H, W)), split)
    result = check_op("Split", bottoms, dict(attrs, opset=opset), k=2,
                      forward=forward_with(n))  # tol 1e-6
    assert result.ok, result


@pytest.mark.parametrize("name,opset,attrs,split,n", SPLITS, ids=[s[0] for s in SPLITS])
def test_split_forward_matches_onnxruntime(name, opset, attrs, split, n):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    bottoms = split_bottoms(x, split)
    names = ["x", "split"][:len(bottoms)]
    model = one_node_model("Split", list(zip(names, bottoms)), attrs, n_outputs=n, opset=opset,
                           constants=["split"])
    expected = run_onnxruntime(model, {"x": x})
    got = forward_with(n)(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)  # copies: exact


def test_split_top_without_diff_gives_zeros():
    x = np.zeros((1, 6))
    g0, g2 = np.ones((2, 1, 1)), np.full((2, 1, 3), 3.0)
    dx = runtime_call("Split", [x], [g0, None, g2], {"axis": 1, "split": [1, 2, 3]}, n_outputs=3,
                      opset=11)[0]
    np.testing.assert_array_equal(dx, [[[1, 0, 0, 3, 3, 3]]] * 2)


def test_split_sizes_must_fit():
    x = np.zeros((1, 6))
    with pytest.raises(ModelError, match="Split"):
        REGISTRY["Split"].forward([x], layer({"axis": 1, "split": [1, 2]}, [x], [], opset=11).attrs)
    with pytest.raises(ModelError, match="Split"):
        forward_with(4)([x], layer({"axis": 1}, [x], [], opset=13).attrs)


@pytest.mark.parametrize("name,opset,attrs,split,n", SPLITS, ids=[s[0] for s in SPLITS])
def test_split_stacked_diffs_equal_separate_ones(name, opset, attrs, split, n):
    rng = np.random.default_rng(3)
    bottoms = split_bottoms(rng.standard_normal((N, C, H, W)).astype(np.float32), split)
    tops = forward_with(n)(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)
    g = [rng.standard_normal((3,) + t.shape).astype(np.float32) for t in tops]
    stacked = runtime_call("Split", bottoms, g, attrs, n_outputs=n, opset=opset)[0]
    assert stacked.dtype == np.float32 and stacked.shape == (3, N, C, H, W)
    for k in range(3):
        single = runtime_call("Split", bottoms, [d[k:k + 1] for d in g], attrs, n_outputs=n,
                              opset=opset)[0]
        np.testing.assert_array_equal(stacked[k:k + 1], single)


# --- Slice ----------------------------------------------------------------------------------------

def ints(*values):
    return np.array(values, dtype=np.int64)


# (id, opset, attributes, [starts, ends, axes, steps] inputs (None = absent) or None)
SLICES = [
    ("attrs_axes", 9, {"starts": [1, 0], "ends": [3, 1000], "axes": [1, 3]}, None),
    ("attrs_negative", 9, {"starts": [-3], "ends": [-1], "axes": [2]}, None),
    ("attrs_no_axes", 9, {"starts": [0, 1], "ends": [1, 3]}, None),
    ("inputs_opset10", 10, {}, [ints(1, 0), ints(3, BIG), ints(1, 3), ints(1, 2)]),
    ("negative_steps", 13, {}, [ints(4, -1), ints(0, -1000), ints(2, -1), ints(-2, -1)]),
    ("reverse_clamped", 13, {}, [ints(BIG), ints(-BIG - 1), ints(-2), ints(-1)]),
    ("huge_end_step2", 13, {}, [ints(-3), ints(BIG), ints(3), ints(2)]),
    ("no_axes_no_steps", 13, {}, [ints(1, 2), ints(2, 3), None, None]),
    ("steps_without_axes", 13, {}, [ints(1, 2, 4), ints(2, 0, 0), None, ints(1, -1, -2)]),
    ("empty", 13, {}, [ints(3), ints(1), ints(2), None]),
]


def slice_bottoms(x, inputs):
    if inputs is None:
        return [x]
    while inputs[-1] is None:
        inputs = inputs[:-1]
    return [x] + list(inputs)


@pytest.mark.parametrize("name,opset,attrs,inputs", SLICES[:-1], ids=[s[0] for s in SLICES[:-1]])
def test_slice_finite_differences(name, opset, attrs, inputs):
    rng = np.random.default_rng(4)
    bottoms = slice_bottoms(rng.standard_normal((N, C, H, W)), inputs)
    pd = [True] + [False] * (len(bottoms) - 1)
    result = check_op("Slice", bottoms, dict(attrs, opset=opset), propagate_down=pd, k=2)
    assert result.ok, result  # tol 1e-6


@pytest.mark.parametrize("name,opset,attrs,inputs", SLICES, ids=[s[0] for s in SLICES])
def test_slice_forward_matches_onnxruntime(name, opset, attrs, inputs):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    bottoms = slice_bottoms(x, inputs)
    names = ["x", "starts", "ends", "axes", "steps"][:len(bottoms)]
    names = [n if b is not None else "" for n, b in zip(names, bottoms)]
    model = one_node_model("Slice", list(zip(names, bottoms)), attrs, opset=opset,
                           constants=names[1:])
    expected = run_onnxruntime(model, {"x": x})[0]
    got = REGISTRY["Slice"].forward(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)[0]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # a copy: exact


def test_slice_backward_by_hand():
    """x[4:0:-2] on a length-6 axis takes positions 4 and 2; the rest get no diff."""
    x = np.zeros((1, 6))
    g = np.array([[[10.0, 20.0]]])
    dx = runtime_call("Slice", [x, ints(4), ints(0), ints(1), ints(-2)], [g], {})[0]
    np.testing.assert_array_equal(dx, [[[0, 0, 20, 0, 10, 0]]])
    g_empty = np.zeros((1, 1, 0))
    dx = runtime_call("Slice", [x, ints(3), ints(1), ints(1)], [g_empty], {})[0]
    np.testing.assert_array_equal(dx, np.zeros((1, 1, 6)))


def test_slice_rejects_zero_step():
    x = np.zeros((2, 3))
    with pytest.raises(ModelError, match="step 0"):
        REGISTRY["Slice"].forward([x, ints(0), ints(2), ints(0), ints(0)], {})


@pytest.mark.parametrize("name,opset,attrs,inputs", SLICES, ids=[s[0] for s in SLICES])
def test_slice_stacked_diffs_equal_separate_ones(name, opset, attrs, inputs):
    rng = np.random.default_rng(6)
    bottoms = slice_bottoms(rng.standard_normal((N, C, H, W)).astype(np.float32), inputs)
    top = REGISTRY["Slice"].forward(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)[0]
    g = rng.standard_normal((3,) + top.shape).astype(np.float32)
    stacked = runtime_call("Slice", bottoms, [g], attrs, opset=opset)
    assert stacked[0].dtype == np.float32 and stacked[0].shape == (3, N, C, H, W)
    assert all(d is None for d in stacked[1:])
    for k in range(3):
        single = runtime_call("Slice", bottoms, [g[k:k + 1]], attrs, opset=opset)[0]
        np.testing.assert_array_equal(stacked[0][k:k + 1], single)
