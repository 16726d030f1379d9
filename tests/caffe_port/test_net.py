"""caffe_port.Net: pycaffe's forward/backward semantics over an ONNX graph."""
import warnings

import numpy as np
import pytest
from onnx import helper

from caffe_port import Net
from caffe_port.errors import BlobError, CaffePortError, InputError, ShapeError
from caffe_port.onnx_util import initializer, make_model, tensor_value_info

RNG = np.random.default_rng(0)


def small_classifier(classes=5, softmax=True, seed=0):
    """data(N,3,8,7) → conv1 → relu1 → pool1 → fc (Gemm) → [prob]. Names as in a Caffe deploy."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.4).astype(np.float32)
    b = (rng.standard_normal(4) * 0.1).astype(np.float32)
    fc_w = (rng.standard_normal((classes, 4 * 4 * 3)) * 0.3).astype(np.float32)
    fc_b = (rng.standard_normal(classes) * 0.1).astype(np.float32)
    nodes = [helper.make_node("Conv", ["data", "conv1_w", "conv1_b"], ["conv1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
             helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["pool1"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "fc8_w", "fc8_b"], ["fc8"], name="fc8", transB=1)]
    outputs = ["fc8"]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["fc8"], ["prob"], name="prob", axis=1))
        outputs = ["prob"]
    inits = [initializer("conv1_w", w), initializer("conv1_b", b), initializer("fc8_w", fc_w),
             initializer("fc8_b", fc_b)]
    graph = helper.make_graph(nodes, "small", [tensor_value_info("data", ("N", 3, 8, 7))],
                              [helper.make_empty_tensor_value_info(o) for o in outputs], initializer=inits)
    return make_model(graph, 13)


def numeric_input_grad(net_fn, x, g, eps=1e-2):
    """Central differences of sum(g * f(x)) in float32 — a coarse, independent check."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = float(np.sum(g * net_fn(x)))
        flat[i] = old - eps
        minus = float(np.sum(g * net_fn(x)))
        flat[i] = old
        grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


@pytest.fixture
def x():
    return RNG.standard_normal((2, 3, 8, 7)).astype(np.float32)


def test_blobs_in_forward_order_and_params(x):
    net = Net(small_classifier(), device="cpu")
    assert list(net.blobs) == ["data", "conv1", "relu1", "pool1", "flat", "fc8", "prob"]
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    assert [p.data.shape for p in net.params["conv1"]] == [(4, 3, 3, 3), (4,)]
    assert [p.data.shape for p in net.params["fc8"]] == [(5, 48), (5,)]
    net.forward(data=x)
    assert net.blobs["pool1"].data.shape == (2, 4, 4, 3)
    assert net.blobs["conv1"].shape == (2, 4, 8, 7) and net.blobs["conv1"].count == 2 * 4 * 8 * 7


def test_seed_004_recipe_inject_at_fc8(x):
    """net.blobs['fc8'].diff[...] = onehot; net.backward(start='fc8') — and a coarse numeric check."""
    net = Net(small_classifier(), device="cpu")
    net.forward(data=x)
    onehot = np.zeros((2, 5), np.float32)
    onehot[:, 3] = 1
    net.blobs["fc8"].diff[...] = onehot
    grad = net.backward(start="fc8")["data"]
    plain = Net(small_classifier(softmax=False), device="cpu")
    numeric = numeric_input_grad(lambda z: plain.forward(data=z)["fc8"], x.copy(), onehot)
    assert grad.shape == x.shape
    np.testing.assert_allclose(grad, numeric, atol=2e-2, rtol=2e-2)   # float32 steps of 1e-2


