"""The network builders: valid ONNX, Caffe's layer geometry, and ORT / PyTorch-float64 agreement."""
import numpy as np
import onnx
import pytest

from caffe_port.models import builders
from caffe_port.models.builders import caffe_pool_geometry, logits_blob
from caffe_port.bench.torch_peer import TorchNet
from helpers.onnx_models import one_node_model, run_onnxruntime

# small versions: odd input sizes where Caffe's ceil pooling differs from floor
SMALL = {
    "caffenet": dict(width=0.125, input_size=95),
    "alexnet": dict(width=0.125, input_size=99),
    "zfnet": dict(width=0.125, input_size=101),
    "vgg16": dict(width=0.125, input_size=45),
    "inception_block": dict(width=0.25, input_size=23),
    "googlenet": dict(width=0.125, input_size=99),
    "residual_block": dict(width=0.25, input_size=15),
    "lenet": dict(input_size=28),
}
LOGIT_TOL = 1e-5    # ORT float32 vs float64: max |Δ| ≤ LOGIT_TOL · max(1, max |logit|)


def build(name, **overrides):
    return builders.BUILDERS[name](**{**SMALL[name], **overrides})


def input_batch(model, n=2, seed=0, scale=50.0):
    """A (n, C, H, W) batch at the scale of mean-subtracted pixels, so that LRN is not the identity."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = (n,) + tuple(d.dim_value for d in dims[1:])
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def run_with_blobs(model, x):
    """ORT forward returning every node output by name."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    produced = [o for node in model.graph.node for o in node.output]
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(o) for o in produced)
    return dict(zip(produced, run_onnxruntime(probe, {"data": x})))


@pytest.mark.parametrize("name", list(SMALL))
def test_valid_onnx_with_caffe_names(name):
    model = build(name)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 13
    (data,) = model.graph.input
    assert data.name == "data" and data.type.tensor_type.shape.dim[0].dim_param == "N"
    assert [o.name for o in model.graph.output] == ["prob"]
    assert logits_blob(model) == ("loss3/classifier" if name == "googlenet" else "fc8")
    for node in model.graph.node:
        assert node.name and node.output == [node.name]


@pytest.mark.parametrize("name", list(SMALL))
def test_runs_in_onnxruntime(name):
    model = build(name, num_classes=7)
    prob = run_onnxruntime(model, {"data": input_batch(model, n=3)})[0]
    assert prob.shape == (3, 7)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", list(SMALL))
def test_logits_match_torch_float64(name):
    model = build(name)
    x = input_batch(model)
    logits = logits_blob(model)
    ours = run_with_blobs(model, x)[logits]
    reference = TorchNet(model, dtype="float64")
    reference.forward(data=x)
    expected = reference.blob(logits)
    assert ours.shape == expected.shape == (2, 1000 if name != "lenet" else 10)
    assert np.abs(ours - expected).max() <= LOGIT_TOL * max(1.0, np.abs(expected).max())


def test_seeded():
    a, b, c = builders.lenet(seed=3), builders.lenet(seed=3), builders.lenet(seed=4)
    weights = lambda m: [onnx.numpy_helper.to_array(t) for t in m.graph.initializer]
    for wa, wb, wc in zip(weights(a), weights(b), weights(c)):
        np.testing.assert_array_equal(wa, wb)
        assert not np.array_equal(wa, wc)


def test_he_scaling():
    model = builders.vgg16(width=0.25, input_size=32)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    w = weights["conv3_2_W"]                          # 64 × 64 × 3 × 3 at width 0.25
    assert w.shape == (64, 64, 3, 3)
    assert abs(w.std() / np.sqrt(2.0 / (64 * 9)) - 1) < 0.02


# --- Caffe's pooling geometry ----------------------------------------------------------------------

def caffe_max_pool(x, kernel, stride, pad):
    """Caffe's PoolingLayer MAX forward, loop for loop (ceil-rounded size, clipped windows)."""
    n, c, h, w = x.shape
    pooled_h = int(np.ceil((h + 2 * pad - kernel) / stride)) + 1
    pooled_w = int(np.ceil((w + 2 * pad - kernel) / stride)) + 1
    if pad:
        pooled_h -= (pooled_h - 1) * stride >= h + pad
        pooled_w -= (pooled_w - 1) * stride >= w + pad
    top = np.full((n, c, pooled_h, pooled_w), -np.inf, dtype=x.dtype)
    for ph in range(pooled_h):
        for pw in range(pooled_w):
            hstart, wstart = ph * stride - pad, pw * stride - pad
            hend, wend = min(hstart + kernel, h), min(wstart + kernel, w)
            hstart, wstart = max(hstart, 0), max(wstart, 0)
            top[:, :, ph, pw] = x[:, :, hstart:hend, wstart:wend].max(axis=(2, 3))
    return top


