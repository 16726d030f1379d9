"""Caffe net set-up (``models/caffe_net.py``): a CaffeNet-shaped net and the five real BVLC
deploy prototxts run in ONNX Runtime against the float64 Caffe of ``helpers/caffe_reference.py``
(tolerances there); names, metadata, batch handling, phase/level/stage rules, weights from a
caffemodel, and the net's errors.
"""
from pathlib import Path

import numpy as np
import onnx
import pytest

from caffe_port.errors import ModelError
from caffe_port.models import caffe_io, caffe_proto
from caffe_port.models.caffe_net import (caffe_param_shapes, caffe_to_onnx, filter_layers,
                                         metadata, state_meets_rule)
from helpers.caffe_reference import (REL_LAYER, REL_NET, assert_blobs_close,
                                     check_against_reference, layer, net_text, ref_forward,
                                     run_blobs)
from helpers.caffe_weights import caffemodel, seeded_weights
from helpers.onnx_models import run_onnxruntime

DATA = Path(__file__).resolve().parents[1] / "data" / "caffe"
TRAIN, TEST = 0, 1   # Caffe's Phase values


# --- a CaffeNet-shaped net: 227×227, group-2 convs, LRN, ceil pooling -----------------------

def scaled_caffenet(batch=2):
    """BVLC CaffeNet's deploy.prototxt with the channel counts scaled down (group-2 convs kept)."""
    net = caffe_io.read_prototxt(DATA / "bvlc_reference_caffenet" / "deploy.prototxt")
    widths = {"conv1": 8, "conv2": 12, "conv3": 16, "conv4": 16, "conv5": 12,
              "fc6": 32, "fc7": 24, "fc8": 10}
    for layer_param in net.layer:
        if layer_param.name in widths:
            param = (layer_param.convolution_param if layer_param.type == "Convolution"
                     else layer_param.inner_product_param)
            param.num_output = widths[layer_param.name]
    net.layer[0].input_param.shape[0].dim[0] = batch
    return net


def test_caffenet_shaped_net_matches_reference(tmp_path):
    rng = np.random.default_rng(8)
    net = scaled_caffenet()
    weights = seeded_weights(net, rng)
    weights["fc8"][0] *= 0.02    # logits of a few units: a softmax far from one-hot
    caffe_io.write_prototxt(net, tmp_path / "deploy.prototxt")
    caffe_io.write_caffemodel(caffemodel(net, weights), tmp_path / "net.caffemodel")
    model = caffe_to_onnx(tmp_path / "deploy.prototxt", tmp_path / "net.caffemodel")
    # mean-subtracted 0..255 pixels, as CaffeNet sees them: LRN's α·Σx² then matters
    image = rng.uniform(-120, 120, (2, 3, 227, 227)).astype(np.float32)
    got = run_blobs(model, {"data": image})
    ref = ref_forward(net, weights, {"data": image})
    shapes = {b: got[b].shape for b in ("conv1", "pool1", "norm1", "conv2", "pool2", "pool5", "prob")}
    assert shapes == {"conv1": (2, 8, 55, 55), "pool1": (2, 8, 27, 27), "norm1": (2, 8, 27, 27),
                      "conv2": (2, 12, 27, 27), "pool2": (2, 12, 13, 13), "pool5": (2, 12, 6, 6),
                      "prob": (2, 10)}
    lrn_effect = np.max(np.abs(ref["norm1"] - ref["pool1"])) / np.max(np.abs(ref["pool1"]))
    assert lrn_effect > 0.1   # the test would notice an LRN that did nothing
    assert 0.2 < ref["prob"].max() < 0.99
    assert_blobs_close(got, ref, REL_NET)


def test_symbolic_batch_serves_any_batch():
    rng = np.random.default_rng(9)
    net = scaled_caffenet(batch=10)
    weights = seeded_weights(net, rng)
    model = caffe_to_onnx(net, caffemodel(net, weights))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, 227, 227]
    assert metadata(model)["batch"] == {"declared": 10, "symbolic": True, "dim_param": "N",
                                        "fixed_by": None}
    images = rng.uniform(-120, 120, (3, 3, 227, 227)).astype(np.float32)
    together = run_onnxruntime(model, {"data": images})[0]
    alone = np.concatenate([run_onnxruntime(model, {"data": images[i:i + 1]})[0] for i in range(3)])
    assert together.shape == (3, 10)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)


