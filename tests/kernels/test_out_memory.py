"""The ``out`` control (kernels/registry.py): a kernel given memory for a bottom diff writes the whole
diff there — the memory starts as garbage (NaN here) — and returns that array, with the same bits
as the array it makes without it; without it, no returned diff is a view of top_diff. Every op
whose kernel declares ``out`` is in the table."""
import numpy as np
import pytest

from caffe_port.kernels import REGISTRY
from helpers.kernel_calls import backward, layer

rng = np.random.default_rng(11)
X = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)      # N ≠ C ≠ H ≠ W
Y = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
POOL = {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 1]}

CASES = {  # op type -> (bottoms, attrs)
    "Relu": ([X], {}),
    "LeakyRelu": ([X], {"alpha": 0.1}),
    "PRelu": ([X, np.full((3, 1, 1), 0.2, np.float32)], {}),
    "Clip": ([X, np.float32(-0.5), np.float32(0.7)], {}),
    "MaxPool": ([X], POOL),
    "GlobalMaxPool": ([X], {}),
    "AveragePool": ([X], dict(POOL, count_include_pad=0)),
    "GlobalAveragePool": ([X], {}),
    "LRN": ([X], {"size": 3, "alpha": 1e-3, "beta": 0.75, "bias": 1.0}),
    "Concat": ([X, Y[:, :2]], {"axis": 1}),
    "Add": ([X, Y[:1, :, :1]], {}),            # the second operand broadcast: its diff is summed
    "Sum": ([X, Y, X[0]], {}),
}


def test_every_kernel_declaring_out_is_tested():
    assert {op for op, entry in REGISTRY.items() if "out" in entry.controls} == set(CASES)


def _call(op_type, k, out=None):
    bottoms, attrs = CASES[op_type]
    op = REGISTRY[op_type]
    tops = op.forward(bottoms, layer(attrs, bottoms, [None]).attrs)
    # the data diff; every operand's for the joins (Clip's bounds and PRelu's slope are constants)
    propagate_down = [i == 0 or op_type in ("Concat", "Add", "Sum") for i in range(len(bottoms))]
    a = layer(attrs, bottoms, tops, propagate_down=propagate_down)
    if out is not None:
        a.controls["out"] = out
    top_diff = [rng.standard_normal((k,) + t.shape).astype(np.float32) for t in tops[:1]]
    return top_diff, backward(op, top_diff, bottoms, tops, a), bottoms, propagate_down


@pytest.mark.parametrize("op_type", sorted(CASES))
@pytest.mark.parametrize("k", [1, 3])
def test_the_diff_is_written_into_the_memory_given(op_type, k):
    state = rng.bit_generator.state
    top_diff, plain, bottoms, propagate_down = _call(op_type, k)
    for d in plain:
        assert d is None or not np.shares_memory(d, top_diff[0])
    memory = tuple(np.full((k,) + np.shape(b), np.nan, np.float32) if pd else None
                   for b, pd in zip(bottoms, propagate_down))
    rng.bit_generator.state = state                      # the same top diff again
    _, given, _, _ = _call(op_type, k, out=memory)
    for d, p, m in zip(given, plain, memory):
        if m is None:
            continue
        assert d.__array_interface__["data"][0] == m.__array_interface__["data"][0] and d.shape == m.shape
        np.testing.assert_array_equal(d, p)


def test_memory_of_another_shape_is_not_used():
    """A diff whose shape the walk got wrong goes to a fresh array, not into the wrong memory."""
    wrong = (np.full((1, 2, 3, 7, 5), np.nan, np.float32),)
    _, given, _, _ = _call("MaxPool", 1, out=wrong)
    assert given[0].shape == (1,) + X.shape and not np.isnan(given[0]).any()
    assert np.isnan(wrong[0]).all()
