"""CUDA Concat, Split, Slice, Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Pad, Identity,
Dropout, ReduceMean and ReduceSum against the CPU kernels; K = 2.

Tolerance: these move diffs, or add copies in the CPU's order (Pad), or divide by the same
count (ReduceMean): exact, except ReduceMean (exact too: one division each side).
"""
import numpy as np
import pytest

N, C, H, W = 2, 3, 5, 4
BIG = np.iinfo(np.int64).max


def ints(*values):
    return np.array(values, dtype=np.int64)


def x(seed=0, shape=(N, C, H, W)):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("axis", [1, -1, 0])
def test_concat(axis, check):
    shapes = {1: [(N, 2, H, W), (N, 1, H, W)], -1: [(N, C, H, 1), (N, C, H, 3)], 0: [(1, C, H, W), (2, C, H, W)]}
    check("Concat", [x(i, s) for i, s in enumerate(shapes[axis])], {"axis": axis})


SPLITS = [
    ("attr", 11, {"axis": 1, "split": [1, 2]}, None, 2),
    ("equal_neg_axis", 11, {"axis": -1}, None, 2),
    ("input", 13, {"axis": 2}, ints(2, 3), 2),
    ("num_outputs_uneven", 18, {"axis": 2, "num_outputs": 3}, None, 3),
]


@pytest.mark.parametrize("name,opset,attrs,split,n", SPLITS, ids=[s[0] for s in SPLITS])
def test_split(name, opset, attrs, split, n, check):
    check("Split", [x()] + ([] if split is None else [split]), attrs, opset=opset, n_outputs=n)


def test_split_top_without_diff_gives_zeros():
    from caffe_port.kernels import REGISTRY
    from caffe_port.kernels.cuda import device
    from helpers.kernel_calls import backward, layer
    a = layer({"axis": 1, "split": [1, 2]}, [x()], [None, None], [True], opset=11)
    g = x(1, (2, N, 2, H, W)).astype(np.float32)
    cpu = backward(REGISTRY["Split"], [None, g], [None], [None, None], a)[0]
    gpu = backward(REGISTRY["Split"].cuda_backward(), [None, device.upload(g)], [None], [None, None], a)[0]
    np.testing.assert_array_equal(device.to_host(gpu), cpu)


SLICES = [
    ("attrs_axes", 9, {"starts": [1, 0], "ends": [3, 1000], "axes": [1, 3]}, None),
    ("attrs_negative", 9, {"starts": [-3], "ends": [-1], "axes": [2]}, None),
    ("negative_steps", 13, {}, [ints(4, -1), ints(0, -1000), ints(2, -1), ints(-2, -1)]),
    ("reverse_clamped", 13, {}, [ints(BIG), ints(-BIG - 1), ints(-2), ints(-1)]),
    ("steps_without_axes", 13, {}, [ints(1, 2, 4), ints(2, 0, 0), None, ints(1, -1, -2)]),
    ("empty", 13, {}, [ints(3), ints(1), ints(2), None]),
]


@pytest.mark.parametrize("name,opset,attrs,inputs", SLICES, ids=[s[0] for s in SLICES])
def test_slice(name, opset, attrs, inputs, check):
    bottoms = [x()] if inputs is None else [x()] + [i for i in inputs if i is not None]
    if inputs is not None and inputs[2] is None and inputs[3] is not None:      # steps without axes
        bottoms = [x(), inputs[0], inputs[1], ints(0, 1, 2), inputs[3]]
    check("Slice", bottoms, attrs, opset=opset)


@pytest.mark.parametrize("op_type,attrs,extra", [
    ("Flatten", {"axis": 2}, []),
    ("Reshape", {}, [ints(0, -1, 4)]),
    ("Squeeze", {}, [ints(1)]),
    ("Unsqueeze", {}, [ints(0, 3)]),
    ("Transpose", {"perm": [0, 2, 3, 1]}, []),
    ("Transpose", {}, []),
    ("Identity", {}, []),
    ("Dropout", {}, []),
])
def test_shape_ops(op_type, attrs, extra, check):
    shape = (N, 1, H, W) if op_type == "Squeeze" else (N, C, H, W)
    check(op_type, [x(2, shape)] + extra, attrs, opset=13)


GROW = [0, 0, 1, 2, 0, 0, 2, 1]
CROP_AND_GROW = [0, 0, -1, 2, 0, -1, 1, -1]
PADS = [
    ("constant_attr", 2, {"pads": GROW, "value": 1.5}, []),
    ("reflect_attr", 2, {"mode": "reflect", "pads": GROW}, []),
    ("edge_attr", 2, {"mode": "edge", "pads": GROW}, []),
    ("constant_crop", 11, {"mode": "constant"}, [ints(*CROP_AND_GROW)]),
    ("reflect_crop", 11, {"mode": "reflect"}, [ints(*CROP_AND_GROW)]),
    ("reflect_axes", 18, {"mode": "reflect"}, [ints(1, 2, 2, 1), np.array(0.0), ints(2, 3)]),
    ("wrap", 19, {"mode": "wrap"}, [ints(*GROW[:3], 3, 0, 0, 4, 1)]),
]


@pytest.mark.parametrize("name,opset,attrs,extra", PADS, ids=[p[0] for p in PADS])
def test_pad(name, opset, attrs, extra, check):
    constants = (2,) if len(extra) > 1 else ()
    check("Pad", [x(3)] + extra, attrs, opset=opset, constants=constants)


@pytest.mark.parametrize("op_type", ["ReduceMean", "ReduceSum"])
@pytest.mark.parametrize("attrs,opset,axes", [({"axes": [2, 3]}, 11, None), ({"keepdims": 0}, 18, ints(1, -1)),
                                               ({}, 11, None)])
def test_reduce(op_type, attrs, opset, axes, check):
    if op_type == "ReduceSum" and opset == 11 and "axes" in attrs:
        opset = 12
    if op_type == "ReduceSum" and axes is not None:
        opset = 13
    check(op_type, [x(4)] + ([] if axes is None else [axes]), attrs, opset=opset)