def test_reshape_of_the_batch_axis_fixes_the_batch():
    text = net_text(layer("re", "Reshape", ["data"], ["re"],
                          "reshape_param { shape { dim: 1 dim: -1 } }"))
    model = caffe_to_onnx(caffe_io.parse_prototxt(text))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 3, 5, 4]
    assert metadata(model)["batch"]["symbolic"] is False
    assert "re" in metadata(model)["batch"]["fixed_by"]


# --- names and metadata -----------------------------------------------------------------------

IN_PLACE_NET = net_text(
    layer("conv1", "Convolution", ["data"], ["conv1"],
          "convolution_param { num_output: 4 kernel_size: 3 }") +
    layer("relu1", "ReLU", ["conv1"], ["conv1"]) +
    layer("bn1", "BatchNorm", ["conv1"], ["conv1"]) +
    layer("drop1", "Dropout", ["conv1"], ["conv1"]) +
    layer("pool1", "Pooling", ["conv1"], ["pool1"], "pooling_param { kernel_size: 2 stride: 2 }") +
    layer("fc", "InnerProduct", ["pool1"], ["fc"], "inner_product_param { num_output: 5 }") +
    layer("zeta", "Softmax", ["fc"], ["zeta"]) +
    layer("alpha", "Sigmoid", ["fc"], ["alpha"]),
    shapes=[(2, 3, 7, 6)]).replace('name: "t"', 'name: "names"\nforce_backward: true')


def test_in_place_versions_and_metadata():
    rng = np.random.default_rng(10)
    model, _ = check_against_reference(IN_PLACE_NET, rng, overrides={
        "bn1": [np.zeros(4, np.float32), np.ones(4, np.float32), np.ones(1, np.float32)]})
    nodes = {n.name: n for n in model.graph.node}
    assert list(nodes) == ["conv1", "relu1", "bn1", "drop1", "pool1", "fc/flatten", "fc", "zeta",
                           "alpha"]
    assert list(nodes["conv1"].input) == ["data", "conv1#0", "conv1#1"]
    assert list(nodes["conv1"].output) == ["conv1@conv1"]
    assert list(nodes["relu1"].output) == ["conv1@relu1"]
    assert list(nodes["bn1"].input)[0] == "conv1@relu1"
    assert list(nodes["bn1"].output) == ["conv1@bn1"]
    assert list(nodes["drop1"].output) == ["conv1"]
    assert list(nodes["pool1"].input) == ["conv1"]
    assert list(nodes["fc"].input) == ["fc/flatten", "fc#0", "fc#1"]
    assert {a.name: a.i for a in nodes["fc"].attribute}["transB"] == 1
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    assert inits["conv1#0"] == (4, 3, 3, 3) and inits["fc#0"] == (5, 24)
    assert inits["bn1#2"] == (1,) and inits["bn1#0/mean"] == (4,)
    assert [o.name for o in model.graph.output] == ["alpha", "zeta"]   # Caffe's sorted outputs

    meta = metadata(model)
    assert (meta["name"], meta["inputs"], meta["outputs"]) == ("names", ["data"], ["alpha", "zeta"])
    assert meta["force_backward"] is True and meta["debug_info"] is False
    assert meta["blobs"]["conv1"] == {"data": "conv1", "diff": "conv1@conv1", "shape": [2, 4, 5, 4]}
    assert meta["blobs"]["data"]["data"] == meta["blobs"]["data"]["diff"] == "data"
    assert list(meta["blobs"]) == ["data", "conv1", "pool1", "fc", "zeta", "alpha"]
    by_name = {entry["name"]: entry for entry in meta["layers"]}
    assert by_name["data"]["type"] == "Input" and by_name["data"]["nodes"] == []
    assert by_name["fc"]["nodes"] == ["fc/flatten", "fc"]
    assert by_name["fc"]["params"] == ["fc#0", "fc#1"]
    assert by_name["fc"]["param_shapes"] == [[5, 24], [5]]
    assert by_name["bn1"]["params"] == ["bn1#0", "bn1#1", "bn1#2"]
    assert set(by_name["bn1"]["derived"]) == {"bn1#0/mean", "bn1#1/var"}
    assert by_name["relu1"]["bottoms"] == by_name["relu1"]["tops"] == ["conv1"]
    assert by_name["conv1"]["lr_mult"] == [1.0, 1.0]


