"""caffe.Net: Caffe names and order, in-place blobs, params and net surgery, forward/backward and
their batched forms, constructor overloads, errors."""
import warnings

import numpy as np
import onnx
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import caffe_port.pycaffe as caffe
from caffe_port.errors import BlobError, InputError, ShapeError
from caffe_port.models import caffe_io
from caffe_port.models.caffe_net import caffe_to_onnx
from caffe_port.pycaffe import mode

RNG = np.random.default_rng(3)
BN_EPS = 1e-5   # Caffe's BatchNorm default


def stored_params(caffemodel):
    layers = caffe_io.caffemodel_layers(caffe_io.read_caffemodel(caffemodel))
    return {name: [caffe_io.blob_to_array(b).astype(np.float64) for b in blobs]
            for name, blobs in layers.items()}


def tiny_forward(x, p):
    """The tiny net in float64 numpy: {version: value} for every blob version."""
    w, b = p["conv1"]
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.einsum("nchwij,ocij->nohw", sliding_window_view(padded, (3, 3), axis=(2, 3)), w) \
        + b[:, None, None]
    relu = np.maximum(conv, 0)
    mean, var, factor = p["bn1"]
    f = 0.0 if factor[0] == 0 else 1.0 / factor[0]
    bn = (relu - (mean * f)[:, None, None]) / np.sqrt((var * f)[:, None, None] + BN_EPS)
    scale = bn * p["scale1"][0][:, None, None] + p["scale1"][1][:, None, None]
    # 2×2 max pooling, stride 2, Caffe's ceil: W = 7 gives 4 windows, the last one column wide
    padded = np.pad(scale, ((0, 0), (0, 0), (0, 0), (0, 1)), constant_values=-np.inf)
    pool = padded.reshape(len(x), 4, 4, 2, 4, 2).max(axis=(3, 5))
    fc8 = pool.reshape(len(x), -1) @ p["fc8"][0].T + p["fc8"][1]
    e = np.exp(fc8 - fc8.max(axis=1, keepdims=True))
    return {"conv": conv, "relu": relu, "bn": bn, "conv1": scale, "pool1": pool, "fc8": fc8,
            "prob": e / e.sum(axis=1, keepdims=True)}


@pytest.fixture
def tiny(tiny_files):
    prototxt, caffemodel = tiny_files
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # a complete caffemodel: no filler warning
        return caffe.Net(prototxt, caffemodel, caffe.TEST)


@pytest.fixture
def x():
    return RNG.standard_normal((2, 3, 8, 7)).astype(np.float32)


def test_caffe_names_order_and_shapes(tiny, tiny_files):
    net = tiny
    assert list(net.blobs) == ["data", "conv1", "pool1", "fc8", "prob"]
    assert net._layer_names == ["input", "conv1", "relu1", "bn1", "scale1", "pool1", "fc8", "prob"]
    assert [layer.type for layer in net.layers] == ["Input", "Convolution", "ReLU", "BatchNorm",
                                                    "Scale", "Pooling", "InnerProduct", "Softmax"]
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    assert net.top_names["relu1"] == ["conv1"] and net.bottom_names["fc8"] == ["pool1"]
    assert list(net.params) == ["conv1", "bn1", "scale1", "fc8"]
    assert [p.data.shape for p in net.params["bn1"]] == [(4,), (4,), (1,)]
    assert [p.data.shape for p in net.params["fc8"]] == [(5, 64), (5,)]
    assert net.layers[1].blobs[0] is net.params["conv1"][0]
    assert net.layer_dict["fc8"] is net.layers[6]
    stored = stored_params(tiny_files[1])
    for layer, blobs in net.params.items():
        for blob, value in zip(blobs, stored[layer]):
            np.testing.assert_array_equal(blob.data, value.astype(np.float32))
    data = net.blobs["data"]
    assert data.data.shape == (2, 3, 8, 7) and data.shape == (2, 3, 8, 7)   # declared batch
    assert (data.num, data.channels, data.height, data.width, data.count) == (2, 3, 8, 7, 336)
    fc8 = net.blobs["fc8"]
    assert (fc8.num, fc8.channels, fc8.height, fc8.width) == (2, 5, 1, 1)  # Caffe's LegacyShape
    bias = net.params["conv1"][1]
    assert (bias.num, bias.channels, bias.count) == (4, 1, 4)


