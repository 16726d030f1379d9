"""The CUDA backend (caffe_port/cuda_backend.py): whole nets through the one walk with device
arrays equal the CPU backend.

No GPU is needed: ``test_cuda_tests_under_the_simulator`` runs this file and tests/kernels/cuda in
a subprocess under Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1 must be set before numba is
imported). There the Net runs its forward in ONNX Runtime's CPU provider through the same IOBinding
code the CUDA provider uses (outputs bound to "cpu" instead of "cuda"), keeps the tensors on the
simulated device, and walks back with kernels.cuda. What the simulator cannot show: ONNX Runtime
writing into GPU memory, the OrtValue → device array wrap of a CUDA buffer, CuPy/cuBLAS, and speed.

Tolerance of the whole-net comparisons: rtol 1e-4 with atol 1e-5 of the largest |entry| — float32
sums in other orders (the tiled matmul against BLAS), compounded over a few layers.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from caffe_port import Net
from caffe_port.errors import DeviceError
from caffe_port.onnx_util import initializer, make_model, tensor_value_info
from helpers.exporter_graphs import pp_lcnet_like

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
ROOT = Path(__file__).resolve().parents[2]
on_simulator = pytest.mark.skipif(not SIMULATED, reason="runs in the simulator subprocess")
RULES = ["backprop", "deconvnet", "guided"]

if SIMULATED:
    from helpers import cuda_simulator as simulator
    simulator.restrict()
    sys.setswitchinterval(1e-5)      # see tests/kernels/cuda/conftest.py


@pytest.fixture
def fresh_cuda_lookup():
    """The op → CUDA kernel lookup is cached per process: a test that patches a kernel file sees
    its patch, and the tests after it see the file again."""
    from caffe_port.kernels import registry
    registry._cuda_function.cache_clear()
    yield
    registry._cuda_function.cache_clear()


def test_cuda_tests_under_the_simulator():
    """Every CUDA kernel test and this file's net tests, in a process with the simulator on."""
    if SIMULATED:
        pytest.skip("already in the simulator process")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/kernels/cuda", "tests/caffe_port/test_gpu_path.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
    assert proc.returncode == 0, tail
    assert " passed" in tail and "failed" not in tail, tail


def test_cuda_backward_without_a_gpu_is_refused():
    if SIMULATED:
        pytest.skip("the simulator is a device")
    with pytest.raises(DeviceError, match="backward_device='cuda'.*backward_device='cpu'"):
        Net(branchy_net(), device="cpu", backward_device="cuda")
    with pytest.raises(DeviceError, match="unknown backward_device"):
        Net(branchy_net(), device="cpu", backward_device="gpu")
    assert Net(branchy_net(), device="cpu").backend.name == "cpu"   # the default follows the runtime


# --- nets ---------------------------------------------------------------------------------------------