def test_params_keep_caffe_shapes_and_values(tmp_path):
    rng = np.random.default_rng(11)
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    weights = seeded_weights(net, rng, {"bn1": [np.zeros(4, np.float32), np.ones(4, np.float32),
                                                np.ones(1, np.float32)]})
    model = caffe_to_onnx(net, caffemodel(net, weights))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    for entry in metadata(model)["layers"]:
        for i, name in enumerate(entry["params"]):
            np.testing.assert_array_equal(inits[name], weights[entry["name"]][i])
            assert list(inits[name].shape) == entry["param_shapes"][i]


def test_input_rewritten_in_place_keeps_caffe_names():
    text = net_text(layer("scale_in", "Power", ["data"], ["data"], "power_param { scale: 2 }") +
                    layer("out", "TanH", ["data"], ["out"]))
    model = caffe_to_onnx(caffe_io.parse_prototxt(text))
    meta = metadata(model)
    assert model.graph.input[0].name == "data@data" == meta["input_tensors"][0]
    assert meta["inputs"] == ["data"]
    assert meta["blobs"]["data"] == {"data": "data", "diff": "data@data", "shape": [2, 3, 5, 4]}
    x = np.ones((2, 3, 5, 4), np.float32)
    np.testing.assert_allclose(run_onnxruntime(model, {"data@data": x})[0], np.tanh(2.0), rtol=1e-6)


def test_v1_prototxt_with_v1_caffemodel_of_legacy_blobs(tmp_path):
    rng = np.random.default_rng(12)
    text = Path(__file__).with_name("test_caffe_io.py").read_text().split('V1_PROTOTXT = """\\\n')[1]
    net = caffe_io.parse_prototxt(text.split('"""')[0])
    weights = seeded_weights(net, rng)
    legacy = caffemodel(net, weights, v1=True)
    assert caffe_io.blob_shape(legacy.layers[3].blobs[0]) == (1, 1, 5, 16)
    caffe_io.write_caffemodel(legacy, tmp_path / "old.caffemodel")
    model = caffe_to_onnx(net, tmp_path / "old.caffemodel")
    x = {"data": rng.standard_normal((2, 3, 8, 7)).astype(np.float32)}
    assert_blobs_close(run_blobs(model, x), ref_forward(net, weights, x), REL_LAYER)
    assert metadata(model)["layers"][0]["name"] == "input"


# --- phase, level and stage rules ---------------------------------------------------------

RULES_NET = net_text(
    layer("train_only", "Dropout", ["data"], ["data"], "include { phase: TRAIN }") +
    layer("not_in_test", "TanH", ["data"], ["data"], "exclude { phase: TEST }") +
    layer("deploy_stage", "Sigmoid", ["data"], ["data"], 'include { stage: "deploy" }') +
    layer("level_2", "TanH", ["data"], ["data"], "include { min_level: 2 }") +
    layer("out", "ReLU", ["data"], ["out"]))


@pytest.mark.parametrize("phase,level,stages,expected", [
    ("TEST", 0, (), ["data", "out"]),
    ("TRAIN", 0, (), ["data", "train_only", "not_in_test", "out"]),
    (0, 0, ("deploy",), ["data", "train_only", "not_in_test", "deploy_stage", "out"]),
    ("TEST", 2, ("deploy",), ["data", "deploy_stage", "level_2", "out"]),
])
def test_layers_filtered_like_caffe(phase, level, stages, expected, recwarn):
    model = caffe_to_onnx(caffe_io.parse_prototxt(RULES_NET), phase=phase, level=level,
                          stages=stages)
    assert [entry["name"] for entry in metadata(model)["layers"]] == expected


def test_train_phase_warns_about_dropout():
    with pytest.warns(UserWarning, match="drops units at random"):
        caffe_to_onnx(caffe_io.parse_prototxt(RULES_NET), phase="TRAIN")


def rule(text):
    return caffe_io.parse_prototxt(f'layer {{ name: "x" include {{ {text} }} }}').layer[0].include[0]


