"""Caffe's semantics in caffe.Net beyond inference: blob memory that stays put (net_surgery's held
view), net surgery saved and reloaded (save, copy_from, share_with, HDF5), phases and the
layers of test nets (DummyData's refill rule, loss weights and the backward from a loss),
seeded fillers, and backward before any forward.

Tolerances: outputs of reloaded nets are compared bit for bit (the same float32 weights); the
loss diffs against their float64 formula within 1e-6 of the largest value.
"""
import sys
import warnings

import numpy as np
import pytest

import caffe_port.pycaffe as caffe
from caffe_port.errors import InputError, ModelError
from caffe_port.models import caffe_io

# examples/net_surgery/conv.prototxt's net: one 5×5 convolution with random filters
CONV = """name: "convolution"
input: "data"
input_dim: 1
input_dim: 1
input_dim: 100
input_dim: 100
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 kernel_size: 5 stride: 1
    weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0 } } }
"""

# test_net.py's net: DummyData, Convolution, InnerProduct, SoftmaxWithLoss
LOSS_NET = """name: 'testnet' force_backward: true
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4 num: 5 channels: 1 height: 1 width: 1
    data_filler { type: 'gaussian' std: 1 } data_filler { type: 'constant' } } }
layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
  convolution_param { num_output: 11 kernel_size: 2 pad: 3
    weight_filler { type: 'gaussian' std: 0.2 } bias_filler { type: 'constant' value: 2 } } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
  inner_product_param { num_output: 13 weight_filler { type: 'gaussian' std: 0.05 }
    bias_filler { type: 'constant' value: -3 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label' top: 'loss'
  LOSS_WEIGHT }
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def loss_net(tmp_path):
    caffe.set_random_seed(11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # caffe.TRAIN's note on inference semantics
        net = caffe.Net(write(tmp_path, "net.prototxt", LOSS_NET.replace("LOSS_WEIGHT", "")),
                        caffe.TRAIN)
    net.blobs["label"].data[...] = np.arange(5).reshape(5, 1, 1, 1) * 2
    return net


def test_a_held_view_sees_the_next_forward(tmp_path):
    # net_surgery.ipynb: the view taken before the surgery shows its effect after the forward
    net = caffe.Net(write(tmp_path, "conv.prototxt", CONV), caffe.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(0).random((1, 1, 100, 100))
    net.forward()
    conv0 = net.blobs["conv"].data[0, 0]
    pre = conv0.mean()
    net.params["conv"][1].data[0] = 1.
    net.forward()
    assert conv0.mean() == pytest.approx(pre + 1, abs=1e-5)
    # the same holds across a backward, for the diff, and for the params
    diff, weights = net.blobs["data"].diff, net.params["conv"][0].data
    net.backward(conv=np.ones((1, 3, 96, 96), np.float32))
    assert net.blobs["data"].diff is diff and np.any(diff)
    assert net.params["conv"][0].data is weights
    # until a reshape, as Caffe reallocates
    net.blobs["data"].reshape(2, 1, 100, 100)
    net.forward()
    assert net.blobs["conv"].data.shape == (2, 3, 96, 96)


def test_save_reloads_to_identical_params_and_outputs(loss_net, tmp_path):
    path = tmp_path / "saved.caffemodel"
    path.write_bytes(b"an older file")       # overwritten, as pycaffe's net.save does
    loss_net.save(str(path))
    saved = caffe_io.read_caffemodel(path)
    assert [(layer.name, [tuple(b.shape.dim) for b in layer.blobs]) for layer in saved.layer] == [
        ("data", []), ("conv", [(11, 2, 2, 2), (11,)]), ("ip", [(13, 792), (13,)]), ("loss", [])]
    assert saved.layer[3].loss_weight == [1.0] and saved.layer[1].phase == caffe.TRAIN
    prototxt = write(tmp_path, "again.prototxt", LOSS_NET.replace("LOSS_WEIGHT", ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = caffe.Net(prototxt, str(path), caffe.TRAIN)
    for name, blobs in loss_net.params.items():
        for mine, theirs in zip(blobs, again.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)
    for net in (loss_net, again):
        net.blobs["data"].data[...] = 0.5
        net.blobs["label"].data[...] = 3
    np.testing.assert_array_equal(loss_net.forward(start="conv")["loss"],
                                  again.forward(start="conv")["loss"])


def test_copy_from_and_hdf5_round_trips(loss_net, tmp_path):
    pytest.importorskip("h5py")
    loss_net.save(str(tmp_path / "w.caffemodel"))
    loss_net.save_hdf5(str(tmp_path / "w.h5"))
    caffe.set_random_seed(99)                 # other fillers: other params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = caffe.Net(write(tmp_path, "n.prototxt", LOSS_NET.replace("LOSS_WEIGHT", "")),
                          caffe.TRAIN)
    held = other.params["ip"][0].data
    assert not np.array_equal(held, loss_net.params["ip"][0].data)
    for load in (lambda: other.copy_from(str(tmp_path / "w.caffemodel")),
                 lambda: other.load_hdf5(str(tmp_path / "w.h5")),
                 lambda: other.copy_from(str(tmp_path / "w.h5"))):
        other.params["ip"][0].data[...] = 0
        load()
        np.testing.assert_array_equal(held, loss_net.params["ip"][0].data)   # into the same array
        assert other.params["ip"][0].data is held
        other.blobs["data"].data[...] = loss_net.blobs["data"].data
        other.blobs["label"].data[...] = loss_net.blobs["label"].data
        np.testing.assert_array_equal(other.forward(start="conv")["loss"],
                                      loss_net.forward(start="conv")["loss"])


def test_share_with_lends_the_same_arrays(loss_net, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = caffe.Net(write(tmp_path, "n.prototxt", LOSS_NET.replace("LOSS_WEIGHT", "")),
                          caffe.TRAIN)
    other.blobs["label"].data[...] = loss_net.blobs["label"].data
    other.share_with(loss_net)
    assert other.params["ip"][1].data is loss_net.params["ip"][1].data
    loss_net.forward()
    other.blobs["data"].data[...] = loss_net.blobs["data"].data
    before = float(other.forward(start="conv")["loss"])
    assert before == float(loss_net.blobs["loss"].data)
    loss_net.params["ip"][1].data[...] += 5.0    # surgery on one net reaches the other's forward
    loss_net.params["ip"][1].data[0] += 10.0
    assert float(other.forward(start="conv")["loss"]) != before
    assert float(other.forward(start="conv")["loss"]) == float(loss_net.forward(start="conv")["loss"])


def test_surgery_files_refuse_what_caffe_refuses(loss_net, tmp_path, monkeypatch):
    bad = caffe_io.read_caffemodel(_saved(loss_net, tmp_path))
    bad.layer[2].blobs[0].shape.dim[1] = 7
    caffe_io.write_caffemodel(bad, tmp_path / "bad.caffemodel")
    with pytest.raises(ModelError, match=r"cannot copy param 0 of layer 'ip': shape mismatch"):
        loss_net.copy_from(str(tmp_path / "bad.caffemodel"))
    del bad.layer[2].blobs[1]
    caffe_io.write_caffemodel(bad, tmp_path / "short.caffemodel")
    with pytest.raises(ModelError, match=r"incompatible number of blobs for layer 'ip'"):
        loss_net.copy_from(str(tmp_path / "short.caffemodel"))
    with pytest.raises(InputError, match=r"cannot write .*nowhere/x.caffemodel"):
        loss_net.save(str(tmp_path / "nowhere" / "x.caffemodel"))
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(InputError, match=r"net.save_hdf5 needs h5py"):
        loss_net.save_hdf5(str(tmp_path / "x.h5"))


def _saved(net, tmp_path):
    path = tmp_path / "saved.caffemodel"
    net.save(str(path))
    return path


def test_dummy_data_refills_random_tops_and_keeps_constant_ones(loss_net):
    data = loss_net.blobs["data"].data
    first = data.copy()
    loss_net.forward()
    second = data.copy()
    assert not np.array_equal(first, second)          # gaussian: refilled by each forward
    assert abs(second.std() - 1) < 0.25
    np.testing.assert_array_equal(loss_net.blobs["label"].data.ravel(), [0, 2, 4, 6, 8])  # constant
    loss_net.forward(start="conv")                     # DummyData does not run: no refill
    np.testing.assert_array_equal(data, second)


def test_random_seed_repeats_nets_and_refills(tmp_path):
    def make(seed):
        caffe.set_random_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = caffe.Net(write(tmp_path, "n.prototxt", LOSS_NET.replace("LOSS_WEIGHT", "")),
                            caffe.TRAIN)
        net.forward()
        return net.params["conv"][0].data.copy(), net.blobs["data"].data.copy()
    a, b, c = make(3), make(3), make(4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("weight", [None, 2.5])
def test_backward_from_the_loss_is_p_minus_onehot(tmp_path, weight):
    caffe.set_random_seed(12)
    text = LOSS_NET.replace("LOSS_WEIGHT", "" if weight is None else f"loss_weight: {weight}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = caffe.Net(write(tmp_path, "n.prototxt", text), caffe.TRAIN)
    weight = 1.0 if weight is None else weight
    assert net.blob_loss_weights["loss"] == weight and net.blob_loss_weights["ip_blob"] == 0
    net.blobs["label"].data[...] = np.array([3, 1, 4, 1, 5]).reshape(5, 1, 1, 1)
    out = net.forward()
    net.backward()
    scores = net.blobs["ip_blob"].data.astype(np.float64)
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(13)[[3, 1, 4, 1, 5]]
    assert float(out["loss"]) == pytest.approx(-np.log(p[np.arange(5), [3, 1, 4, 1, 5]]).mean(),
                                               rel=1e-5)
    expected = weight * (p - onehot) / 5           # Caffe's VALID normalization: 5 labels
    np.testing.assert_allclose(net.blobs["ip_blob"].diff, expected, rtol=0,
                               atol=1e-6 * np.abs(expected).max())
    assert np.any(net.blobs["data"].diff)


def test_phases_select_include_rules(tmp_path):
    text = """name: "all_in_one"
