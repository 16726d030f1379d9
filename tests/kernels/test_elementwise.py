"""Elementwise layers with broadcasting: float64 finite differences for every broadcasting pattern,
ONNX Runtime forward parity, Max/Min tie rules, stacked K diffs, and the data the registry keeps."""
import numpy as np
import pytest

from caffe_port.gradcheck import check_op
from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer
from helpers.onnx_models import one_node_model, run_onnxruntime

N, C, H, W = 2, 3, 5, 4  # N != C != H != W

# (name, shape of a, shape of b): each broadcasting pattern, both operand orders where they differ
PATTERNS = [
    ("same", (N, C, H, W), (N, C, H, W)),
    ("channel", (N, C, H, W), (C, 1, 1)),
    ("channel_first", (C, 1, 1), (N, C, H, W)),
    ("one", (N, C, H, W), (1,)),
    ("scalar", (N, C, H, W), ()),
    ("scalar_first", (), (N, C, H, W)),
    ("both", (N, 1, H, 1), (1, C, 1, W)),
]

BINARY = ["Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"]


def operands(op_type, shape_a, shape_b, rng):
    """Inputs where the op is smooth: Div's divisor and Pow's base kept away from 0."""
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    if op_type == "Div":
        b = np.asarray(np.sign(b) * (0.5 + np.abs(b)))
    if op_type == "Pow":
        a = rng.uniform(0.5, 2.0, shape_a)
    return [a, b]


def runtime_call(op_type, bottoms, top_diff, attrs=None, propagate_down=None, opset=17):
    """Call the backward as the runtime does: only the bottoms and tops the registry keeps."""
    op = REGISTRY[op_type]
    attrs = attrs or {}
    tops = op.forward(bottoms, layer(attrs, bottoms, [], propagate_down, opset=opset).attrs)
    a = layer(attrs, bottoms, tops, propagate_down, opset=opset)
    keep = op.bottoms_read(a.controls["propagate_down"])
    given = [b if i in keep else None for i, b in enumerate(bottoms)]
    kept_tops = [t if j in op.tops else None for j, t in enumerate(tops)]
    return backward(op, top_diff, given, kept_tops, a)


@pytest.mark.parametrize("op_type", BINARY)
@pytest.mark.parametrize("name,shape_a,shape_b", PATTERNS, ids=[p[0] for p in PATTERNS])
def test_finite_differences(op_type, name, shape_a, shape_b):
    rng = np.random.default_rng(1)
    result = check_op(op_type, operands(op_type, shape_a, shape_b, rng), k=2)  # tol 1e-6
    assert result.ok, result


@pytest.mark.parametrize("op_type", ["Sum", "Max", "Min"])
def test_variadic_finite_differences(op_type):
    rng = np.random.default_rng(2)
    bottoms = [rng.standard_normal(s) for s in [(N, C, H, W), (C, 1, W), (1,)]]
    result = check_op(op_type, bottoms, k=2)  # tol 1e-6
    assert result.ok, result


def test_single_operand_sum_and_max():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N, C, H, W))
    for op_type in ("Sum", "Max", "Min"):
        result = check_op(op_type, [x], k=2)
        assert result.ok, result


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("op_type", ["Mul", "Div", "Pow", "Sub"])
def test_one_operand_takes_diff(op_type, which):
    """propagate_down picks one operand; the other gets None and the kernel reads only what the
    registry keeps for that choice."""
    rng = np.random.default_rng(4)
    bottoms = operands(op_type, (N, C, H, W), (C, 1, 1), rng)
    pd = [which == 0, which == 1]
    result = check_op(op_type, bottoms, propagate_down=pd, k=2)  # tol 1e-6
    assert result.ok, result
    g = rng.standard_normal((2, N, C, H, W))
    got = runtime_call(op_type, bottoms, [g], propagate_down=pd)
    assert got[1 - which] is None and got[which].shape == (2,) + bottoms[which].shape


@pytest.mark.parametrize("op_type", BINARY)
@pytest.mark.parametrize("name,shape_a,shape_b", PATTERNS[:5] + PATTERNS[6:],
                         ids=[p[0] for p in PATTERNS[:5] + PATTERNS[6:]])
