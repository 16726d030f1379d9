"""Flatten, Reshape, Squeeze, Unsqueeze, Transpose: float64 finite differences, ONNX Runtime forward
parity for the attribute and input forms (axes attribute at opset 11, input at 13; Reshape's shape
attribute at opset 4), stacked K diffs and diffs that never alias top_diff."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

N, C, H, W = 2, 3, 5, 4  # N != C != H != W
X = (N, C, H, W)
SQUEEZABLE = (N, 1, H, 1)


def ints(*values):
    return np.array(values, dtype=np.int64)


# (id, op type, opset, attributes, constant inputs after x, shape of x)
CASES = [
    ("flatten_0", "Flatten", 9, {"axis": 0}, [], X),
    ("flatten_default", "Flatten", 9, {}, [], X),
    ("flatten_2", "Flatten", 9, {"axis": 2}, [], X),
    ("flatten_4", "Flatten", 9, {"axis": 4}, [], X),
    ("flatten_neg", "Flatten", 13, {"axis": -1}, [], X),
    ("flatten_neg3", "Flatten", 13, {"axis": -3}, [], X),
    ("reshape_attr", "Reshape", 4, {"shape": [N, -1, W]}, [], X),
    ("reshape_minus1", "Reshape", 13, {}, [ints(N, -1)], X),
    ("reshape_zeros", "Reshape", 13, {}, [ints(0, 0, -1)], X),
    ("reshape_reorder", "Reshape", 13, {}, [ints(W, 1, -1, C)], X),
    ("reshape_allowzero", "Reshape", 14, {"allowzero": 1}, [ints(N * C, H, W)], X),
    ("squeeze_attr", "Squeeze", 11, {"axes": [1, 3]}, [], SQUEEZABLE),
    ("squeeze_attr_neg", "Squeeze", 11, {"axes": [-1]}, [], SQUEEZABLE),
    ("squeeze_all_11", "Squeeze", 11, {}, [], SQUEEZABLE),
    ("squeeze_input", "Squeeze", 13, {}, [ints(1)], SQUEEZABLE),
    ("squeeze_all_13", "Squeeze", 13, {}, [], SQUEEZABLE),
    ("unsqueeze_attr", "Unsqueeze", 11, {"axes": [0, 5]}, [], X),
    ("unsqueeze_attr_neg", "Unsqueeze", 11, {"axes": [-1]}, [], X),
    ("unsqueeze_input", "Unsqueeze", 13, {}, [ints(1, -2)], X),
    ("transpose_nhwc", "Transpose", 13, {"perm": [0, 2, 3, 1]}, [], X),
    ("transpose_mixed", "Transpose", 13, {"perm": [3, 1, 0, 2]}, [], X),
    ("transpose_default", "Transpose", 13, {}, [], X),
]
IDS = [c[0] for c in CASES]


def runtime_call(op_type, bottoms, top_diff, attrs, opset):
    """The backward as the runtime calls it: no data kept, only constant inputs and shapes."""
    op = REGISTRY[op_type]
    tops = op.forward(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)
    a = layer(attrs, bottoms, tops, opset=opset)
    return backward(op, top_diff, [None] + list(bottoms[1:]), [None], a)


@pytest.mark.parametrize("name,op_type,opset,attrs,consts,shape", CASES, ids=IDS)
def test_finite_differences(name, op_type, opset, attrs, consts, shape):
    rng = np.random.default_rng(1)
    result = check_op(op_type, [rng.standard_normal(shape)] + consts, dict(attrs, opset=opset),
                      k=2)  # tol 1e-6
    assert result.ok, result


@pytest.mark.parametrize("name,op_type,opset,attrs,consts,shape", CASES, ids=IDS)
def test_forward_matches_onnxruntime(name, op_type, opset, attrs, consts, shape):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    names = ["x"] + [f"c{i}" for i in range(len(consts))]
    model = one_node_model(op_type, list(zip(names, [x] + consts)), attrs, opset=opset,
                           constants=names[1:])
    expected = run_onnxruntime(model, {"x": x})[0]
    a = layer(attrs, [x] + consts, [], opset=opset).attrs
    got = REGISTRY[op_type].forward([x] + consts, a)[0]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # relabelling only: exact


@pytest.mark.parametrize("name,op_type,opset,attrs,consts,shape", CASES, ids=IDS)
def test_stacked_diffs_equal_separate_ones(name, op_type, opset, attrs, consts, shape):
    rng = np.random.default_rng(3)
    bottoms = [rng.standard_normal(shape).astype(np.float32)] + consts
    top = REGISTRY[op_type].forward(bottoms, layer(attrs, bottoms, [], opset=opset).attrs)[0]
    g = rng.standard_normal((3,) + top.shape).astype(np.float32)
    stacked = runtime_call(op_type, bottoms, [g], attrs, opset)
    assert stacked[0].dtype == np.float32 and stacked[0].shape == (3,) + shape
    assert stacked[0].flags.c_contiguous and not np.shares_memory(stacked[0], g)
    assert all(d is None for d in stacked[1:])
    for k in range(3):
        single = runtime_call(op_type, bottoms, [g[k:k + 1]], attrs, opset)[0]
        np.testing.assert_array_equal(stacked[0][k:k + 1], single)


def test_transpose_backward_by_hand():
    """y = x.transpose(1, 2, 0) puts x[a, b, c] at y[b, c, a]; the diff goes back the same way."""
    x = np.zeros((2, 3, 4))
    g = np.arange(24.0).reshape(1, 3, 4, 2)
    dx = runtime_call("Transpose", [x], [g], {"perm": [1, 2, 0]}, 13)[0]
    for a, b, c in np.ndindex(2, 3, 4):
        assert dx[0, a, b, c] == g[0, b, c, a]


def test_reshape_rejects_impossible_shapes():
    x = np.zeros(X)
    for shape in (ints(7, -1), ints(-1, -1), ints(N, C)):
        with pytest.raises(ModelError, match="Reshape"):
            REGISTRY["Reshape"].forward([x, shape], layer({}, [x, shape], []).attrs)


def test_reshape_allowzero_keeps_a_zero():
    """allowzero = 1: a 0 in the shape is a real empty axis, not a copy of the input's."""
    x = np.zeros((0, 3))
    y = REGISTRY["Reshape"].forward([x, ints(3, 0)], {"allowzero": 1})[0]
    assert y.shape == (3, 0)
    y = REGISTRY["Reshape"].forward([x, ints(0, 3)], {})[0]
    assert y.shape == (0, 3)