def test_outputs_are_the_unconsumed_blobs_in_name_order(tmp_path):
    text = """input: "data"
input_shape { dim: 1 dim: 2 }
layer { name: "z" type: "ReLU" bottom: "data" top: "zeta" }
layer { name: "a" type: "Sigmoid" bottom: "data" top: "alpha" }
"""
    (tmp_path / "two.prototxt").write_text(text)
    net = caffe.Net(str(tmp_path / "two.prototxt"), caffe.TEST)
    assert net.outputs == ["alpha", "zeta"]      # Caffe keeps them in a std::set
    out = net.forward(data=np.array([[-1.0, 2.0]]))
    np.testing.assert_allclose(out["zeta"], [[0, 2]])
    np.testing.assert_allclose(out["alpha"], 1 / (1 + np.exp([[1.0, -2.0]])), rtol=1e-6)


def test_in_place_blob_data_is_what_the_last_forward_wrote(tiny, tiny_files, x):
    net = tiny
    expected = tiny_forward(x.astype(np.float64), stored_params(tiny_files[1]))
    out = net.forward(data=x)
    np.testing.assert_allclose(out["prob"], expected["prob"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.blobs["conv1"].data, expected["conv1"], rtol=1e-4, atol=1e-5)
    # a forward that stops at conv1 leaves the convolution's value in the blob …
    out = net.forward(end="conv1")
    assert list(out) == ["conv1"]
    np.testing.assert_allclose(net.blobs["conv1"].data, expected["conv"], rtol=1e-4, atol=1e-5)
    # … which the in-place ReLU then reads and rewrites
    net.forward(start="relu1", end="relu1")
    np.testing.assert_allclose(net.blobs["conv1"].data, expected["relu"], rtol=1e-4, atol=1e-5)
    # and what the user writes into a blob is what the next layers read
    net.forward()
    net.blobs["pool1"].data[...] = 0
    net.forward(start="fc8")
    np.testing.assert_allclose(net.blobs["fc8"].data,
                               np.broadcast_to(net.params["fc8"][1].data, (2, 5)), rtol=1e-6)


def numeric_diff(loss, values, eps=1e-6):
    """Central differences of ``loss()`` with respect to every entry of the float64 ``values``."""
    grad = np.zeros_like(values)
    flat = values.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = loss()
        flat[i] = old - eps
        minus = loss()
        flat[i] = old
        grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


def test_in_place_blob_diff_is_the_first_versions_diff(tiny, tiny_files, x):
    """conv1 → relu1 → bn1 → scale1 rewrite one blob; after backward its diff is the diff of the
    convolution's output: Σ_{n,h,w} diff[n, c] = ∂loss/∂bias_c, loss = Σ g · fc8 (the float64
    numpy net gives the finite differences)."""
    net = tiny
    g = RNG.standard_normal((2, 5))
    net.forward(data=x)
    net.backward(fc8=g)
    params = stored_params(tiny_files[1])
    x64 = x.astype(np.float64)
    numeric = numeric_diff(lambda: np.sum(g * tiny_forward(x64, params)["fc8"]), params["conv1"][1])
    # float32 engine against float64 differences
    np.testing.assert_allclose(net.blobs["conv1"].diff.sum(axis=(0, 2, 3)), numeric, rtol=1e-4,
                               atol=1e-5)


def test_input_diff_matches_finite_differences(tiny, tiny_files, x):
    net = tiny
    g = RNG.standard_normal((2, 5))
    net.forward(data=x)
    grad = net.backward(fc8=g)["data"]
    params = stored_params(tiny_files[1])
    x64 = x.astype(np.float64)
    numeric = numeric_diff(lambda: np.sum(g * tiny_forward(x64, params)["fc8"]), x64)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-5)