def test_forward_matches_onnxruntime(op_type, name, shape_a, shape_b):
    rng = np.random.default_rng(5)
    a, b = (t.astype(np.float32) for t in operands(op_type, shape_a, shape_b, rng))
    model = one_node_model(op_type, [("a", a), ("b", b)], opset=13)
    expected = run_onnxruntime(model, {"a": a, "b": b})[0]
    got = REGISTRY[op_type].forward([a, b], layer({}, [a, b], [], opset=13).attrs)[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("op_type,opset", [("Sum", 8), ("Sum", 13), ("Max", 8), ("Max", 13),
                                           ("Min", 12), ("Add", 7), ("Mul", 7), ("Pow", 7)])
def test_forward_matches_onnxruntime_opsets(op_type, opset):
    rng = np.random.default_rng(6)
    shapes = [(N, C, H, W), (C, 1, W), (1,)] if op_type in ("Sum", "Max", "Min") \
        else [(N, C, H, W), (C, 1, 1)]
    bottoms = [rng.uniform(0.5, 2.0, s).astype(np.float32) for s in shapes]
    names = [f"x{i}" for i in range(len(bottoms))]
    model = one_node_model(op_type, list(zip(names, bottoms)), opset=opset)
    expected = run_onnxruntime(model, dict(zip(names, bottoms)))[0]
    got = REGISTRY[op_type].forward(bottoms, layer({}, bottoms, [], opset=opset).attrs)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_pow_integer_exponent_matches_onnxruntime():
    """Opset 12 lets the exponent be an integer tensor; the result keeps the base's type."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    p = np.array([2, 3, 1], dtype=np.int64).reshape(C, 1, 1)
    model = one_node_model("Pow", [("x", x), ("p", p)], opset=12, constants=["p"])
    expected = run_onnxruntime(model, {"x": x})[0]
    got = REGISTRY["Pow"].forward([x, p], layer({}, [x, p], [], opset=12).attrs)[0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    g = rng.standard_normal((2, N, C, H, W)).astype(np.float32)
    dx = runtime_call("Pow", [x, p], [g], opset=12)[0]
    np.testing.assert_allclose(dx, g * p * x ** (p - 1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op_type,pick", [("Max", np.maximum), ("Min", np.minimum)])
def test_ties_go_to_the_first_operand(op_type, pick):
    x = np.array([[1.0, 2.0, 0.0, -1.0]])
    same = x.copy()
    zero = np.array(0.0)
    g = np.array([[[10.0, 20.0, 30.0, 40.0]]])
    y = pick(x, 0)
    got = runtime_call(op_type, [x, same, zero], [g])
    np.testing.assert_array_equal(got[0], g * (x == y))      # x ties with `same` and with 0 at x[2]
    np.testing.assert_array_equal(got[1], np.zeros_like(g))
    np.testing.assert_array_equal(got[2], [np.sum(g * (x != y))])
    got = runtime_call(op_type, [zero, x, same], [g])
    holds_zero = pick(x, 0) == 0                             # positions where 0 is extreme
    np.testing.assert_array_equal(got[0], [np.sum(g * holds_zero)])
    np.testing.assert_array_equal(got[1], g * ~holds_zero)
    np.testing.assert_array_equal(got[2], np.zeros_like(g))


def test_constant_that_wins_still_claims_ties():
    """An earlier operand that takes no diff (a constant floor) still claims a tie."""
    x = np.array([[0.0, 1.0, -1.0]])
    floor = np.array(0.0)
    g = np.array([[[5.0, 6.0, 7.0]]])
    got = runtime_call("Max", [floor, x], [g], propagate_down=[False, True])
    assert got[0] is None
    np.testing.assert_array_equal(got[1], [[[0.0, 6.0, 0.0]]])


def test_pow_exponent_diff_is_zero_where_base_not_positive():
    x = np.array([[-2.0, 0.0, 3.0]])
    p = np.array(2.0)
    g = np.array([[[1.0, 1.0, 1.0]]])
    dp = runtime_call("Pow", [x, p], [g])[1]
    np.testing.assert_allclose(dp, [9.0 * np.log(3.0)], rtol=1e-12)


@pytest.mark.parametrize("op_type", BINARY + ["Sum"])
def test_stacked_diffs_equal_separate_ones(op_type):
    rng = np.random.default_rng(8)
    bottoms = [t.astype(np.float32) for t in operands(op_type, (N, 1, H, 1), (1, C, 1, W), rng)]
    g = rng.standard_normal((3, N, C, H, W)).astype(np.float32)
    stacked = runtime_call(op_type, bottoms, [g])
    for i, d in enumerate(stacked):
        assert d.dtype == np.float32 and d.shape == (3,) + bottoms[i].shape
    for k in range(3):
        single = runtime_call(op_type, bottoms, [g[k:k + 1]])
        for d_stacked, d_single in zip(stacked, single):
            np.testing.assert_array_equal(d_stacked[k:k + 1], d_single)


def test_diffs_are_fresh_arrays():
    """Add(x, x): the two diffs and top_diff are three separate buffers, so a walker that adds
    the second into the first in place changes nothing else."""
    x = np.ones((N, C), dtype=np.float32)
    g = np.full((1, N, C), 2.0, dtype=np.float32)
    da, db = runtime_call("Add", [x, x], [g])
    da += db
    np.testing.assert_array_equal(g, 2.0)
    np.testing.assert_array_equal(db, 2.0)