def _w(rng, *shape, scale=0.4):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def branchy_net(seed=0):
    """data (N,3,7,6) → conv1 → relu1 → pool1 (3×3 s2, overlapping) → lrn1 → two branches
    (conv 1×1 → leaky; grouped conv 3×3 → clip) → concat → global average pool → flatten → fc (Gemm)
    → prob (Softmax)."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["data", "w1", "b1"], ["conv1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("LRN", ["pool1"], ["lrn1"], name="lrn1", size=3, alpha=0.1, beta=0.75),
        helper.make_node("Conv", ["lrn1", "wa"], ["conv_a"], name="conv_a"),
        helper.make_node("LeakyRelu", ["conv_a"], ["leaky_a"], name="leaky_a", alpha=0.1),
        helper.make_node("Conv", ["lrn1", "wb", "bb"], ["conv_b"], name="conv_b", group=2, pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["conv_b", "lo", "hi"], ["clip_b"], name="clip_b"),
        helper.make_node("Concat", ["leaky_a", "clip_b"], ["cat"], name="cat", axis=1),
        helper.make_node("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc"], name="fc", transB=1),
        helper.make_node("Softmax", ["fc"], ["prob"], name="prob", axis=1),
    ]
    inits = [initializer("w1", _w(rng, 4, 3, 3, 3)), initializer("b1", _w(rng, 4, scale=0.1)),
             initializer("wa", _w(rng, 3, 4, 1, 1)), initializer("wb", _w(rng, 4, 2, 3, 3)),
             initializer("bb", _w(rng, 4, scale=0.1)), initializer("lo", np.array(0.0, np.float32)),
             initializer("hi", np.array(0.6, np.float32)), initializer("fc_w", _w(rng, 5, 7)),
             initializer("fc_b", _w(rng, 5, scale=0.1))]
    graph = helper.make_graph(nodes, "branchy", [tensor_value_info("data", ("N", 3, 7, 6))],
                              [helper.make_empty_tensor_value_info("prob")], initializer=inits)
    return make_model(graph, 13)


def residual_net(seed=1):
    """data (N,3,6,5) → conv → batchnorm → relu → depthwise conv → add (residual) → average pool
    (ceil, pads) → transpose → reshape → matmul → sigmoid; a Pad (reflect) and Mul on a side branch."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["data", "w1"], ["conv1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv1", "s", "b", "m", "v"], ["bn1"], name="bn1"),
        helper.make_node("Relu", ["bn1"], ["relu1"], name="relu1"),
        helper.make_node("Conv", ["relu1", "wd"], ["dw"], name="dw", group=4, pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["dw", "relu1"], ["res"], name="res"),
        helper.make_node("Pad", ["res", "pads"], ["padded"], name="pad", mode="reflect"),
        helper.make_node("Mul", ["padded", "gate"], ["gated"], name="gate"),
        helper.make_node("AveragePool", ["gated"], ["pool"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=0),
        helper.make_node("Transpose", ["pool"], ["nhwc"], name="nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "shape"], ["rows"], name="rows"),
        helper.make_node("MatMul", ["rows", "proj"], ["proj_out"], name="proj_out"),
        helper.make_node("Sigmoid", ["proj_out"], ["out"], name="out"),
    ]
    inits = [initializer("w1", _w(rng, 4, 3, 3, 3)), initializer("s", _w(rng, 4, scale=1.0)),
             initializer("b", _w(rng, 4, scale=0.1)), initializer("m", _w(rng, 4, scale=0.1)),
             initializer("v", np.abs(_w(rng, 4)) + 0.5), initializer("wd", _w(rng, 4, 1, 3, 3)),
             initializer("pads", np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64)),
             initializer("gate", _w(rng, 4, 1, 1, scale=1.0)),
             initializer("shape", np.array([0, -1, 4], np.int64)), initializer("proj", _w(rng, 4, 3))]
    graph = helper.make_graph(nodes, "residual", [tensor_value_info("data", ("N", 3, 6, 5))],
                              [helper.make_empty_tensor_value_info("out")], initializer=inits)
    return make_model(graph, 13)


def close(gpu, cpu):
    assert gpu.shape == cpu.shape and gpu.dtype == cpu.dtype
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5 * max(1e-30, float(np.abs(cpu).max())))


def pair(model, **kw):
    return (Net(model, device="cpu", backward_device="cpu", **kw),
            Net(model, device="cpu", backward_device="cuda", **kw))


# --- whole nets under the simulator -------------------------------------------------------------------

@on_simulator
@pytest.mark.parametrize("rule", RULES)
def test_branchy_net_equals_cpu(rule):
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 6)).astype(np.float32)
    cpu, gpu = pair(branchy_net(), keep="all")
    assert gpu.backend.name == "cuda" and cpu.backend.name == "cpu"
    for net in (cpu, gpu):
        net.forward(data=x)
    np.testing.assert_array_equal(gpu.blobs["prob"].data, cpu.blobs["prob"].data)
    onehots = np.zeros((3, 2, 5), np.float32)                  # K = 3 classes at once
    onehots[np.arange(3), :, [0, 2, 4]] = 1
    results = [net.backward(prob=onehots, rule=rule) for net in (cpu, gpu)]   # through the Softmax
    assert np.abs(results[0]["data"]).max() > 0
    close(results[1]["data"], results[0]["data"])
    for blob in ("lrn1", "pool1", "relu1", "conv1", "cat"):   # keep="all": every diff comes back
        close(gpu.blobs[blob].diff, cpu.blobs[blob].diff)
    assert not gpu.backend.host_fallbacks


@on_simulator
@pytest.mark.parametrize("rule", RULES)
def test_residual_net_equals_cpu(rule):
    x = np.random.default_rng(3).standard_normal((2, 3, 6, 5)).astype(np.float32)
    cpu, gpu = pair(residual_net())
    g = np.random.default_rng(4).standard_normal((2, 2, 16, 3)).astype(np.float32)
    results = []
    for net in (cpu, gpu):
        net.forward(data=x)
        results.append(net.backward(out=g, rule=rule, diffs=["relu1"]))
    assert np.abs(results[0]["data"]).max() > 0
    for name in ("data", "relu1"):
        close(results[1][name], results[0][name])


@on_simulator
def test_kept_tensors_stay_on_the_device():
    """After a forward only the output comes back to the host; the tensors the backward reads stay
    on the (simulated) device, and reading one as a blob copies it back."""
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 6)).astype(np.float32)
    cpu, gpu = pair(branchy_net())
    cpu.forward(data=x)
    gpu.forward(data=x)
    assert set(gpu._data) == {"data", "prob"}
    assert {"relu1", "lrn1", "prob"} <= set(gpu.backend.kept)
    np.testing.assert_array_equal(gpu.blobs["lrn1"].data, cpu.blobs["lrn1"].data)
    assert gpu.blobs["conv_b"].shape == cpu.blobs["conv_b"].shape


