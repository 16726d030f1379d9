"""Concat: float64 finite differences on each axis form, ONNX Runtime forward parity across opsets,
stacked K diffs, and a backward that needs only the bottoms' shapes."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

N, C, H, W = 2, 3, 5, 4  # N != C != H != W

# (axis attribute, the three bottoms' shapes): widths differ along the joined axis
CASES = [
    (1, [(N, C, H, W), (N, 1, H, W), (N, 2, H, W)]),
    (-1, [(N, C, H, W), (N, C, H, 2), (N, C, H, 1)]),
    (0, [(N, C, H, W), (1, C, H, W), (3, C, H, W)]),
    (-2, [(N, C, H, W), (N, C, 2, W), (N, C, 1, W)]),
]


def runtime_call(bottoms, top_diff, attrs, propagate_down=None):
    """The backward as the runtime calls it: Concat keeps no bottom data, only shapes."""
    tops = REGISTRY["Concat"].forward(bottoms, layer(attrs, bottoms, []).attrs)
    a = layer(attrs, bottoms, tops, propagate_down)
    return backward(REGISTRY["Concat"], top_diff, [None] * len(bottoms), [None], a)


@pytest.mark.parametrize("axis,shapes", CASES, ids=[str(c[0]) for c in CASES])
def test_finite_differences(axis, shapes):
    rng = np.random.default_rng(1)
    bottoms = [rng.standard_normal(s) for s in shapes]
    result = check_op("Concat", bottoms, {"axis": axis}, k=2)  # tol 1e-6
    assert result.ok, result


# negative axes arrive with opset 11
PARITY = [(axis, shapes, opset) for opset in (4, 11, 13) for axis, shapes in CASES
          if axis >= 0 or opset >= 11]


@pytest.mark.parametrize("axis,shapes,opset", PARITY, ids=[f"{p[0]}-opset{p[2]}" for p in PARITY])
def test_forward_matches_onnxruntime(axis, shapes, opset):
    rng = np.random.default_rng(2)
    bottoms = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    names = [f"x{i}" for i in range(len(bottoms))]
    model = one_node_model("Concat", list(zip(names, bottoms)), {"axis": axis}, opset=opset)
    expected = run_onnxruntime(model, dict(zip(names, bottoms)))[0]
    attrs = layer({"axis": axis}, bottoms, [], opset=opset).attrs
    got = REGISTRY["Concat"].forward(bottoms, attrs)[0]
    np.testing.assert_array_equal(got, expected)  # a copy: exact


def test_backward_by_hand_and_propagate_down():
    a, b = np.zeros((1, 2)), np.zeros((1, 3))
    g = np.arange(10.0).reshape(2, 1, 5)
    da, db = runtime_call([a, b], [g], {"axis": 1})
    np.testing.assert_array_equal(da, [[[0, 1]], [[5, 6]]])
    np.testing.assert_array_equal(db, [[[2, 3, 4]], [[7, 8, 9]]])
    da, db = runtime_call([a, b], [g], {"axis": -1}, propagate_down=[False, True])
    assert da is None
    np.testing.assert_array_equal(db, [[[2, 3, 4]], [[7, 8, 9]]])
    db[...] = -1                                   # a fresh array: top_diff is untouched
    assert g.min() == 0


@pytest.mark.parametrize("axis,shapes", CASES, ids=[str(c[0]) for c in CASES])
def test_stacked_diffs_equal_separate_ones(axis, shapes):
    rng = np.random.default_rng(3)
    bottoms = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    top_shape = REGISTRY["Concat"].forward(bottoms, {"axis": axis})[0].shape
    g = rng.standard_normal((3,) + top_shape).astype(np.float32)
    stacked = runtime_call(bottoms, [g], {"axis": axis})
    for k in range(3):
        single = runtime_call(bottoms, [g[k:k + 1]], {"axis": axis})
        for i, (d_stacked, d_single) in enumerate(zip(stacked, single)):
            assert d_stacked.dtype == np.float32 and d_stacked.shape == (3,) + shapes[i]
            np.testing.assert_array_equal(d_stacked[k:k + 1], d_single)
