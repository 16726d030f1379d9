"""MatMul: float64 finite differences, ONNX Runtime forward parity, stacking, float32."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

OP = REGISTRY["MatMul"]

# (id, A shape, B shape): M=3, P=5, N=4, batch axes 2 and 6, broadcast both ways
CASES = [
    ("1d_1d", (5,), (5,)),
    ("1d_2d", (5,), (5, 4)),
    ("2d_1d", (3, 5), (5,)),
    ("2d_2d", (3, 5), (5, 4)),
    ("1d_batched", (5,), (2, 5, 4)),
    ("batched_1d", (2, 3, 5), (5,)),
    ("batched_2d", (2, 6, 3, 5), (5, 4)),
    ("2d_batched", (3, 5), (2, 5, 4)),
    ("batched", (2, 3, 5), (2, 5, 4)),
    ("broadcast_a", (1, 3, 5), (2, 5, 4)),
    ("broadcast_both", (2, 1, 3, 5), (6, 5, 4)),
]
IDS = [c[0] for c in CASES]


def make(a_shape, b_shape, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(a_shape), rng.standard_normal(b_shape)]


@pytest.mark.parametrize("name,a_shape,b_shape", CASES, ids=IDS)
def test_finite_differences(name, a_shape, b_shape):
    result = check_op("MatMul", make(a_shape, b_shape), {}, propagate_down=[True, True], k=2)
    assert result.ok, result


@pytest.mark.parametrize("name,a_shape,b_shape", CASES, ids=IDS)
def test_one_operand_only(name, a_shape, b_shape):
    """Each diff alone, from the other operand alone (what the runtime keeps)."""
    a, b = make(a_shape, b_shape, seed=1)
    y = OP.forward([a, b], layer({}, [a, b], []).attrs)
    g = np.random.default_rng(2).standard_normal((2,) + y[0].shape)
    both = backward(OP, [g], [a, b], y, layer({}, [a, b], y, propagate_down=[True, True]))
    only_a = backward(OP, [g], [None, b], y, layer({}, [a, b], y, propagate_down=[True, False]))
    only_b = backward(OP, [g], [a, None], y, layer({}, [a, b], y, propagate_down=[False, True]))
    assert only_a[1] is None and only_b[0] is None
    np.testing.assert_array_equal(only_a[0], both[0])
    np.testing.assert_array_equal(only_b[1], both[1])


@pytest.mark.parametrize("opset", [1, 9, 13])
@pytest.mark.parametrize("name,a_shape,b_shape", CASES, ids=IDS)
def test_forward_matches_onnxruntime(name, a_shape, b_shape, opset):
    a, b = [x.astype(np.float32) for x in make(a_shape, b_shape, seed=3)]
    model = one_node_model("MatMul", [("a", a), ("b", b)], {}, constants=["b"], opset=opset)
    expected = run_onnxruntime(model, {"a": a})[0]
    got = OP.forward([a, b], layer({}, [a, b], []).attrs)[0]
    assert got.dtype == np.float32 and got.shape == expected.shape
    # float32, sums of 5 products of N(0,1) numbers: rtol 1e-5, atol 1e-6.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,a_shape,b_shape", CASES, ids=IDS)
def test_stacked_diffs_equal_separate_ones(name, a_shape, b_shape):
    a, b = [x.astype(np.float32) for x in make(a_shape, b_shape, seed=4)]
    y = OP.forward([a, b], layer({}, [a, b], []).attrs)
    g = np.random.default_rng(5).standard_normal((3,) + y[0].shape).astype(np.float32)
    attrs = layer({}, [a, b], y, propagate_down=[True, True])
    stacked = backward(OP, [g], [a, b], y, attrs)
    for k in range(3):
        single = backward(OP, [g[k:k + 1]], [a, b], y, attrs)
        for s, d in zip(stacked, single):
            # BLAS may block a K-stacked product differently: float32 rounding, 1e-6 of the
            # largest entry (float32 eps 1.2e-7).
            np.testing.assert_allclose(s[k:k + 1], d, rtol=0, atol=1e-6 * np.abs(d).max())


@pytest.mark.parametrize("name,a_shape,b_shape", CASES, ids=IDS)
def test_float32_backward_matches_float64(name, a_shape, b_shape):
    a64, b64 = make(a_shape, b_shape, seed=6)
    y = OP.forward([a64, b64], layer({}, [a64, b64], []).attrs)
    g64 = np.random.default_rng(7).standard_normal((2,) + y[0].shape)
    attrs = layer({}, [a64, b64], y, propagate_down=[True, True])
    d64 = backward(OP, [g64], [a64, b64], y, attrs)
    d32 = backward(OP, [g64.astype(np.float32)], [a64.astype(np.float32), b64.astype(np.float32)],
                      [y[0].astype(np.float32)], attrs)
    for x32, x64 in zip(d32, d64):
        assert x32.dtype == np.float32
        # float32 rounding of sums of at most a few dozen O(1) products: 1e-6 of the largest entry.
        np.testing.assert_allclose(x32, x64, rtol=0, atol=1e-6 * np.abs(x64).max())


def test_operands_that_do_not_multiply_name_the_node():
    a, b = make((3, 5), (4, 5))
    with pytest.raises(ModelError, match="'proj'"):
        OP.forward([a, b], {"node_name": "proj"})
