"""Numba's threading layer, prepared by kernels/threading_layer.py whatever was imported first: its
idle workers sleep, PyTorch keeps an OpenMP runtime of its own (spinning as torch chooses), and the
process's environment is as it was.

Each case runs in a fresh interpreter (the layer is chosen once per process) with an environment
free of the suite's own OMP_WAIT_POLICY (tests/conftest.py), and reports what it saw as JSON: the
layer Numba started, what ``prepare`` did, whether os.environ changed, and the OpenMP and TBB
libraries mapped into the process."""
import json
import os
import subprocess
import sys

import pytest

from caffe_port.kernels import threading_layer

PROBE = r"""
import json, os, sys
order = sys.argv[1].split(",")
before = dict(os.environ)

def use_torch():
    import torch
    torch.set_num_threads(2)
    (torch.ones(256, 256) @ torch.ones(256, 256)).sum()

def use_kernels():
    import numpy as np
    from caffe_port.kernels import relu, threading_layer
    g = np.ones((1, 4096), np.float32)
    relu.relu_backward([g[None]], [None], [g], {}, rule="backprop", in_place=False)
    return threading_layer.prepare()

def use_numba_first():
    import numba, numpy as np
    @numba.njit(parallel=True)
    def inc(a):
        for i in numba.prange(a.shape[0]):
            a[i] += 1
    inc(np.zeros(64))

prepared = None
for step in order:
    if step == "torch":
        use_torch()
    elif step == "numba":
        use_numba_first()
    else:
        prepared = use_kernels()
import numba
with open("/proc/self/maps") as f:
    libs = sorted({line.split()[-1] for line in f if "gomp" in line or "libtbb" in line})
print(json.dumps({"layer": numba.threading_layer(), "prepared": prepared,
                  "environ_unchanged": dict(os.environ) == before, "libs": libs}))
"""


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "NUMBA_THREADING_LAYER")}
    env.update(extra)
    return env


def probe(order, **env):
    proc = subprocess.run([sys.executable, "-c", PROBE, order], env=clean_env(**env),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def torch_installed():
    from caffe_port.bench.run import torch_available
    return torch_available()


needs_torch = pytest.mark.skipif(not torch_installed(), reason="torch is not installed")
needs_tbb = pytest.mark.skipif(threading_layer.tbb_library() is None, reason="the tbb wheel is not installed")


def torch_gomp(libs):
    return [p for p in libs if "gomp" in p and os.sep + "torch" + os.sep in p]


def other_gomp(libs):
    return [p for p in libs if "gomp" in p and os.sep + "torch" + os.sep not in p]


@needs_torch
@needs_tbb
@pytest.mark.parametrize("order", ["torch,kernels", "kernels,torch"])
def test_tbb_whatever_came_first(order):
    """With the tbb wheel, Numba runs on it in either order: no libgomp but torch's own in the
    process, so neither library's wait policy reaches the other."""
    seen = probe(order)
    assert seen["layer"] == "tbb" and seen["prepared"] == "tbb"
    assert seen["environ_unchanged"]
    assert any(p.endswith(threading_layer.TBB_LIBRARY) for p in seen["libs"])
    assert len(torch_gomp(seen["libs"])) == 1 and other_gomp(seen["libs"]) == []


@needs_torch
def test_omp_after_torch_has_a_runtime_of_its_own(tmp_path):
    """Where Numba runs on OpenMP (asked for here), omppool binds to its own libgomp, not to the
    torch libgomp already loaded, and that runtime was started PASSIVE; the environment is as it
    was."""
    trace = tmp_path / "bindings"
    seen = probe("torch,kernels", NUMBA_THREADING_LAYER="omp", LD_DEBUG="bindings",
                 LD_DEBUG_OUTPUT=str(trace))
    assert seen["layer"] == "omp" and seen["prepared"] == "omp" and seen["environ_unchanged"]
    assert len(torch_gomp(seen["libs"])) == 1 and len(other_gomp(seen["libs"])) == 1
    bound = set()
    for path in tmp_path.iterdir():
        with open(path, errors="replace") as f:
            for line in f:
                if "omppool" in line.split(" to ")[0] and "`GOMP_parallel'" in line:
                    bound.add(line.split(" to ")[1].split(" [")[0])
    assert bound and not torch_gomp(bound), bound
    policy = subprocess.run([sys.executable, "-c", (
        "import ctypes, torch\n"
        "from caffe_port.kernels import threading_layer\n"
        f"lib = ctypes.CDLL({sorted(bound)[0]!r})\n"
        "getattr(lib, 'omp_display_env', None) and lib.omp_display_env(0)\n")],
        env=clean_env(NUMBA_THREADING_LAYER="omp"), capture_output=True, text=True, timeout=300)
    assert policy.returncode == 0, policy.stderr[-2000:]
    if "OMP_WAIT_POLICY" in policy.stderr:           # libgomp 11+ can say so
        assert "OMP_WAIT_POLICY = 'PASSIVE'" in policy.stderr


def test_a_layer_numba_started_first_is_left_alone():
    seen = probe("numba,kernels")
    assert seen["prepared"] == f"started:{seen['layer']}" and seen["environ_unchanged"]
