"""CUDA LRN, Softmax, LogSoftmax, Sigmoid, Tanh against the CPU kernels; K = 2 stacked diffs.

Tolerances: Sigmoid and Tanh do the CPU's float32 operations in its order: exact. Softmax sums
in the CPU's order but exp is the GPU's (libdevice) or Python's under the simulator: rtol 1e-6,
atol 1e-6 of the largest |entry|. LRN takes scale^(−beta) from the device's pow: rtol 1e-5,
atol 1e-6 of the largest |entry|.
"""
import numpy as np
import pytest

N, C, H, W = 2, 5, 3, 4   # N != C != H != W


def data(shape, seed=0, positive=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.abs(x) + 0.1 if positive else x


@pytest.mark.parametrize("attrs", [{"size": 3, "alpha": 1e-1, "beta": 0.75, "bias": 2.0},
                                   {"size": 4, "alpha": 2e-1, "beta": 0.5},            # even size: lo != hi
                                   {"size": 7, "alpha": 1e-4, "beta": 0.75}])           # wider than C
def test_lrn(attrs, check):
    check("LRN", [data((N, C, H, W))], attrs, rtol=1e-5, atol=1e-6)


def test_lrn_3d(check):
    check("LRN", [data((N, C, 3))], {"size": 3, "alpha": 0.1}, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op_type", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(13, -1), (13, 1), (11, 1), (11, 2)])
def test_softmax(op_type, opset, axis, check):
    check(op_type, [data((N, C, H, W), seed=1)], {"axis": axis}, opset=opset, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op_type", ["Sigmoid", "Tanh"])
def test_sigmoid_tanh(op_type, check):
    check(op_type, [data((N, C, H, W), seed=2)], {}, k=3)