def test_diff_written_below_the_last_layer_is_overwritten_as_in_caffe(tiny, x, monkeypatch):
    net = tiny
    net.forward(data=x)
    net.blobs["fc8"].diff[0, 2] = 1
    with pytest.warns(UserWarning, match=r"backward\(start='fc8'\)"):
        grad = net.backward()["data"]
    assert not np.any(grad)                       # prob's zero diff overwrote fc8's
    assert not np.any(net.blobs["fc8"].diff)
    net.blobs["fc8"].diff[0, 2] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # once per net
        net.backward()
    onehot = np.zeros((2, 5), np.float32)
    onehot[0, 2] = 1
    net.blobs["fc8"].diff[...] = onehot
    from_start = net.backward(start="fc8")["data"].copy()
    np.testing.assert_array_equal(net.blobs["fc8"].diff, onehot)   # not walked over: kept
    assert np.any(from_start)
    np.testing.assert_allclose(net.backward(fc8=onehot)["data"], from_start, rtol=1e-6)


def test_seed_000_label_of_another_shape_at_the_softmax_output(tiny, x):
    net = tiny
    prob = net.forward(data=x)["prob"].astype(np.float64)
    label = np.zeros((2, 5, 1, 1))
    label[:, 3] = 1
    grad = net.backward(**{net.outputs[0]: label})["data"].copy()
    np.testing.assert_array_equal(net.blobs["prob"].diff, label.reshape(2, 5))
    onehot = label.reshape(2, 5)
    fc8_diff = prob * (onehot - np.sum(onehot * prob, axis=1, keepdims=True))
    np.testing.assert_allclose(grad, net.backward(fc8=fc8_diff)["data"], rtol=1e-4, atol=1e-7)
    with pytest.raises(ShapeError, match="does not fit blob 'prob'"):
        net.backward(prob=np.ones((3, 5)))


def test_backward_in_two_stages_continues_through_the_in_place_buffer(tiny, x):
    """backward(start='fc8', end='pool1') leaves conv1's diff for the (final) Scale output;
    backward(start='scale1') reads it as scale1's top diff, as Caffe's shared buffer does."""
    net = tiny
    g = RNG.standard_normal((2, 5))
    net.forward(data=x)
    whole = net.backward(fc8=g)["data"].copy()
    whole_conv1 = net.blobs["conv1"].diff.copy()
    net.blobs["data"].diff[...] = 0
    upper = net.backward(fc8=g, end="pool1", diffs=["pool1"])
    assert set(upper) == {"conv1", "pool1"}             # the bottoms of end, plus diffs
    assert not np.any(net.blobs["data"].diff)          # below end: untouched
    lower = net.backward(start="scale1")
    np.testing.assert_allclose(lower["data"], whole, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.blobs["conv1"].diff, whole_conv1, rtol=1e-5, atol=1e-7)