layer { name: "train_data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 } }
  include { phase: TRAIN } }
layer { name: "deploy_data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } }
  include { phase: TEST } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
  include { phase: TRAIN } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" include { phase: TEST } }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc"
  include { phase: TRAIN min_level: 1 } }
"""
    path = write(tmp_path, "all.prototxt", text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = caffe.Net(path, caffe.TRAIN)
        leveled = caffe.Net(path, caffe.TRAIN, level=1)
    test = caffe.Net(path, caffe.TEST)
    assert (train.inputs, train.outputs) == ([], ["loss"])
    assert (test.inputs, test.outputs) == (["data"], ["prob"])
    assert leveled.outputs == ["acc", "loss"]
    assert float(leveled.forward()["acc"]) in (0.0, 0.5, 1.0)


def test_backward_before_any_forward_reads_zero_blobs(tmp_path):
    text = ('name: "ip" input: "data" input_shape { dim: 2 dim: 3 }\n'
            'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
            'inner_product_param { num_output: 4 weight_filler { type: "gaussian" } } }\n'
            'layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }\n')
    net = caffe.Net(write(tmp_path, "ip.prototxt", text), caffe.TEST)
    top = np.arange(8, dtype=np.float32).reshape(2, 4)
    diff = net.backward(start="ip", ip=top)["data"]      # no forward yet: Caffe runs it
    np.testing.assert_allclose(diff, top @ net.params["ip"][0].data, rtol=1e-6)
    assert not net.backward(ip=top)["data"].any()        # the ReLU of zeros passes nothing
