"""Gather, GatherElements, GatherND, ScatterND, ScatterElements: finite differences, ONNX Runtime
parity, repeated indices accumulating."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import forward_pair

SHAPE = (2, 3, 5, 4)  # N != C != H != W


def data(seed=1):
    return np.random.default_rng(seed).standard_normal(SHAPE)


GATHER = [
    (0, np.array(0)),                               # ViT's class token: select, the axis dropped
    (1, np.array([2, 0, 2, -1])),                   # repeated and negative indices
    (2, np.array([[4, 1], [0, 4]])),                # an index matrix
    (-1, np.array([3])),
]


@pytest.mark.parametrize("axis,indices", GATHER, ids=[f"axis{a}-{i.tolist()}" for a, i in GATHER])
def test_gather(axis, indices):
    x = data()
    idx = indices.astype(np.int64)
    assert check_op("Gather", [x, idx], {"axis": axis}, propagate_down=[True, False], k=2).ok
    got, expected = forward_pair("Gather", [x.astype(np.float32), idx], {"axis": axis})
    np.testing.assert_array_equal(got[0], expected[0])


def test_gather_repeated_index_accumulates():
    x = np.zeros((1, 4))
    idx = np.array([1, 1, 3], np.int64)
    g = np.array([[[1.0, 2.0, 4.0]]])
    a = layer({"axis": 1}, [x, idx], [np.zeros((1, 3))])
    d = backward(REGISTRY["Gather"], [g], [None, idx], [None], a)[0]
    np.testing.assert_array_equal(d, [[[0.0, 3.0, 0.0, 4.0]]])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    rng = np.random.default_rng(3)
    x = data()
    shape = list(SHAPE)
    shape[axis] = 3
    idx = rng.integers(-SHAPE[axis], SHAPE[axis], shape).astype(np.int64)
    assert check_op("GatherElements", [x, idx], {"axis": axis}, propagate_down=[True, False], k=2).ok
    got, expected = forward_pair("GatherElements", [x.astype(np.float32), idx], {"axis": axis})
    np.testing.assert_array_equal(got[0], expected[0])


ND = [
    (0, np.array([[0, 1], [1, 2], [0, 1]])),        # (3, 2): picks (3, 5, 4) slices, one twice
    (0, np.array([[[1, 2, 3, 0]], [[0, 0, 0, 0]]])),  # full coordinates
    (1, np.array([[[2], [0]], [[1], [1]]])),       # batch_dims 1
]


@pytest.mark.parametrize("batch_dims,indices", ND, ids=["slices", "elements", "batch1"])
def test_gather_nd(batch_dims, indices):
    x = data()
    idx = indices.astype(np.int64)
    attrs = {"batch_dims": batch_dims}
    assert check_op("GatherND", [x, idx], attrs, propagate_down=[True, False], k=2).ok
    got, expected = forward_pair("GatherND", [x.astype(np.float32), idx], attrs)
    np.testing.assert_array_equal(got[0], expected[0])


@pytest.mark.parametrize("reduction", ["none", "add"])
def test_scatter_nd(reduction):
    rng = np.random.default_rng(4)
    x = data()
    idx = np.array([[1, 0], [0, 2]], np.int64)            # (2, 2): two (5, 4) slices, distinct
    updates = rng.standard_normal((2, 5, 4))
    attrs = {"reduction": reduction}
    result = check_op("ScatterND", [x, idx, updates], attrs, propagate_down=[True, False, True], k=2)
    assert result.ok, result
    got, expected = forward_pair("ScatterND", [x.astype(np.float32), idx, updates.astype(np.float32)],
                                 attrs, constant={1}, opset=18)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "add"])
def test_scatter_elements(reduction):
    x = data()
    idx = np.random.default_rng(5).permutation(5)[:3].reshape(1, 1, 3, 1).repeat(2, 0).repeat(3, 1).repeat(4, 3)
    updates = np.random.default_rng(6).standard_normal(idx.shape)
    attrs = {"axis": 2, "reduction": reduction}
    result = check_op("ScatterElements", [x, idx.astype(np.int64), updates], attrs,
                      propagate_down=[True, False, True], k=2)
    assert result.ok, result
    got, expected = forward_pair("ScatterElements", [x.astype(np.float32), idx.astype(np.int64),
                                                     updates.astype(np.float32)], attrs, constant={1}, opset=18)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-6)


def test_scatter_reductions_without_a_backward_are_refused():
    x = data()
    idx = np.array([[0]], np.int64)
    a = layer({"reduction": "mul", "node_name": "s"}, [x, idx, x[:1]], [x])
    with pytest.raises(ModelError, match="reduction 'mul'"):
        backward(REGISTRY["ScatterND"], [np.ones((1,) + SHAPE)], [None, idx, None], [None], a)
