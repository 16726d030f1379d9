"""The layers of test and all-in-one nets (``models/caffe_layers.py``): the loss layers and
Accuracy forward against Caffe's Forward_cpu loops in float64 (``helpers/caffe_reference.py``),
their backward through ``caffe_port.Net`` against Caffe's Backward_cpu formulas, DummyData's
shapes and fillers, Silence.

Tolerances: forward as ``check_against_reference`` (2e-6 relative to max(1, |ref|)); backward
float32 against the float64 formula within 1e-6 of the largest diff (a few float32 roundings of
a softmax).
"""
import numpy as np
import pytest

from caffe_port import Net
from caffe_port.errors import ModelError
from caffe_port.models import caffe_io
from caffe_port.models.caffe_net import caffe_to_onnx, metadata
from helpers.caffe_reference import check_against_reference, layer, net_text

BACKWARD_TOL = 1e-6


def two_inputs(layers, x_shape, label_shape):
    return net_text(layers, shapes=[x_shape, label_shape], tops=("x", "label"))


def labels(rng, shape, classes, ignore=None):
    values = rng.integers(0, classes, shape).astype(np.float32)
    if ignore is not None:
        values.reshape(-1)[::3] = ignore     # every third position ignored
    return values


SOFTMAX_LOSS_CASES = {
    # name: (loss_param text, x shape, label shape, ignore label)
    "valid_default": ("", (4, 5), (4,), None),
    "legacy_dims_label": ("", (3, 6), (3, 1, 1, 1), None),
    "spatial_valid_ignore": ("loss_param { ignore_label: 1 }", (2, 3, 5, 4), (2, 1, 5, 4), 1),
    "full": ("loss_param { normalization: FULL ignore_label: 0 }", (2, 3, 5, 4), (2, 5, 4), 0),
    "batch_size": ("loss_param { normalization: BATCH_SIZE }", (2, 3, 5, 4), (2, 5, 4), None),
    "none": ("loss_param { normalization: NONE }", (4, 5), (4,), None),
    "legacy_normalize_false": ("loss_param { normalize: false }", (2, 3, 5, 4), (2, 1, 5, 4), None),
}


@pytest.mark.parametrize("case", sorted(SOFTMAX_LOSS_CASES))
def test_softmax_with_loss_forward_is_caffes(case):
    params, x_shape, label_shape, ignore = SOFTMAX_LOSS_CASES[case]
    rng = np.random.default_rng(sorted(SOFTMAX_LOSS_CASES).index(case))
    text = two_inputs(layer("loss", "SoftmaxWithLoss", ["x", "label"], ["loss", "prob"], params),
                      x_shape, label_shape)
    inputs = {"x": 3 * rng.standard_normal(x_shape).astype(np.float32),
              "label": labels(rng, label_shape, x_shape[1], ignore)}
    model, got = check_against_reference(text, rng, inputs=inputs)
    assert got["loss"].shape == () and got["prob"].shape == x_shape
    assert metadata(model)["layers"][1]["loss_weight"] == [1.0, 0.0]   # Caffe's defaults


