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
    from helpers import cuda_simulator as simulator
    simulator.restrict()


def _as_device(value):
    from caffe_port.kernels.cuda import device
    if value is None or not isinstance(value, np.ndarray):
        return value
    return device.upload(value)


def run_both(op_type, top_diff, bottom_data, top_data, a, device_bottoms=None):
    """(CPU bottom diffs, CUDA bottom diffs copied back) of one backward; ``a`` is a
    helpers.kernel_calls.Layer (attrs and the walk's controls).

    The CUDA kernel gets what the CUDA backend gives it: diffs and the runtime tensors (the
    positions in ``device_bottoms``, default: input 0 and every top) as device arrays, constants
    as host arrays."""
    from caffe_port.kernels import REGISTRY
    from caffe_port.kernels.cuda import device
    from helpers.kernel_calls import backward

    op = REGISTRY[op_type]
    cpu = backward(op, top_diff, bottom_data, top_data, a)
    device_bottoms = (0,) if device_bottoms is None else tuple(device_bottoms)
    gpu = backward(op.cuda_backward(),
                   [_as_device(g) for g in top_diff],
                   [_as_device(b) if i in device_bottoms else b for i, b in enumerate(bottom_data)],
                   [_as_device(t) for t in top_data], a)
    assert len(gpu) == len(bottom_data), f"{op_type}: {len(gpu)} diffs for {len(bottom_data)} bottoms"
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


def compare(op_type, bottoms, attrs, *, constants=(), propagate_down=None, k=2, opset=17, n_outputs=1,
            rtol=0.0, atol=0.0, seed=0, dtype=np.float32):
    """Run ``op_type``'s forward on the CPU, then its backward on both sides with K random top
    diffs, and compare. Float bottoms are cast to ``dtype``; those at ``constants`` stay host
    arrays (graph constants), the other float ones become device arrays (runtime tensors), integer
    ones stay on the host (as the GPU walker passes them). The kernels see only what the walker
    hands them (gradcheck.visible). atol is relative to the largest |CPU entry|."""
    from caffe_port.gradcheck import visible
    from caffe_port.kernels import REGISTRY
    from helpers.kernel_calls import layer

    rng = np.random.default_rng(seed)
    bottoms = [b.astype(dtype) if isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating) else b
               for b in bottoms]
    if propagate_down is None:
        propagate_down = [i not in constants and isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating)
                          for i, b in enumerate(bottoms)]
    op = REGISTRY[op_type]
    tops = op.forward(bottoms, layer(attrs, bottoms, [None] * n_outputs, propagate_down, opset=opset).attrs)
    a = layer(attrs, bottoms, tops, propagate_down, opset=opset)
    seen_bottoms, seen_tops = visible(op, bottoms, tops, propagate_down)
    top_diff = [rng.standard_normal((k,) + t.shape).astype(dtype) for t in tops]
    on_device = [i for i, b in enumerate(seen_bottoms) if i not in constants and isinstance(b, np.ndarray)
                 and np.issubdtype(b.dtype, np.floating)]
    cpu, gpu = run_both(op_type, top_diff, seen_bottoms, seen_tops, a, device_bottoms=on_device)
    assert len(cpu) == len(gpu)
    for c, g in zip(cpu, gpu):
        assert (c is None) == (g is None), (c, g)
        if c is not None:
            c = np.asarray(c)
            assert g.shape == c.shape and g.dtype == c.dtype, (g.shape, c.shape, g.dtype, c.dtype)
            scale = float(np.abs(c).max()) if c.size else 0.0
            np.testing.assert_allclose(g, c, rtol=rtol, atol=atol * scale)
    return cpu, gpu


@pytest.fixture
def check():
    return compare


if SIMULATED:
    import sys
    # The simulator runs each GPU thread as a Python thread and polls them at every
    # syncthreads: a short switch interval makes those hand-overs (and the tests) several times faster.
    sys.setswitchinterval(1e-5)