def test_net_surgery_reaches_forward_and_backward(tiny, tiny_files, x):
    net = tiny
    params = stored_params(tiny_files[1])
    params["bn1"][2][0] = 2.0                                  # BatchNorm's scale factor
    params["scale1"][0] = np.array([0.5, -1.0, 2.0, 1.5])
    params["fc8"][0][2] = 0
    params["fc8"][1][2] = 7
    net.params["bn1"][2].data[0] = 2.0
    net.params["scale1"][0].data[...] = [0.5, -1.0, 2.0, 1.5]
    net.params["fc8"][0].data[2] = 0
    net.params["fc8"][1].data[2] = 7
    expected = tiny_forward(x.astype(np.float64), params)
    out = net.forward(data=x)
    np.testing.assert_allclose(out["prob"], expected["prob"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.blobs["fc8"].data[:, 2], 7, rtol=1e-6)
    onehot = np.zeros((2, 5))
    onehot[:, 2] = 1
    assert not np.any(net.backward(fc8=onehot)["data"])       # the row is zero now


def test_forward_all_batches_with_a_padded_last_batch(tiny, x):
    net = tiny                                                 # batch size 2
    images = RNG.standard_normal((5, 3, 8, 7)).astype(np.float32)
    out = net.forward_all(blobs=["pool1"], data=images)
    assert out["prob"].shape == (5, 5) and out["pool1"].shape == (5, 4, 4, 4)
    assert net.blobs["data"].data.shape == (2, 3, 8, 7)        # the padded batch, as in Caffe
    np.testing.assert_array_equal(net.blobs["data"].data[0], images[4])
    assert not np.any(net.blobs["data"].data[1])
    for n in range(5):
        single = net.forward(data=images[n:n + 1])            # (caffe_port reshapes to batch 1)
        np.testing.assert_allclose(out["prob"][n], single["prob"][0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out["pool1"][n], net.blobs["pool1"].data[0], rtol=1e-5,
                                   atol=1e-6)


def test_backward_all_and_forward_backward_all_match_single_passes(tiny, tiny_files):
    """Batch size 2, three items: a full batch, then one padded with zeros."""
    net = tiny
    images = RNG.standard_normal((3, 3, 8, 7)).astype(np.float32)
    diffs = RNG.standard_normal((3, 5)).astype(np.float32)
    single = caffe.Net(*tiny_files, caffe.TEST)
    expected = []
    for n in range(3):
        single.forward(data=images[n:n + 1])
        expected.append(single.backward(fc8=diffs[n:n + 1])["data"][0].copy())
    assert net.blobs["data"].shape[0] == 2
    net.forward_all(data=images)
    grads = net.backward_all(fc8=diffs)
    assert grads["data"].shape == (3, 3, 8, 7)
    np.testing.assert_allclose(grads["data"], expected, rtol=1e-5, atol=1e-7)
    assert net.blobs["fc8"].diff.shape == (2, 5) and not np.any(net.blobs["fc8"].diff[1])
    outs, both = net.forward_backward_all(data=images, fc8=diffs, blobs=["fc8"])
    assert outs["prob"].shape == (3, 5) and outs["fc8"].shape == (3, 5)
    np.testing.assert_allclose(both["data"], expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(InputError, match="forward_all first"):
        caffe.Net(*tiny_files, caffe.TEST).backward_all(fc8=diffs)


def test_reshape_then_forward(tiny, x):
    net = tiny
    net.forward(data=x)
    net.blobs["fc8"].diff[...] = 1                 # a (2, 5) diff, stale after the reshape
    net.blobs["data"].reshape(1, 3, 8, 7)
    net.reshape()
    assert net.blobs["prob"].shape == (1, 5) and net.blobs["conv1"].shape == (1, 4, 8, 7)
    net.blobs["data"].data[...] = x[:1]
    out = net.forward()
    assert out["prob"].shape == (1, 5)
    assert net.blobs["fc8"].diff.shape == (1, 5) and not np.any(net.blobs["fc8"].diff)
    assert net.backward(start="fc8")["data"].shape == (1, 3, 8, 7)
    with pytest.raises(ShapeError, match="param 0 of layer 'fc8' from \\(5, 64\\) to \\(5, 80\\)"):
        net.blobs["data"].reshape(1, 3, 9, 7)     # fc8's input grows, as Caffe refuses too
    with pytest.raises(BlobError, match="only input blobs"):
        net.blobs["fc8"].reshape(1, 5)


GAP_NET = """name: "gap"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 7 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 5 kernel_size: 1 } }
layer { name: "gap" type: "Pooling" bottom: "conv2" top: "gap"
  pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "gap" top: "fc"
  inner_product_param { num_output: 4 } }
"""


def test_spatial_reshape_converts_again_and_keeps_net_surgery(tmp_path, helpers):
    """Caffe recomputes each layer's geometry on reshape (a deep-dream or fully convolutional
    recipe); the converted graph fixes it, so the prototxt is converted again — and the param
    arrays the user holds stay the live ones."""
    prototxt, caffemodel = helpers.write_model(tmp_path, "gap", GAP_NET, seed=2)
    net = caffe.Net(prototxt, caffemodel, caffe.TEST)
    weights = net.params["conv2"][0].data
    net.blobs["data"].reshape(2, 3, 13, 10)        # ceil pooling: 13 → 6, 10 → 5 (Caffe: 6, 5)
    assert net.blobs["conv2"].shape == (2, 5, 6, 5)
    weights[0] *= -2                                 # surgery through the array held before
    x = RNG.standard_normal((2, 3, 13, 10)).astype(np.float32)
    net.blobs["data"].data[...] = x
    out = net.forward()["fc"]
    params = stored_params(caffemodel)
    params["conv2"][0][0] *= -2
    expected = gap_forward(x.astype(np.float64), params)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-6)
    # a forward with inputs of another size reshapes the same way
    y = RNG.standard_normal((1, 3, 9, 12)).astype(np.float32)
    np.testing.assert_allclose(net.forward(data=y)["fc"], gap_forward(y.astype(np.float64), params),
                               rtol=1e-4, atol=1e-6)
    g = RNG.standard_normal((1, 4))
    grad = net.backward(fc=g)["data"]
    y64 = y.astype(np.float64)
    numeric = numeric_diff(lambda: np.sum(g * gap_forward(y64, params)), y64)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-6)


def gap_forward(x, p):
    """GAP_NET in float64 numpy (Caffe's ceil pooling: windows may hang over the end)."""
    def conv(x, w, b, pad):
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        k = w.shape[2]
        return np.einsum("nchwij,ocij->nohw", sliding_window_view(x, (k, k), axis=(2, 3)), w) \
            + b[:, None, None]
    c1 = np.maximum(conv(x, *p["conv1"], 1), 0)
    h, w = c1.shape[2:]
    ph, pw = -(-(h - 3) // 2) + 1, -(-(w - 3) // 2) + 1
    padded = np.pad(c1, ((0, 0), (0, 0), (0, 2 * ph + 1 - h), (0, 2 * pw + 1 - w)),
                    constant_values=-np.inf)
    pool = sliding_window_view(padded, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(4, 5))
    c2 = conv(pool, *p["conv2"], 0)
    return c2.mean(axis=(2, 3)) @ p["fc"][0].T + p["fc"][1]


def test_constructor_forms_phase_and_onnx_files(tiny_files, tmp_path, monkeypatch):
    prototxt, caffemodel = tiny_files
    x = RNG.standard_normal((2, 3, 8, 7)).astype(np.float32)
    reference = caffe.Net(prototxt, caffemodel, caffe.TEST).forward(data=x)["prob"]
    monkeypatch.setattr(mode, "_warned_once", set())
    forms = [lambda: caffe.Net(prototxt, caffe.TEST, weights=caffemodel),
             lambda: caffe.Net(prototxt, 1, weights=caffemodel),
             lambda: caffe.Net(prototxt, phase=caffe.TEST, weights=caffemodel),
             lambda: caffe.Net(prototxt, caffe.TEST, 0, [], caffemodel)]
    for make in forms:
        np.testing.assert_array_equal(make().forward(data=x)["prob"], reference)
    with pytest.warns(UserWarning, match="caffe.TRAIN selects the TRAIN phase's layers; "
                                         ".*inference semantics"):
        train = caffe.Net(prototxt, caffemodel, caffe.TRAIN)
    np.testing.assert_array_equal(train.forward(data=x)["prob"], reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # one warning per process
        caffe.Net(prototxt, caffemodel, 0)
    with pytest.raises(InputError, match="phase"):
        caffe.Net(prototxt, caffemodel, 2)

    # a converted model saved as ONNX keeps the Caffe names (its metadata)
    path = tmp_path / "tiny.onnx"
    onnx.save(caffe_to_onnx(prototxt, caffemodel), str(path))
    from_onnx = caffe.Net(str(path))
    assert list(from_onnx.blobs) == ["data", "conv1", "pool1", "fc8", "prob"]
    np.testing.assert_array_equal(from_onnx.forward(data=x)["prob"], reference)
    # a plain ONNX file: one layer per node, one blob per tensor
    model = caffe_to_onnx(prototxt, caffemodel)
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "plain.onnx"))
    plain = caffe.Net(str(tmp_path / "plain.onnx"), caffe.TEST)
    assert "conv1@conv1" in plain.blobs and plain._layer_names[0] == "conv1"
    assert [p.data.shape for p in plain.params["fc8"]] == [(5, 64), (5,)]
    np.testing.assert_allclose(plain.forward(data=x)["prob"], reference, rtol=1e-6)


def test_missing_weights_start_from_fillers(tiny_files, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no caffemodel: Caffe's fillers, silently as in Caffe
        net = caffe.Net(tiny_files[0], caffe.TEST)
    assert not np.any(net.params["conv1"][0].data)      # the prototxt names no filler: constant 0
    # a caffemodel without some of the net's layers: those start from their fillers, said once
    partial = caffe_io.read_caffemodel(tiny_files[1])
    del partial.layer[[layer.name for layer in partial.layer].index("fc8")]
    caffe_io.write_caffemodel(partial, tmp_path / "partial.caffemodel")
    with pytest.warns(UserWarning, match=r"\(fc8\) not in .*partial.caffemodel: started from "
                                         r"Caffe's fillers"):
        net = caffe.Net(tiny_files[0], str(tmp_path / "partial.caffemodel"), caffe.TEST)
    assert not np.any(net.params["fc8"][0].data) and np.any(net.params["conv1"][0].data)


def test_modes_act_on_existing_nets(tiny_files, monkeypatch, x):
    from caffe_port.runtime import cuda_available
    monkeypatch.setattr(mode, "_warned_once", set())
    net = caffe.Net(*tiny_files, caffe.TEST)
    pinned = caffe.Net(*tiny_files, caffe.TEST, device="cpu")
    held = net.forward(data=x)["prob"]
    expected = held.copy()
    try:
        if not cuda_available():
            with pytest.warns(UserWarning, match=r"set_mode_gpu\(\): no usable CUDA device.*"
                                                 r"nets run on the CPU"):
                caffe.set_mode_gpu()                 # said at the call, once
            net.forward(data=x)
            assert net._engine.device == "cpu"
        # with a GPU, every net moves at its next pass, to the device set_device names
        moves = []
        monkeypatch.setattr(mode, "cuda_available", lambda: True)
        monkeypatch.setattr(net._engine, "set_device", moves.append)
        monkeypatch.setattr(pinned._engine, "set_device", moves.append)
        caffe.set_device(1)
        caffe.set_mode_gpu()
        net.forward(data=x)
        pinned.forward(data=x)
        assert moves == ["cuda:1"]
    finally:
        caffe.set_mode_cpu()
        caffe.set_device(0)
    monkeypatch.undo()
    # the move itself (here CPU to a fresh CPU runtime): same results, the same blob memory
    net._engine.set_device("cpu")
    assert net.forward(data=x)["prob"] is held
    np.testing.assert_array_equal(held, expected)
    assert net.backward(start="fc8")["data"].shape == (2, 3, 8, 7)
    with pytest.raises(ValueError, match="device ids start at 0"):
        caffe.set_device(-1)


def test_errors_name_the_blob_or_layer(tiny, x):
    net = tiny
    with pytest.raises(BlobError, match="unknown blob 'fc9'.*'fc8'"):
        net.blobs["fc9"]
    with pytest.raises(BlobError, match="unknown layer 'relu9'"):
        net.forward(data=x, end="relu9")
    with pytest.raises(BlobError, match="not an input"):
        net.forward(conv1=x)
    with pytest.raises(BlobError, match="no weight diffs"):
        net.params["conv1"][0].diff
    with pytest.raises(BlobError, match="unknown layer with parameters 'relu1'"):
        net.params["relu1"]
    with pytest.raises(InputError, match="comes after"):
        net.forward(start="fc8", end="conv1")


def test_classifier_predict_averages_the_ten_crops(tiny_files):
    prototxt, caffemodel = tiny_files
    mean = np.array([0.2, 0.3, 0.4])
    clf = caffe.Classifier(prototxt, caffemodel, image_dims=(10, 9), mean=mean, raw_scale=2.0,
                           channel_swap=(2, 1, 0))
    images = [RNG.random((12, 11, 3)).astype(np.float32) for _ in range(2)]
    predictions = clf.predict(images)
    assert predictions.shape == (2, 5)
    net = caffe.Net(prototxt, caffemodel, caffe.TEST)
    for n, image in enumerate(images):
        crops = caffe.io.oversample([caffe.io.resize_image(image, (10, 9))], (8, 7))
        batch = np.stack([clf.transformer.preprocess("data", c) for c in crops])
        # copies: as in pycaffe, forward returns the blob's memory, which the next forward rewrites
        probs = np.concatenate([net.forward(data=batch[k:k + 2])["prob"].copy()
                                for k in range(0, 10, 2)])
        np.testing.assert_allclose(predictions[n], probs.mean(axis=0), rtol=1e-5, atol=1e-7)
    centre = clf.predict(images, oversample=False)
    resized = caffe.io.resize_image(images[0], (10, 9))[1:9, 1:8]
    single = net.forward(data=np.stack([clf.transformer.preprocess("data", resized)] * 2))
    np.testing.assert_allclose(centre[0], single["prob"][0], rtol=1e-5, atol=1e-7)
