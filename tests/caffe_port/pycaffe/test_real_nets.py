"""forward(start=, end=) and backward(start=, end=) on every layer of real nets — CaffeNet and
GoogLeNet (their BVLC deploy prototxts, tests/data/caffe, with seeded caffemodels) and VGG16
(helpers/vgg16, from seeded He fillers) — equal to the full pass; and blob memory that stays put across those passes.

Equal means, layer by layer: ``forward(start=L, end=L)`` in the net's order leaves each top as
the full forward wrote it (where an in-place ReLU rewrites the blob later, the full forward's
value is that ReLU of it), and ``backward(start=L, end=L)`` in reverse order leaves each
bottom's diff as the full backward did — Caffe's split semantics included: a blob read by several
layers keeps the sum of their diffs until its writer is walked. Over ranges: ``forward(start=L)``
gives the full outputs and ``backward(start=L)`` the full data diff, for a layer in each part
of the net. These nets rewrite blobs in place only with ReLU and Dropout, which read their own
output again without change, so all of this holds in Caffe too. Tolerance: forward within
1e-6 of the blob's largest value (ONNX Runtime may schedule a one-layer graph's reductions
otherwise: 4e-7 measured on GoogLeNet's average pooling); backward within 1e-5 of the largest
diff (float32 sums of a blob's readers in another order).
"""
from pathlib import Path

import numpy as np
import pytest

import caffe_port.pycaffe as caffe
from helpers.caffe_weights import write_seeded_caffemodel
from helpers.vgg16 import vgg16_prototxt

DATA = Path(__file__).resolve().parents[2] / "data" / "caffe"
FORWARD_TOL = 1e-6
BACKWARD_TOL = 1e-5


def assert_forward_close(actual, expected, message):
    np.testing.assert_allclose(actual, expected, rtol=0,
                               atol=FORWARD_TOL * max(1.0, float(np.abs(expected).max())),
                               err_msg=message)


def real_net(tmp_path_factory, name):
    where = tmp_path_factory.mktemp(name)
    if name == "vgg16":     # He's filler, seeded (550 MB of caffemodel would only be I/O)
        prototxt = where / "deploy.prototxt"
        prototxt.write_text(vgg16_prototxt(batch=1, fillers=True))
        caffe.set_random_seed(3)
        net = caffe.Net(str(prototxt), caffe.TEST)
    else:
        prototxt = DATA / name / "deploy.prototxt"
        caffemodel = where / "seeded.caffemodel"
        write_seeded_caffemodel(prototxt, caffemodel, seed=3, first_gain=1 / 64)
        net = caffe.Net(str(prototxt), str(caffemodel), caffe.TEST)
    rng = np.random.default_rng(4)
    net.blobs["data"].reshape(1, *net.blobs["data"].shape[1:])
    # an image's range for the seeded caffemodels (first layer scaled by 1/64); He's fillers
    # keep the input's scale, so [−1, 1] there: class scores of a few units, a softmax that has
    # not saturated
    spread = 1 if name == "vgg16" else 100
    net.blobs["data"].data[...] = rng.uniform(-spread, spread, net.blobs["data"].shape)
    return net


def check_every_layer(net, layers):
    out = {k: v.copy() for k, v in net.forward().items()}
    full = {name: blob.data.copy() for name, blob in net.blobs.items()}
    held = {name: blob.data for name, blob in net.blobs.items()}
    last_writer = {top: layer for layer in layers for top in net.top_names[layer]}
    for layer in layers:
        ends = net.forward(start=layer, end=layer)
        for top in net.top_names[layer]:
            value = ends[top] if last_writer[top] == layer else np.maximum(ends[top], 0)
            assert_forward_close(value, full[top], f"forward at {layer!r}")
    for layer in layers[::max(1, len(layers) // 4)]:
        starts = net.forward(start=layer)
        for name, value in out.items():
            assert_forward_close(starts[name], value, f"forward(start={layer!r})")
    # one buffer per blob for the net's life: the arrays first handed out are still the blobs'
    assert all(net.blobs[name].data is array for name, array in held.items())

    net.blobs["prob"].diff[...] = np.random.default_rng(5).standard_normal(net.blobs["prob"].shape)
    reference = net.backward()["data"].copy()
    diffs = {name: blob.diff.copy() for name, blob in net.blobs.items()}
    scale = max(float(np.abs(d).max()) for d in diffs.values())
    assert np.abs(reference).max() > 0
    writers = {}
    for layer in layers:
        for top in net.top_names[layer]:
            writers.setdefault(top, []).append(layer)
    for layer in reversed(layers):
        net.backward(start=layer, end=layer)
        # a blob rewritten in place holds the full pass's diff once its first writer is walked
        for bottom in net.bottom_names[layer]:
            if len(writers.get(bottom, [])) <= 1 or writers[bottom][1] == layer:
                np.testing.assert_allclose(net.blobs[bottom].diff, diffs[bottom], rtol=0,
                                           atol=BACKWARD_TOL * scale,
                                           err_msg=f"backward at {layer!r}")
    for name, blob in net.blobs.items():
        np.testing.assert_allclose(blob.diff, diffs[name], rtol=0, atol=BACKWARD_TOL * scale,
                                   err_msg=f"{name!r} after the layer-by-layer backward")
    data_diff = net.blobs["data"].diff
    for layer in layers[len(layers) // 8::max(1, len(layers) // 4)]:
        got = net.backward(start=layer)["data"]
        assert got is data_diff
        np.testing.assert_allclose(got, reference, rtol=0,
                                   atol=BACKWARD_TOL * np.abs(reference).max(),
                                   err_msg=f"backward(start={layer!r})")


def caffe_layers(net):
    return [name for name, layer in zip(net._layer_names, net.layers) if layer.type != "Input"]


@pytest.mark.slow
def test_caffenet_every_layer(tmp_path_factory):
    net = real_net(tmp_path_factory, "bvlc_reference_caffenet")
    check_every_layer(net, caffe_layers(net))
    # backward(start=L, end=M) stops at M and gives M's bottom diffs
    bottoms = net.backward(start="fc8", end="conv2")
    assert set(bottoms) == {"norm1"} and bottoms["norm1"].shape == (1, 96, 27, 27)


@pytest.mark.slow
def test_googlenet_every_layer(tmp_path_factory):
    net = real_net(tmp_path_factory, "bvlc_googlenet")
    check_every_layer(net, caffe_layers(net))


@pytest.mark.slow
def test_vgg16_every_layer(tmp_path_factory):
    net = real_net(tmp_path_factory, "vgg16")
    assert [p[0].data.shape for p in net.params.values()][-3:] == [(4096, 25088), (4096, 4096),
                                                                    (1000, 4096)]
    check_every_layer(net, caffe_layers(net))
