"""The CUDA kernel tests run only under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set before
numba is imported, so in a process of their own): tests/caffe_port/test_gpu_path.py starts that
process. Collected in an ordinary run they are ignored.

Every test compares a CUDA kernel with its CPU kernel on the same inputs (``both``), float32 unless
it says otherwise, on tiny shapes: the simulator runs every GPU thread as a Python thread.
"""
import os

import numpy as np
import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
collect_ignore_glob = [] if SIMULATED else ["test_*.py"]

if SIMULATED:
    from caffe_port.kernels.cuda import simulator
    simulator.restrict()


def _as_device(value):
    from caffe_port.kernels.cuda import device
    if value is None or not isinstance(value, np.ndarray):
        return value
    return device.upload(value)


def run_both(op_type, top_diff, bottom_data, top_data, attrs, device_bottoms=None):
    """(CPU bottom diffs, CUDA bottom diffs copied back) of one backward.

    The CUDA kernel gets what the GPU walker gives it: diffs and the runtime tensors (the
    positions in ``device_bottoms``, default: input 0 and every top) as device arrays, constants
    as host arrays."""
    from caffe_port.kernels import REGISTRY
    from caffe_port.kernels.cuda import device, registry

    cpu = REGISTRY[op_type].backward(top_diff, bottom_data, top_data, attrs)
    device_bottoms = (0,) if device_bottoms is None else tuple(device_bottoms)
    gpu = registry.backward(op_type)(
        [_as_device(g) for g in top_diff],
        [_as_device(b) if i in device_bottoms else b for i, b in enumerate(bottom_data)],
        [_as_device(t) for t in top_data], attrs)
    for d in gpu:
        assert d is None or device.is_device_array(d), f"{op_type}: a CUDA kernel returned {type(d)}"
    return cpu, [None if d is None else device.to_host(d) for d in gpu]


@pytest.fixture
def both():
    return run_both


def assert_close(cpu, gpu, rtol, atol=0.0):
    assert len(cpu) == len(gpu)
    for c, g in zip(cpu, gpu):
        assert (c is None) == (g is None)
        if c is not None:
            assert g.shape == c.shape and g.dtype == c.dtype
            np.testing.assert_allclose(g, c, rtol=rtol, atol=atol)


@pytest.fixture
def close():
    return assert_close


if SIMULATED:
    import sys
    # The simulator runs each GPU thread as a Python thread and polls them at every
    # syncthreads: a short switch interval makes those hand-overs (and the tests) several times faster.
    sys.setswitchinterval(1e-5)