def net_state(phase, level=0, stages=()):
    state = caffe_proto.NetState(phase=phase, level=level)
    state.stage.extend(stages)
    return state


@pytest.mark.parametrize("text,state,meets", [
    ("phase: TEST", net_state(TEST), True),
    ("phase: TEST", net_state(TRAIN), False),
    ("min_level: 1 max_level: 2", net_state(TEST, 2), True),
    ("min_level: 1 max_level: 2", net_state(TEST, 0), False),
    ("max_level: 2", net_state(TEST, 3), False),
    ('stage: "a" stage: "b"', net_state(TEST, 0, ("b", "a", "c")), True),
    ('stage: "a" stage: "b"', net_state(TEST, 0, ("a",)), False),
    ('not_stage: "deploy"', net_state(TEST, 0, ("deploy",)), False),
    ('not_stage: "deploy"', net_state(TEST, 0, ("train",)), True),
    ('phase: TRAIN not_stage: "x"', net_state(TRAIN, 0, ()), True),
])
def test_state_meets_rule_needs_every_condition(text, state, meets):
    assert state_meets_rule(state, rule(text)) is meets


def test_filter_layers_include_any_exclude_none():
    net = caffe_io.parse_prototxt(
        'layer { name: "both" include { phase: TRAIN } include { stage: "s" } }\n'
        'layer { name: "dropped" exclude { phase: TEST } exclude { stage: "s" } }\n'
        'layer { name: "kept" exclude { phase: TRAIN } }\n'
        'layer { name: "free" }')
    kept = filter_layers(net.layer, net_state(TEST, 0, ("s",)))
    assert [layer.name for layer in kept] == ["both", "kept", "free"]


# --- errors: one clear ModelError each -----------------------------------------------------------

def test_unconvertible_layers_are_named_together():
    text = net_text(layer("up", "Deconvolution", ["data"], ["up"]) +
                    layer("crop", "Crop", ["up", "data"], ["crop"]))
    with pytest.raises(ModelError, match=r"'up' \(Deconvolution\), 'crop' \(Crop\); supported"):
        caffe_to_onnx(caffe_io.parse_prototxt(text))


def test_training_layers_suggest_the_deploy_prototxt():
    text = net_text(layer("train", "Data", [], ["images", "labels"],
                          'data_param { source: "train_lmdb" batch_size: 4 }'))
    with pytest.raises(ModelError, match=r"'train' \(Data\).*use the deploy prototxt"):
        caffe_to_onnx(caffe_io.parse_prototxt(text))


def test_a_loss_layer_without_its_labels_says_how_to_declare_them():
    # seed 000: SoftmaxWithLoss put in place of Softmax in a deploy prototxt, its "label" bottom
    # declared nowhere: Caffe refuses it as an unknown bottom blob, and so does the importer
    text = net_text(layer("fc8", "InnerProduct", ["data"], ["fc8"],
                          "inner_product_param { num_output: 4 }") +
                    layer("loss", "SoftmaxWithLoss", ["fc8", "label"], ["prob"]))
    with pytest.raises(ModelError, match=r"layer 'loss': unknown bottom blob 'label' \(bottom 1\)"
                                         r".*declare input: 'label' with its shape"):
        caffe_to_onnx(caffe_io.parse_prototxt(text), fill_missing=True)


def test_blob_shape_mismatch_names_layer_and_shapes(tmp_path):
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    weights = seeded_weights(net, np.random.default_rng(13))
    weights["conv1"][0] = np.zeros((4, 3, 5, 5), np.float32)
    caffe_io.write_caffemodel(caffemodel(net, weights), tmp_path / "w.caffemodel")
    with pytest.raises(ModelError, match=r"w\.caffemodel: cannot copy param 0 of layer 'conv1': "
                                         r"shape mismatch.*\(4, 3, 5, 5\).*\(4, 3, 3, 3\)"):
        caffe_to_onnx(net, tmp_path / "w.caffemodel")


def test_blob_count_mismatch():
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    weights = seeded_weights(net, np.random.default_rng(14))
    weights["fc"] = weights["fc"][:1]
    with pytest.raises(ModelError, match=r"layer 'fc' \(InnerProduct\) holds 1 param blobs.*needs 2"):
        caffe_to_onnx(net, caffemodel(net, weights))
    weights["fc"] = []    # the layer is there, without blobs
    with pytest.raises(ModelError, match=r"layer 'fc' \(InnerProduct\) holds 0 param blobs"):
        caffe_to_onnx(net, caffemodel(net, weights))