def softmax_loss_diff(x, label, ignore, normalizer, weight):
    """SoftmaxWithLossLayer::Backward_cpu: (p − onehot) · weight / normalizer, 0 where ignored."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    onehot = np.zeros_like(p)
    flat = label.reshape(x.shape[0], *x.shape[2:]).astype(int)
    index = np.indices(flat.shape)
    onehot[(index[0], flat, *index[1:])] = 1
    diff = (p - onehot) * weight / normalizer
    if ignore is not None:
        diff = np.where(np.expand_dims(flat == ignore, 1), 0.0, diff)
    return diff


@pytest.mark.parametrize("case,normalizer", [("valid_default", 4), ("spatial_valid_ignore", None),
                                             ("none", 1)])
def test_softmax_with_loss_backward_is_p_minus_onehot(case, normalizer):
    params, x_shape, label_shape, ignore = SOFTMAX_LOSS_CASES[case]
    rng = np.random.default_rng(3)
    text = two_inputs(layer("loss", "SoftmaxWithLoss", ["x", "label"], ["loss"], params),
                      x_shape, label_shape)
    net = Net(caffe_to_onnx(caffe_io.parse_prototxt(text)), device="cpu", keep="all")
    x = rng.standard_normal(x_shape).astype(np.float32)
    label = labels(rng, label_shape, x_shape[1], ignore)
    net.forward(x=x, label=label)
    weight = 0.7
    net.backward(loss=np.float32(weight))
    if normalizer is None:    # VALID: the positions whose label is not ignored
        normalizer = int(np.sum(label != ignore))
    expected = softmax_loss_diff(x.astype(np.float64), label, ignore, normalizer, weight)
    np.testing.assert_allclose(net.blobs["x"].diff, expected, rtol=0,
                               atol=BACKWARD_TOL * np.abs(expected).max())
    assert not net.blobs["label"].diff.any()     # Caffe back-propagates nothing to labels


@pytest.mark.parametrize("params,x_shape,target_shape", [
    ("", (3, 4, 2), (3, 8)),
    ("", (5, 2), (5, 2)),
])
def test_euclidean_loss_forward_and_backward(params, x_shape, target_shape):
    rng = np.random.default_rng(11)
    text = two_inputs(layer("loss", "EuclideanLoss", ["x", "label"], ["loss"], params),
                      x_shape, target_shape)
    inputs = {"x": rng.standard_normal(x_shape).astype(np.float32),
              "label": rng.standard_normal(target_shape).astype(np.float32)}
    check_against_reference(text, rng, inputs=inputs)
    net = Net(caffe_to_onnx(caffe_io.parse_prototxt(text)), device="cpu", keep="all")
    net.forward(**inputs)
    net.backward(loss=np.float32(2.0))
    difference = inputs["x"].astype(np.float64) - inputs["label"].reshape(x_shape)
    expected = 2.0 * difference / x_shape[0]     # ±(a − b) · weight / N, Caffe's two bottoms
    np.testing.assert_allclose(net.blobs["x"].diff, expected, rtol=0, atol=BACKWARD_TOL * 4)
    np.testing.assert_allclose(net.blobs["label"].diff, -expected.reshape(target_shape), rtol=0,
                               atol=BACKWARD_TOL * 4)


@pytest.mark.parametrize("params,ignore", [
    ("", None),                                                       # BATCH_SIZE, Caffe's default
    ("loss_param { normalization: VALID ignore_label: -1 }", -1),
    ("loss_param { normalization: FULL }", None),
])
def test_sigmoid_cross_entropy_loss_forward_and_backward(params, ignore):
    rng = np.random.default_rng(12)
    shape = (3, 2, 4)
    text = two_inputs(layer("loss", "SigmoidCrossEntropyLoss", ["x", "label"], ["loss"], params),
                      shape, shape)
    target = rng.random(shape).astype(np.float32)
    if ignore is not None:
        target.reshape(-1)[::4] = ignore
    inputs = {"x": 6 * rng.standard_normal(shape).astype(np.float32), "label": target}
    check_against_reference(text, rng, inputs=inputs)
    net = Net(caffe_to_onnx(caffe_io.parse_prototxt(text)), device="cpu", keep="all")
    net.forward(**inputs)
    net.backward(loss=np.float32(1.0))
    x = inputs["x"].astype(np.float64)
    kept = np.ones(shape) if ignore is None else (target != ignore)
    normalizer = {"": 3, "loss_param { normalization: FULL }": 24}.get(params, kept.sum())
    expected = (1 / (1 + np.exp(-x)) - target) * kept / normalizer
    np.testing.assert_allclose(net.blobs["x"].diff, expected, rtol=0, atol=BACKWARD_TOL)


@pytest.mark.parametrize("params,x_shape,label_shape,ignore", [
    ("", (6, 5), (6,), None),
    ("accuracy_param { top_k: 2 }", (6, 5), (6, 1, 1, 1), None),
    ("accuracy_param { top_k: 3 ignore_label: 2 }", (2, 4, 3, 5), (2, 3, 5), 2),
])
def test_accuracy_counts_caffes_way(params, x_shape, label_shape, ignore):
    rng = np.random.default_rng(13)
    text = two_inputs(layer("acc", "Accuracy", ["x", "label"], ["acc"], params), x_shape,
                      label_shape)
    x = rng.standard_normal(x_shape).astype(np.float32)
    x.reshape(-1)[:4] = 0.5      # ties count against the label, as in Caffe
    inputs = {"x": x, "label": labels(rng, label_shape, x_shape[1], ignore)}
    model, got = check_against_reference(text, rng, inputs=inputs)
    assert metadata(model)["layers"][1]["loss_weight"] == [0.0]


def test_ties_make_the_accuracy_a_miss():
    text = two_inputs(layer("acc", "Accuracy", ["x", "label"], ["acc"]), (2, 3), (2,))
    inputs = {"x": np.array([[1, 1, 0], [0, 2, 1]], np.float32), "label": np.float32([0, 1])}
    _, got = check_against_reference(text, np.random.default_rng(0), inputs=inputs)
    assert got["acc"] == 0.5


def test_dummy_data_shapes_fillers_and_refill_rule():
    text = (layer("d", "DummyData", [], ["a", "b", "c"],
                  "dummy_data_param { num: 2 channels: 3 channels: 1 channels: 4 height: 5 "
                  "width: 1 data_filler { type: 'constant' value: 7 } "
                  "data_filler { type: 'gaussian' std: 2 } data_filler { type: 'xavier' } }") +
            layer("s", "Silence", ["a", "b", "c"], []))
    model = caffe_to_onnx(caffe_io.parse_prototxt('name: "d"\n' + text))
    meta = metadata(model)
    assert meta["inputs"] == [] and meta["outputs"] == []      # Caffe's net.inputs: Input layers only
    assert [(s["blob"], s["shape"]) for s in meta["sources"]] == [
        ("a", [2, 3, 5, 1]), ("b", [2, 1, 5, 1]), ("c", [2, 4, 5, 1])]
    assert 'type: "gaussian"' in meta["sources"][1]["filler"]
    assert [layer["nodes"] for layer in meta["layers"]] == [[], []]   # filled outside the graph
    one = caffe_to_onnx(caffe_io.parse_prototxt(
        'name: "d"\n' + layer("d", "DummyData", [], ["a", "b"],
                             "dummy_data_param { shape { dim: 3 } }")))
    assert [s["shape"] for s in metadata(one)["sources"]] == [[3], [3]]
    assert all('type: "constant"' in s["filler"] for s in metadata(one)["sources"])


@pytest.mark.parametrize("params,message", [
    ("dummy_data_param { shape { dim: 2 } data_filler { type: 'gauss' } }",
     r"unknown filler type 'gauss'"),
    ("dummy_data_param { shape { dim: 2 } shape { dim: 3 } shape { dim: 4 } }", r"3 shapes for 2 tops"),
    ("dummy_data_param { num: 2 shape { dim: 2 } }", r"not both"),
    ("dummy_data_param { shape { dim: 2 } data_filler { type: 'uniform' sparse: 2 } }",
     r"sparsity is supported by the gaussian filler only"),
])
def test_dummy_data_refuses_what_caffe_refuses(params, message):
    text = 'name: "d"\n' + layer("d", "DummyData", [], ["a", "b"], params)
    with pytest.raises(ModelError, match=message):
        caffe_to_onnx(caffe_io.parse_prototxt(text))


@pytest.mark.parametrize("layers,message", [
    (layer("loss", "SoftmaxWithLoss", ["x", "label"], ["loss"]), r"12 labels for predictions of "
                                                                 r"shape \(4, 5\).*must be 4"),
    (layer("loss", "EuclideanLoss", ["x", "label"], ["loss"]), r"same dimension"),
    (layer("loss", "Softmax", ["x"], ["loss"], "loss_weight: 1 loss_weight: 2"),
     r"loss_weight must be unspecified or given once per top blob \(1\), got 2"),
])
def test_loss_layers_refuse_inconsistent_bottoms(layers, message):
    text = two_inputs(layers, (4, 5), (4, 3))
    with pytest.raises(ModelError, match=message):
        caffe_to_onnx(caffe_io.parse_prototxt(text))


def test_a_loss_weight_is_read_per_top():
    text = two_inputs(layer("loss", "SoftmaxWithLoss", ["x", "label"], ["loss"], "loss_weight: 3"),
                      (4, 5), (4,))
    meta = metadata(caffe_to_onnx(caffe_io.parse_prototxt(text)))
    assert meta["layers"][1]["loss_weight"] == [3.0]
