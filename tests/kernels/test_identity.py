"""Identity and inference Dropout: float64 finite differences, ONNX Runtime forward parity for the
attribute (opset 7, 10) and input (opset 12, 13) forms with and without the mask output, the
refusal of training mode, stacked K diffs and diffs that never alias top_diff."""
import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

N, C, H, W = 2, 3, 5, 4  # N != C != H != W

# (id, op type, opset, attributes, constant inputs after x (None = absent), number of tops)
CASES = [
    ("identity", "Identity", 13, {}, [], 1),
    ("dropout_ratio_attr", "Dropout", 7, {"ratio": 0.3}, [], 1),
    ("dropout_mask_7", "Dropout", 7, {"ratio": 0.3}, [], 2),
    ("dropout_mask_10", "Dropout", 10, {}, [], 2),
    ("dropout_ratio_input", "Dropout", 12, {}, [np.array(0.3, np.float32)], 1),
    ("dropout_inputs_mask", "Dropout", 13, {"seed": 7},
     [np.array(0.5, np.float32), np.array(False)], 2),
    ("dropout_no_ratio", "Dropout", 13, {}, [None, np.array(False)], 2),
]
IDS = [c[0] for c in CASES]


def with_tops(attrs, n_tops):
    """Dropout's forward learns from attrs["n_outputs"] whether the node has a mask output."""
    return dict(attrs, n_outputs=n_tops)


def runtime_call(op_type, bottoms, top_diff, attrs, n_tops, opset):
    """The backward as the runtime calls it: no data kept, only the constant inputs and shapes."""
    op = REGISTRY[op_type]
    tops = op.forward(bottoms, layer(attrs, bottoms, [None] * n_tops, opset=opset).attrs)
    pd = [True] + [False] * (len(bottoms) - 1)
    a = layer(attrs, bottoms, tops, pd, opset=opset)
    return backward(op, top_diff, [None] + list(bottoms[1:]), [None] * len(tops), a)


@pytest.mark.parametrize("name,op_type,opset,attrs,consts,n_tops", CASES, ids=IDS)
def test_finite_differences(name, op_type, opset, attrs, consts, n_tops):
    rng = np.random.default_rng(1)
    bottoms = [rng.standard_normal((N, C, H, W))] + consts
    pd = [True] + [False] * len(consts)                 # ratio and training_mode are constants
    forward = REGISTRY[op_type].forward
    result = check_op(op_type, bottoms, dict(attrs, opset=opset), propagate_down=pd, k=2,
                      forward=lambda b, a: forward(b, with_tops(a, n_tops)))  # tol 1e-6
    assert result.ok, result


@pytest.mark.parametrize("name,op_type,opset,attrs,consts,n_tops", CASES, ids=IDS)
def test_forward_matches_onnxruntime(name, op_type, opset, attrs, consts, n_tops):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    names = ["x", "ratio", "training_mode"][:1 + len(consts)]
    names = [n if b is not None else "" for n, b in zip(names, [x] + consts)]
    model = one_node_model(op_type, list(zip(names, [x] + consts)), attrs, n_outputs=n_tops,
                           opset=opset, constants=names[1:])
    expected = run_onnxruntime(model, {"x": x})
    a = layer(attrs, [x] + consts, [None] * n_tops, opset=opset).attrs
    got = REGISTRY[op_type].forward([x] + consts, a)
    assert len(got) == n_tops
    np.testing.assert_array_equal(got[0], expected[0])  # a copy: exact
    if n_tops == 2:
        assert got[1].shape == x.shape and got[1].dtype == expected[1].dtype
        assert got[1].all()                  # nothing dropped at inference, as the spec says
        if opset >= 12:                      # ONNX Runtime zero-fills the mask for opsets 7-11
            np.testing.assert_array_equal(got[1], expected[1])


def test_dropout_opset6_is_test_attribute_is_an_identity():
    """ONNX Runtime has no Dropout-6; the old attributes change nothing at inference."""
    x = np.arange(6.0).reshape(2, 3)
    top = REGISTRY["Dropout"].forward([x], {"is_test": 0, "ratio": 0.5, "opset": 6})
    np.testing.assert_array_equal(top[0], x)


def test_training_mode_is_refused():
    x = np.zeros((N, C))
    bottoms = [x, np.array(0.5), np.array(True)]
    with pytest.raises(ModelError, match="training_mode"):
        REGISTRY["Dropout"].forward(bottoms, {"opset": 13})
    with pytest.raises(ModelError, match="training_mode"):
        backward(REGISTRY["Dropout"], [np.zeros((1, N, C))], [None] + bottoms[1:], [None],
                                     layer({}, bottoms, [x], [True, False, False]))


def test_mask_output_takes_no_diff():
    x = np.zeros((N, C))
    g = np.arange(2.0 * N * C).reshape(2, N, C)
    got = runtime_call("Dropout", [x], [g, None], {}, 2, 10)
    assert len(got) == 1
    np.testing.assert_array_equal(got[0], g)


@pytest.mark.parametrize("name,op_type,opset,attrs,consts,n_tops", CASES, ids=IDS)
def test_stacked_diffs_equal_separate_ones(name, op_type, opset, attrs, consts, n_tops):
    rng = np.random.default_rng(3)
    bottoms = [rng.standard_normal((N, C, H, W)).astype(np.float32)] + consts
    g = rng.standard_normal((3, N, C, H, W)).astype(np.float32)
    diffs = [g] + [None] * (n_tops - 1)
    stacked = runtime_call(op_type, bottoms, diffs, attrs, n_tops, opset)
    assert stacked[0].dtype == np.float32 and not np.shares_memory(stacked[0], g)
    assert all(d is None for d in stacked[1:])
    for k in range(3):
        single = runtime_call(op_type, bottoms, [g[k:k + 1]] + diffs[1:], attrs, n_tops, opset)[0]
        np.testing.assert_array_equal(stacked[0][k:k + 1], single)