@on_simulator
def test_net_surgery_reaches_the_device_weights():
    x = np.random.default_rng(6).standard_normal((1, 3, 7, 6)).astype(np.float32)
    cpu, gpu = pair(branchy_net())
    for net in (cpu, gpu):
        net.forward(data=x)
        net.backward(fc=np.eye(5, dtype=np.float32)[1][None])
        net.params["fc"][0].data[...] *= -2          # the weight the backward reads
        net.forward(data=x)
    results = [net.backward(fc=np.eye(5, dtype=np.float32)[1][None])["data"] for net in (cpu, gpu)]
    assert np.abs(results[0]).max() > 0
    close(results[1], results[0])


@on_simulator
def test_partial_forward_and_debug_info():
    """forward(start=…) recomputes part of the net on the device; debug_info sees host copies."""
    x = np.random.default_rng(7).standard_normal((2, 3, 7, 6)).astype(np.float32)
    cpu, gpu = pair(branchy_net(), debug_info=True)
    results = []
    for net in (cpu, gpu):
        net.forward(data=x)
        net.blobs["lrn1"].data[...] *= 0.5
        net.forward(start="conv_a")
        results.append(net.backward(fc=np.ones((2, 5), np.float32), rule="guided"))
    assert np.abs(results[0]["data"]).max() > 0
    close(results[1]["data"], results[0]["data"])
    records = [[r for r in net.trace if r["phase"] == "backward"] for net in (cpu, gpu)]
    assert [r["layer"] for r in records[1]] == [r["layer"] for r in records[0]]
    for a, b in zip(records[1], records[0]):
        assert a.get("pass_fraction") == b.get("pass_fraction")
        assert a["mean_abs"] == pytest.approx(b["mean_abs"], rel=1e-4)


@on_simulator
def test_op_without_cuda_kernel_runs_on_the_cpu(monkeypatch, fresh_cuda_lookup):
    from caffe_port.kernels.cuda import lrn
    monkeypatch.delattr(lrn, "lrn_backward")
    x = np.random.default_rng(8).standard_normal((2, 3, 7, 6)).astype(np.float32)
    cpu, gpu = pair(branchy_net())
    results = []
    for net in (cpu, gpu):
        net.forward(data=x)
        results.append(net.backward(fc=np.ones((2, 5), np.float32)))
    assert np.abs(results[0]["data"]).max() > 0
    close(results[1]["data"], results[0]["data"])
    assert gpu.backend.host_fallbacks == {"LRN": 1}


@on_simulator
@pytest.mark.parametrize("rule", RULES)
def test_relu_runs_in_place_on_the_device(rule, monkeypatch, fresh_cuda_lookup):
    """The walk offers in_place to the device ReLU where it holds the top diff alone (as on the
    CPU), the kernel writes over it, and the result still equals the CPU backend's."""
    from caffe_port.kernels.cuda import relu
    seen = []
    original = relu.relu_backward

    def spy(top_diff, bottom_data, top_data, attrs, *, rule="backprop", in_place=False):
        seen.append(in_place)
        result = original(top_diff, bottom_data, top_data, attrs, rule=rule, in_place=in_place)
        assert (result[0] is top_diff[0]) == in_place
        return result

    monkeypatch.setattr(relu, "relu_backward", spy)
    x = np.random.default_rng(9).standard_normal((2, 3, 7, 6)).astype(np.float32)
    cpu, gpu = pair(branchy_net())
    results = []
    for net in (cpu, gpu):
        net.forward(data=x)
        results.append(net.backward(fc=np.ones((2, 5), np.float32), rule=rule))
    assert True in seen
    close(results[1]["data"], results[0]["data"])


@on_simulator
def test_exporters_ops_without_cuda_kernels_run_on_the_cpu():
    """The ops added for today's exporters have CPU kernels only: on the CUDA backend they run on
    host copies (HardSwish and HardSigmoid of a PP-LCNet-shaped net here), and the walk still
    equals the CPU backend's."""
    x = np.random.default_rng(9).standard_normal((2, 3, 16, 16)).astype(np.float32)
    cpu, gpu = pair(pp_lcnet_like(size=16))
    onehot = np.zeros((2, 6), np.float32)
    onehot[:, 2] = 1
    results = []
    for net in (cpu, gpu):
        net.forward(x=x)
        results.append(net.backward(start=net.score_blob, **{net.score_blob: onehot}, rule="guided"))
    assert np.abs(results[0]["x"]).max() > 0
    close(results[1]["x"], results[0]["x"])
    assert {"HardSwish", "HardSigmoid"} <= set(gpu.backend.host_fallbacks)