def test_missing_weights_are_an_error_unless_filling_is_asked_for():
    net = caffe_io.parse_prototxt(IN_PLACE_NET.replace(
        "num_output: 5 }", "num_output: 5 weight_filler { type: 'gaussian' std: 0.1 } }"))
    trained = caffemodel(net, seeded_weights(net, np.random.default_rng(15)))
    # seed 004's net surgery: the prototxt renamed a layer, so the caffemodel lacks it
    trained.layer[[layer.name for layer in trained.layer].index("fc")].name = "fc_old"
    with pytest.raises(ModelError, match=r"layer 'fc' \(InnerProduct\) needs weights but "
                                         r"<caffemodel> has no layer named 'fc'.*fill_missing"):
        caffe_to_onnx(net, trained)
    with pytest.raises(ModelError, match="layer 'conv1' .*no caffemodel was given"):
        caffe_to_onnx(net)
    with pytest.warns(UserWarning, match=r"1 layer\(s\) \(fc\).*started from Caffe's fillers"):
        model = caffe_to_onnx(net, trained, fill_missing=True, rng=np.random.default_rng(0))
    # the prototxt's gaussian filler (std 0.1), as Caffe starts the renamed layer
    fc_weight = onnx.numpy_helper.to_array([t for t in model.graph.initializer
                                            if t.name == "fc#0"][0])
    assert fc_weight.shape == (5, 24) and abs(fc_weight.std() - 0.1) < 0.03


@pytest.mark.parametrize("cut_fraction", [0.1, 0.35, 0.6, 0.8, 0.97, 0.999])
def test_truncated_caffemodel_is_one_model_error(tmp_path, cut_fraction):
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    data = caffemodel(net, seeded_weights(net, np.random.default_rng(16))).SerializeToString()
    (tmp_path / "cut.caffemodel").write_bytes(data[:int(len(data) * cut_fraction)])
    with pytest.raises(ModelError, match="cut.caffemodel"):
        caffe_to_onnx(net, tmp_path / "cut.caffemodel")


def test_prototxt_syntax_error_and_missing_files(tmp_path):
    (tmp_path / "deploy.prototxt").write_text(IN_PLACE_NET.replace('top: "pool1"', 'top "pool1"'))
    line = next(i for i, text in enumerate(IN_PLACE_NET.splitlines(), 1) if '"pool1" pool' in text
                or 'top: "pool1"' in text)
    with pytest.raises(ModelError, match=rf"deploy\.prototxt: line {line}, column"):
        caffe_to_onnx(tmp_path / "deploy.prototxt")
    with pytest.raises(ModelError, match="prototxt not found"):
        caffe_to_onnx(tmp_path / "absent.prototxt")
    net = caffe_io.parse_prototxt(IN_PLACE_NET)
    with pytest.raises(ModelError, match="caffemodel not found"):
        caffe_to_onnx(net, tmp_path / "absent.caffemodel")


@pytest.mark.parametrize("layers,message", [
    (layer("t", "TanH", ["nothing"], ["t"]), r"unknown bottom blob 'nothing'"),
    (layer("a", "TanH", ["data"], ["t"]) + layer("b", "Sigmoid", ["data"], ["t"]),
     r"top blob 't' of layer 'b' is produced by multiple sources"),
    (layer("a", "TanH", ["data"], ["t"]) + layer("a", "Sigmoid", ["t"], ["u"]),
     r"layer name 'a' is used more than once"),
    (layer("a", "TanH", ["data"], ["t"], "include { phase: TEST } exclude { phase: TRAIN }"),
     r"both include and exclude"),
])
def test_inconsistent_nets(layers, message):
    with pytest.raises(ModelError, match=message):
        caffe_to_onnx(caffe_io.parse_prototxt(net_text(layers)), fill_missing=True)


# --- the five real BVLC deploy prototxts ----------------------------------------------------------

ZOO = {  # model: (output blob, classes)
    "bvlc_reference_caffenet": ("prob", 1000),
    "bvlc_alexnet": ("prob", 1000),
    "bvlc_googlenet": ("prob", 1000),
    "bvlc_reference_rcnn_ilsvrc13": ("fc-rcnn", 200),
    "finetune_flickr_style": ("prob", 20),
}


