"""The PyTorch peer: the same logits as ONNX Runtime on the embedded model the benchmark runs,
input gradients by hand on a linear layer, stacked diffs, and refusals in one line.

Tolerances: logits max |Δ| ≤ 1e-5 · max(1, max |logit|) (float32 both, different summation
orders: measured 7e-7); the linear layer's gradient in float64 to rtol 1e-12 (one matmul).
"""
import numpy as np
import pytest

from caffe_port.bench.torch_peer import TorchNet
from caffe_port.errors import ModelError, UnsupportedOpError
from caffe_port.onnx_import import load_model
from helpers.onnx_models import one_node_model, run_onnxruntime

pytest.importorskip("torch")


def test_logits_of_the_embedded_model_match_onnxruntime():
    model = load_model("efficientnet-lite0")
    peer = TorchNet(model)
    name = peer.input_names[0]
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    expected = dict(zip(peer.output_names, run_onnxruntime(model, {name: x})))
    got = peer.forward(**{name: x})
    for output in peer.output_names:
        scale = max(1.0, float(np.abs(expected[output]).max()))
        assert np.abs(got[output] - expected[output]).max() <= 1e-5 * scale, output


def test_input_gradient_of_a_linear_layer_by_hand():
    """y = x Wᵀ: dL/dx = g W, for one top diff (N, M) and for a stack of three (3, N, M)."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((4, 5)), rng.standard_normal((3, 5))
    model = one_node_model("Gemm", [("x", x.astype(np.float32)), ("w", w.astype(np.float32))],
                           dict(transB=1), constants=["w"], opset=13)
    peer = TorchNet(model, dtype="float64")
    g = rng.standard_normal((4, 3))
    w32 = w.astype(np.float32).astype(np.float64)          # the graph holds float32 weights
    np.testing.assert_allclose(peer.input_grad(x, "y0", g), g @ w32, rtol=1e-12)
    stacked = rng.standard_normal((3, 4, 3))
    peer.forward(x=x)
    got = peer.backward(y0=stacked)["x"]
    assert got.shape == (3, 4, 5)
    np.testing.assert_allclose(got, stacked @ w32, rtol=1e-12)


def test_refusals():
    x = np.zeros((1, 2), np.float32)
    with pytest.raises(UnsupportedOpError, match="Erf"):
        TorchNet(one_node_model("Erf", [("x", x)], opset=13))
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        TorchNet(b"\x00not a model")
    peer = TorchNet(one_node_model("Relu", [("x", x)], opset=13))
    with pytest.raises(RuntimeError, match="call forward"):
        peer.backward(y0=x)
    with pytest.raises(KeyError, match="'z' is not an input"):
        peer.forward(z=x)
    peer.forward(x=x)
    with pytest.raises(ValueError, match="top diff for 'y0' has shape"):
        peer.backward(y0=np.zeros((1, 3), np.float32))


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([-100, 1], [100, -1], [2, 3], [1, 2]),          # clamped to the axis, counted from the end
    ([-100, 100], [0, -100], [2, 3], [-1, -2]),      # negative steps: a start past either end clamps
    ([5, -1], [-100, 0], [2, 3], [-3, -1]),          # to the axis, an end before the first runs past it
])
def test_slice_clamps_as_onnxruntime(starts, ends, axes, steps):
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 6)).astype(np.float32)
    inputs = [("x", x)] + [(name, np.array(v, np.int64)) for name, v in
                           zip(("starts", "ends", "axes", "steps"), (starts, ends, axes, steps))]
    model = one_node_model("Slice", inputs, constants=["starts", "ends", "axes", "steps"], opset=13)
    expected = run_onnxruntime(model, {"x": x})[0]
    got = TorchNet(model).forward(x=x)["y0"]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def _branchy_peer_inputs():
    from caffe_port.models import builders
    model = builders.BUILDERS["googlenet"](width=0.125, input_size=64)
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 64)).astype(np.float32)
    return model, x


def test_the_device_holds_every_weight():
    """device="cpu" (the default) puts the weights there and returns numpy; the GPU peer is the
    same code with device="cuda" (test_cuda_peer_equals_the_cpu_peer, on a machine with one)."""
    model, x = _branchy_peer_inputs()
    peer = TorchNet(model, device="cpu")
    assert {str(t.device) for t in peer.graph.params.values()} == {"cpu"}
    out = peer.forward(data=x)
    assert all(isinstance(v, np.ndarray) for v in out.values())


def test_cuda_peer_equals_the_cpu_peer():
    """GoogLeNet's parts (inception concats, max and average pools, LRN) on CUDA: the same logits
    and input gradient as on the CPU, to float32 rounding (cuDNN's sums: rtol 1e-3 of the largest)."""
    import torch
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA build of torch and a GPU (tools/gpu_check.sh runs it there)")
    model, x = _branchy_peer_inputs()
    cpu, gpu = TorchNet(model), TorchNet(model, device="cuda")
    score = cpu.output_names[0]
    out_cpu, out_gpu = cpu.forward(data=x)[score], gpu.forward(data=x)[score]
    np.testing.assert_allclose(out_gpu, out_cpu, rtol=0, atol=1e-3 * np.abs(out_cpu).max())
    g = np.zeros_like(out_cpu)
    g[:, 3] = 1
    grad_cpu, grad_gpu = cpu.backward(**{score: g})["data"], gpu.backward(**{score: g})["data"]
    np.testing.assert_allclose(grad_gpu, grad_cpu, rtol=0, atol=1e-3 * np.abs(grad_cpu).max())