@pytest.mark.parametrize("size,kernel,stride,pad", [
    (13, 3, 2, 0), (12, 3, 2, 0), (7, 2, 2, 0), (22, 3, 2, 0), (6, 3, 2, 1), (5, 2, 2, 1),
    (9, 3, 1, 1), (10, 3, 3, 1), (8, 5, 3, 2),
])
def test_pool_geometry_reproduces_caffe(size, kernel, stride, pad):
    out, begin, end = caffe_pool_geometry(size, kernel, stride, pad)
    x = np.random.default_rng(size).standard_normal((2, 3, size, size + 1)).astype(np.float32)
    out_w, _, end_w = caffe_pool_geometry(size + 1, kernel, stride, pad)
    model = one_node_model("MaxPool", [("x", x)], dict(kernel_shape=[kernel, kernel], strides=[stride, stride],
                                                       pads=[begin, begin, end, end_w]), opset=13)
    got = run_onnxruntime(model, {"x": x})[0]
    expected = caffe_max_pool(x, kernel, stride, pad)
    assert got.shape == expected.shape == (2, 3, out, out_w)
    np.testing.assert_array_equal(got, expected)


def test_clipped_last_window():
    # size 5, kernel 2, stride 2, pad 1: ceil gives 4 windows, but the 4th would start in the padding
    assert caffe_pool_geometry(5, 2, 2, 1) == (3, 1, 0)
    assert caffe_pool_geometry(13, 3, 2, 0) == (6, 0, 0)
    assert caffe_pool_geometry(22, 3, 2, 0) == (11, 0, 1)     # floor would give 10


def spatial_sizes(model, x, names):
    blobs = run_with_blobs(model, x)
    return [blobs[n].shape[2:] for n in names]


def test_caffenet_sizes():
    pools = ["conv1", "pool1", "pool2", "pool5"]
    full = builders.caffenet(width=1 / 32, input_size=227)
    assert spatial_sizes(full, input_batch(full, n=1), pools) == [(55, 55), (27, 27), (13, 13), (6, 6)]
    odd = builders.caffenet(width=1 / 32, input_size=95)      # conv1 22: ceil pooling → 11, 5, 2
    assert spatial_sizes(odd, input_batch(odd, n=1), pools) == [(22, 22), (11, 11), (5, 5), (2, 2)]
    blobs = run_with_blobs(full, input_batch(full, n=1))
    assert blobs["pool5_flat"].shape == (1, 8 * 36)
    assert blobs["conv2"].shape[1] == 8 and blobs["fc6"].shape == (1, 128)


def test_vgg16_odd_sizes():
    model = builders.vgg16(width=1 / 16, input_size=45)
    names = [f"pool{i}" for i in range(1, 6)]
    assert spatial_sizes(model, input_batch(model, n=1), names) == [(23, 23), (12, 12), (6, 6), (3, 3), (2, 2)]


def test_googlenet_sizes():
    model = builders.googlenet(width=1 / 16, input_size=224)
    names = ["conv1/7x7_s2", "pool1/3x3_s2", "pool2/3x3_s2", "pool3/3x3_s2", "pool4/3x3_s2", "pool5/7x7_s1"]
    blobs = run_with_blobs(model, input_batch(model, n=1))
    assert [blobs[n].shape[2:] for n in names] == [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7), (1, 1)]
    assert blobs["inception_5b/output"].shape[1] == 24 + 24 + 8 + 8    # 384 | 384 | 128 | 128 at 1/16
    odd = builders.googlenet(width=1 / 16, input_size=99)
    assert spatial_sizes(odd, input_batch(odd, n=1), names) == [(50, 50), (25, 25), (12, 12), (6, 6), (3, 3),
                                                                 (1, 1)]


def test_residual_block_batchnorm_is_not_trivial():
    model = builders.residual_block(width=0.25)
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("BatchNormalization") == 3 and "Add" in ops
    for p in ("scale", "bias", "mean", "var"):
        v = weights[f"bn2a_branch2b_{p}"]
        assert np.ptp(v) > 0.1 and not np.allclose(v, {"scale": 1, "var": 1}.get(p, 0))


def test_lenet_without_relus():
    ops = {n.op_type for n in builders.lenet(relu=False).graph.node}
    assert ops == {"Conv", "MaxPool", "Flatten", "Gemm", "Softmax"}