def test_caffenet_param_shapes_are_caffes():
    shapes = caffe_param_shapes(DATA / "bvlc_reference_caffenet" / "deploy.prototxt")
    assert shapes == {
        "conv1": [(96, 3, 11, 11), (96,)], "conv2": [(256, 48, 5, 5), (256,)],
        "conv3": [(384, 256, 3, 3), (384,)], "conv4": [(384, 192, 3, 3), (384,)],
        "conv5": [(256, 192, 3, 3), (256,)], "fc6": [(4096, 9216), (4096,)],
        "fc7": [(4096, 4096), (4096,)], "fc8": [(1000, 4096), (1000,)]}


@pytest.mark.slow
@pytest.mark.parametrize("model_name", [m for m in ZOO if m != "bvlc_googlenet"])
def test_real_deploy_converts_and_runs(model_name):
    output, classes = ZOO[model_name]
    with pytest.warns(UserWarning, match="started from Caffe's fillers"):
        model = caffe_to_onnx(DATA / model_name / "deploy.prototxt", fill_missing=True)
    meta = metadata(model)
    assert meta["outputs"] == [output] and meta["batch"]["symbolic"]
    assert meta["blobs"]["pool5"]["shape"] == [10, 256, 6, 6]
    assert [n.op_type for n in model.graph.node].count("LRN") == 2
    image = np.random.default_rng(17).uniform(-120, 120, (1, 3, 227, 227)).astype(np.float32)
    (y,) = run_onnxruntime(model, {"data": image})
    assert y.shape == (1, classes)
    text = (DATA / model_name / "deploy.prototxt").read_text()
    if output == "prob" and "gaussian" not in text:   # zero weights: a uniform softmax
        np.testing.assert_allclose(y, 1.0 / classes, rtol=1e-5)
    elif output == "prob":   # the fine-tuned fc8's gaussian filler: a softmax all the same
        assert len(set(np.round(y.ravel(), 6))) > 1 and abs(y.sum() - 1) < 1e-5


@pytest.mark.slow
def test_googlenet_with_a_seeded_caffemodel(tmp_path):
    rng = np.random.default_rng(18)
    prototxt = DATA / "bvlc_googlenet" / "deploy.prototxt"
    weights = seeded_weights(prototxt, rng)
    assert sum(w.size for ws in weights.values() for w in ws) == 6_998_552
    net = caffe_io.read_prototxt(prototxt)
    caffe_io.write_caffemodel(caffemodel(net, weights), tmp_path / "googlenet.caffemodel")
    model = caffe_to_onnx(prototxt, tmp_path / "googlenet.caffemodel")
    meta = metadata(model)
    node_names = [n.name for n in model.graph.node]
    assert len(set(node_names)) == len(node_names)
    assert meta["blobs"]["inception_5b/output"]["shape"] == [10, 1024, 7, 7]
    assert meta["blobs"]["pool1/3x3_s2"]["shape"] == [10, 64, 56, 56]   # ceil: 112 -> 56
    images = rng.uniform(-120, 120, (2, 3, 224, 224)).astype(np.float32)
    got = run_blobs(model, {"data": images})
    for blob, info in meta["blobs"].items():
        assert list(got[blob].shape) == [2] + info["shape"][1:], blob
    np.testing.assert_allclose(got["prob"].sum(axis=1), 1.0, rtol=1e-5)
    # the last layers against the reference, from ORT's own pool5 input
    fc = ref_forward(caffe_io.parse_prototxt(
        net_text(layer("pool5/7x7_s1", "Pooling", ["data"], ["pool5/7x7_s1"],
                       "pooling_param { pool: AVE kernel_size: 7 stride: 1 }") +
                 layer("loss3/classifier", "InnerProduct", ["pool5/7x7_s1"], ["fc"],
                       "inner_product_param { num_output: 1000 }") +
                 layer("prob", "Softmax", ["fc"], ["prob"]), shapes=[(2, 1024, 7, 7)])),
        weights, {"data": got["inception_5b/output"]})
    assert_blobs_close({"prob": got["prob"]}, {"prob": fc["prob"]}, REL_LAYER)