def test_backward_without_start_through_softmax_is_zero_and_warns(x):
    """Real Caffe: prob's (zero) diff overwrites fc8's, so the data diff is all zeros."""
    net = Net(small_classifier(), device="cpu")
    net.forward(data=x)
    net.blobs["fc8"].diff[0, 2] = 1
    with pytest.warns(UserWarning, match="start='fc8'"):
        grad = net.backward()["data"]
    assert not np.any(grad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # warned once only
        net.backward()


def test_seed_000_recipe_diff_at_softmax_output(x):
    net = Net(small_classifier(), device="cpu")
    prob = net.forward(data=x)["prob"]
    label = np.zeros((2, 5, 1, 1), np.float32)   # seed 000 passes (1, 1000, 1, 1) for a (1, 1000) blob
    label[:, 1] = 1
    grad = net.backward(**{net.outputs[0]: label})["data"]
    fc8_diff = prob * (label.reshape(2, 5) - np.sum(label.reshape(2, 5) * prob, axis=1, keepdims=True))
    expected = Net(small_classifier(softmax=False), device="cpu")
    expected.forward(data=x)
    np.testing.assert_allclose(grad, expected.backward(fc8=fc8_diff)["data"], rtol=1e-4, atol=1e-7)


def test_keyword_diff_on_inner_blob_starts_there(x):
    net = Net(small_classifier(), device="cpu")
    net.forward(data=x)
    g = RNG.standard_normal((2, 5)).astype(np.float32)
    a = net.backward(fc8=g)["data"]
    net.blobs["fc8"].diff[...] = g
    b = net.backward(start="fc8")["data"]
    np.testing.assert_array_equal(a, b)


def test_stacked_diffs_equal_separate_passes(x):
    net = Net(small_classifier(softmax=False), device="cpu")
    net.forward(data=x)
    stack = RNG.standard_normal((3, 2, 5)).astype(np.float32)
    for rule in ("backprop", "deconvnet", "guided"):
        stacked = net.backward(fc8=stack, rule=rule)["data"]
        assert stacked.shape == (3,) + x.shape
        for k in range(3):
            single = net.backward(fc8=stack[k], rule=rule)["data"]
            np.testing.assert_allclose(stacked[k], single, rtol=1e-6, atol=1e-7)


def test_diffs_accumulate_where_a_blob_feeds_two_layers():
    """y = relu(x) + relu(x)*w: the diff at relu sums both paths."""
    w = np.float32(3.0)
    nodes = [helper.make_node("Relu", ["data"], ["r"]),
             helper.make_node("Mul", ["r", "w"], ["rw"]),
             helper.make_node("Add", ["r", "rw"], ["out"])]
    graph = helper.make_graph(nodes, "g", [tensor_value_info("data", ("N", 6))],
                              [helper.make_empty_tensor_value_info("out")],
                              initializer=[initializer("w", np.array(w))])
    net = Net(make_model(graph, 13), device="cpu")
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    net.forward(data=x)
    grad = net.backward(out=np.ones((2, 6), np.float32), diffs=["r"])
    np.testing.assert_allclose(grad["r"], np.full((2, 6), 1 + w))
    np.testing.assert_allclose(grad["data"], (1 + w) * (x > 0))


def test_relu_in_place_never_writes_a_diff_someone_else_holds():
    """r1 = relu(x), r2 = relu(-x), one diff array injected at both tops: neither ReLU may write
    its bottom diff over it (Caffe's in-place ReLU is done only where the diff is private), and
    the caller's array stays as it was."""
    from caffe_port.walker import walk
    nodes = [helper.make_node("Mul", ["data", "plus"], ["d1"]),
             helper.make_node("Mul", ["data", "minus"], ["d2"]),
             helper.make_node("Relu", ["d1"], ["r1"]),
             helper.make_node("Relu", ["d2"], ["r2"]),
             helper.make_node("Add", ["r1", "r2"], ["out"])]
    graph = helper.make_graph(nodes, "g", [tensor_value_info("data", ("N", 6))],
                              [helper.make_empty_tensor_value_info("out")],
                              initializer=[initializer("plus", np.array(1, np.float32)),
                                           initializer("minus", np.array(-1, np.float32))])
    net = Net(make_model(graph, 13), device="cpu")
    x = RNG.standard_normal((2, 6)).astype(np.float32)
    g = RNG.standard_normal((1, 2, 6)).astype(np.float32)
    g_before = g.copy()
    net.forward(data=x)
    data = {"data": x, "r1": np.maximum(x, 0), "r2": np.maximum(-x, 0)}
    relus = [n for n in net.graph.nodes if n.op_type == "Relu"]
    grad = walk(net.graph, relus, net.backend, data, {"r1": g, "r2": g}, net._shapes, keep={"d1", "d2"})
    np.testing.assert_array_equal(grad["d1"], g * (x > 0))
    np.testing.assert_array_equal(grad["d2"], g * (x < 0))
    np.testing.assert_array_equal(g, g_before)
    whole = net.backward(out=g[0])["data"]                    # and through Net, from the top
    np.testing.assert_allclose(whole, g[0] * (x > 0) - g[0] * (x < 0), rtol=1e-6)
    np.testing.assert_array_equal(g, g_before)


def test_in_place_walk_equals_the_allocating_one(x):
    from caffe_port.walker import walk
    net = Net(small_classifier(softmax=False), device="cpu")
    net.forward(data=x)
    g = RNG.standard_normal((3,) + tuple(net.blobs["fc8"].shape)).astype(np.float32)
    data = {name: net.blobs[name].data for name in net.graph.kept_tensors() if name in net.blobs}
    data["data"] = x
    runs = [walk(net.graph, net.graph.nodes, net.backend, data, {"fc8": g.copy()}, net._shapes, keep={"data"},
                 in_place=flag)["data"] for flag in (True, False)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_requested_diffs_and_unkept_ones(x):
    net = Net(small_classifier(softmax=False), device="cpu")
    net.forward(data=x)
    out = net.backward(fc8=np.ones((2, 5), np.float32), diffs=["pool1"])
    assert set(out) == {"data", "pool1"} and out["pool1"].shape == (2, 4, 4, 3)
    with pytest.raises(BlobError, match="diffs=\\['conv1'\\]"):
        net.blobs["conv1"].diff
    full = Net(small_classifier(softmax=False), device="cpu", keep="all")
    full.forward(data=x)
    full.backward(fc8=np.ones((2, 5), np.float32))
    np.testing.assert_allclose(full.blobs["pool1"].diff, out["pool1"], rtol=1e-6)
    # conv1's diff is relu1's diff masked by the ReLU
    np.testing.assert_allclose(full.blobs["conv1"].diff, full.blobs["relu1"].diff * (full.blobs["conv1"].data > 0))


def test_unkept_blob_data_is_recomputed(x):
    net = Net(small_classifier(), device="cpu")
    net.forward(data=x)
    assert "conv1" not in net._data   # the lean forward keeps relu1, not conv1
    conv1 = net.blobs["conv1"].data
    np.testing.assert_allclose(np.maximum(conv1, 0), net.blobs["relu1"].data, rtol=1e-6)


def test_forward_start_and_end(x):
    net = Net(small_classifier(softmax=False), device="cpu")
    held = net.forward(data=x)["fc8"]
    full = held.copy()
    upto = net.forward(data=x, end="pool1")
    assert list(upto) == ["pool1"]
    net.blobs["pool1"].data[...] *= 0
    zeroed = net.forward(start="flatten")["fc8"]
    np.testing.assert_allclose(zeroed, np.broadcast_to(net.params["fc8"][1].data, (2, 5)), rtol=1e-6)
    assert not np.allclose(zeroed, full)
    # as in Caffe, the returned array is the blob's memory: the one held sees the later forward
    assert zeroed is held


def test_net_surgery_on_params_takes_effect(x):
    """Seed 004 transplants fc8 rows between nets: writes into params must reach the forward."""
    net = Net(small_classifier(softmax=False), device="cpu")
    before = net.forward(data=x)["fc8"]
    net.params["fc8"][0].data[2] = 0
    net.params["fc8"][1].data[2] = 7
    after = net.forward(data=x)["fc8"]
    np.testing.assert_allclose(after[:, 2], 7, rtol=1e-6)
    np.testing.assert_allclose(after[:, [0, 1, 3, 4]], before[:, [0, 1, 3, 4]], rtol=1e-6)
    g = np.zeros((2, 5), np.float32)
    g[:, 2] = 1
    assert not np.any(net.backward(fc8=g)["data"])   # the row is zero now


def test_bad_inputs_fail_clearly(x):
    net = Net(small_classifier(), device="cpu")
    # before any forward Caffe's blobs hold zeros and a backward reads them; so here
    assert net.backward(fc8=np.ones((1, 5), np.float32))["data"].shape == (1, 3, 8, 7)
    with pytest.raises(ShapeError, match="expects shape \\(N, 3, 8, 7\\)"):
        net.forward(data=np.zeros((1, 3, 9, 7), np.float32))
    with pytest.raises(BlobError, match="not an input"):
        net.forward(image=x)
    net.forward(data=x)
    with pytest.raises(ShapeError, match="does not fit blob 'fc8'"):
        net.backward(fc8=np.ones((2, 4), np.float32))
    with pytest.raises(BlobError, match="unknown blob 'fc9'.*fc8"):
        net.backward(fc9=np.ones((2, 5), np.float32))
    with pytest.raises(BlobError, match="unknown blob"):
        net.blobs["nope"]
    with pytest.raises(BlobError, match="unknown layer"):
        net.backward(start="nope")
    with pytest.raises(InputError, match="rule"):
        net.backward(fc8=np.ones((2, 5), np.float32), rule="guidedd")


def test_hard_coded_batch_runs_one_image_at_a_time(x):
    """Exports that reshape to [1, -1] still serve a batch (one image at a time)."""
    nodes = [helper.make_node("Relu", ["data"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["flat"])]
    graph = helper.make_graph(nodes, "g", [tensor_value_info("data", ("N", 3, 8, 7))],
                              [helper.make_empty_tensor_value_info("flat")],
                              initializer=[initializer("shape", np.array([1, -1], np.int64))])
    net = Net(make_model(graph, 13), device="cpu")
    out = net.forward(data=x)["flat"]
    assert out.shape == (2, 168)
    np.testing.assert_array_equal(out, np.maximum(x, 0).reshape(2, -1))
    grad = net.backward(flat=np.ones_like(out))["data"]
    np.testing.assert_array_equal(grad, (x > 0).astype(np.float32))


def test_debug_info_trace_equals_blob_statistics(x, caplog):
    net = Net(small_classifier(), device="cpu", debug_info=True, keep="all")
    with caplog.at_level("INFO", logger="caffe_port.debug_info"):
        net.forward(data=x)
        net.backward(start="fc8", fc8=np.eye(5, dtype=np.float32)[[1, 2]], rule="guided")
    forward = [r for r in net.trace if r["phase"] == "forward"]
    assert [r["blob"] for r in forward] == ["conv1", "relu1", "pool1", "flat", "fc8", "prob"]
    for r in forward:
        assert r["mean_abs"] == pytest.approx(float(np.abs(net.blobs[r["blob"]].data).mean()), rel=1e-6)
    backward = {(r["layer"], r["blob"]): r for r in net.trace if r["phase"] == "backward"}
    for (layer, blob), r in backward.items():
        assert r["mean_abs"] == pytest.approx(float(np.abs(net.blobs[blob].diff).mean()), rel=1e-6)
    relu = backward[("relu1", "conv1")]
    top, bottom = net.blobs["relu1"].diff, net.blobs["conv1"].diff
    assert relu["pass_fraction"] == pytest.approx(np.count_nonzero(bottom) / np.count_nonzero(top))
    assert "[Forward] Layer conv1, top blob conv1 data:" in caplog.text
    assert "[Backward] Layer relu1, bottom blob conv1 diff:" in caplog.text


def test_device_choices_fail_clearly():
    from caffe_port.errors import DeviceError
    from caffe_port.runtime import cuda_available
    with pytest.raises(DeviceError, match="unknown device 'gpu'"):
        Net(small_classifier(), device="gpu")
    with pytest.raises(DeviceError, match="unknown device 'cuda:x'"):
        Net(small_classifier(), device="cuda:x")
    if not cuda_available():
        with pytest.raises(DeviceError, match="device='cpu'"):
            Net(small_classifier(), device="cuda")
    assert Net(small_classifier(), device="auto").device in ("cpu", "cuda")


def test_reshaping_the_input_reallocates_like_caffe(x):
    net = Net(small_classifier(), device="cpu")
    net.forward(data=x)
    net.blobs["data"].reshape(1, 3, 8, 7)
    assert net.blobs["conv1"].shape == (1, 4, 8, 7)
    assert not np.any(net.blobs["conv1"].data)
    net.blobs["data"].data[...] = x[:1]
    out = net.forward()["prob"]
    assert out.shape == (1, 5)


def test_first_compilation_is_announced_once(tmp_path):
    """A cold Numba cache prints one line on stderr; a warm one prints nothing."""
    import subprocess
    import sys
    script = ("import numpy as np\n"
              "from caffe_port.kernels.jit import announce_compilation\n"
              "from caffe_port.kernels.relu import relu_backward\n"
              "announce_compilation()\n"
              "x = np.ones((2, 3), np.float32)\n"
              "relu_backward([x[None]], [x], [x], {})\n"
              "relu_backward([x[None].astype(np.float64)], [x], [x], {})\n")
    env = dict(__import__("os").environ, NUMBA_CACHE_DIR=str(tmp_path))
    cold = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    warm = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert cold.returncode == 0 and warm.returncode == 0, cold.stderr + warm.stderr
    assert cold.stderr.count("compiling backward kernels") == 1
    assert "compiling" not in warm.stderr


def test_a_run_that_would_not_fit_is_refused_before_it_starts(x, monkeypatch):
    import caffe_port.net as net_module
    net = Net(small_classifier(softmax=False), device="cpu")
    net.forward(data=x)
    need = net.memory_estimate(stack=3)
    assert need > net.memory_estimate(stack=1) > 4 * x.size
    monkeypatch.setattr(net_module, "available_memory", lambda: need - 1)
    with pytest.raises(CaffePortError, match="fewer stacked classes"):
        net.backward(fc8=np.ones((3, 2, 5), np.float32))
    monkeypatch.setattr(net_module, "available_memory", lambda: 100)
    with pytest.raises(CaffePortError, match="smaller batch"):
        net.forward(data=x)


def test_net_surgery_on_conv_weights_reaches_the_backward(x):
    net = Net(small_classifier(softmax=False), device="cpu")
    net.forward(data=x)
    g = np.ones((2, 5), np.float32)
    before = net.backward(fc8=g)["data"].copy()
    net.params["conv1"][0].data[...] *= -1      # flips every ReLU too: compare with a fresh net
    net.forward(data=x)
    after = net.backward(fc8=g)["data"]
    fresh_model = small_classifier(softmax=False)
    for t in fresh_model.graph.initializer:
        if t.name == "conv1_w":
            from onnx import numpy_helper
            t.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(t), "conv1_w"))
    fresh = Net(fresh_model, device="cpu")
    fresh.forward(data=x)
    np.testing.assert_allclose(after, fresh.backward(fc8=g)["data"], rtol=1e-5, atol=1e-7)
    assert not np.allclose(after, before)


def test_engine_blobs_stay_put_and_lazy_ones_are_refreshed():
    net = Net(small_classifier(softmax=False), device="cpu")     # keep="backward"
    rng = np.random.default_rng(1)
    net.forward(data=rng.standard_normal((2, 3, 8, 7)).astype(np.float32))
    conv1 = net.blobs["conv1"].data          # not kept for the backward: computed on demand
    fc8 = net.blobs["fc8"].data
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    out = net.forward(data=x)
    assert out["fc8"] is fc8 and net.blobs["conv1"].data is conv1
    fresh = Net(small_classifier(softmax=False), device="cpu")
    fresh.forward(data=x)
    np.testing.assert_array_equal(conv1, fresh.blobs["conv1"].data)     # refreshed, not stale
    np.testing.assert_array_equal(fc8, fresh.blobs["fc8"].data)
