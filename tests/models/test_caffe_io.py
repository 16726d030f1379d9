"""Caffe's files without Caffe: the schema's wire facts, prototxt and caffemodel round trips in
the V1 and V2 formats, the format upgrades, and one clear ModelError per kind of bad file."""
from pathlib import Path

import numpy as np
import pytest

from caffe_port.errors import ModelError
from caffe_port.models import caffe_io, caffe_proto

DATA = Path(__file__).resolve().parents[1] / "data" / "caffe"
ZOO = ["bvlc_reference_caffenet", "bvlc_alexnet", "bvlc_googlenet",
       "bvlc_reference_rcnn_ilsvrc13", "finetune_flickr_style"]

V1_PROTOTXT = """\
name: "TinyV1"
input: "data"
input_dim: 2
input_dim: 3
input_dim: 8
input_dim: 7
layers {
  name: "conv1"
  type: CONVOLUTION
  bottom: "data"
  top: "conv1"
  blobs_lr: 1
  blobs_lr: 2
  weight_decay: 1
  weight_decay: 0
  convolution_param { num_output: 4 kernel_size: 3 stride: 2 }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers {
  name: "pool1"
  type: POOLING
  bottom: "conv1"
  top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 }
}
layers {
  name: "fc"
  type: INNER_PRODUCT
  bottom: "pool1"
  top: "fc"
  inner_product_param { num_output: 5 }
}
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
"""


def field_number(message, field):
    return caffe_proto.message_class(message).DESCRIPTOR.fields_by_name[field].number


# --- the schema ---------------------------------------------------------------------------------

@pytest.mark.parametrize("message,field,number", [
    ("NetParameter", "layer", 100), ("NetParameter", "layers", 2), ("NetParameter", "input", 3),
    ("NetParameter", "input_dim", 4), ("NetParameter", "input_shape", 8),
    ("NetParameter", "force_backward", 5), ("LayerParameter", "blobs", 7),
    ("LayerParameter", "convolution_param", 106), ("LayerParameter", "inner_product_param", 117),
    ("LayerParameter", "batch_norm_param", 139), ("LayerParameter", "input_param", 143),
    ("V1LayerParameter", "blobs", 6), ("V1LayerParameter", "convolution_param", 10),
    ("V1LayerParameter", "name", 4), ("BlobProto", "data", 5), ("BlobProto", "shape", 7),
    ("BlobProto", "num", 1), ("PoolingParameter", "round_mode", 13),
    ("ConvolutionParameter", "dilation", 18), ("ConvolutionParameter", "group", 5),
])
def test_field_numbers_are_caffes(message, field, number):
    assert field_number(message, field) == number


def test_v1_layer_type_enum_values():
    LayerType = caffe_proto.V1LayerParameter.LayerType
    assert (LayerType.Value("CONVOLUTION"), LayerType.Value("INNER_PRODUCT"),
            LayerType.Value("POOLING"), LayerType.Value("SOFTMAX_LOSS"),
            LayerType.Value("DECONVOLUTION")) == (4, 14, 17, 21, 39)
    assert set(caffe_io.V1_TYPE_NAMES) == set(LayerType.keys())


def test_defaults_are_caffes():
    conv = caffe_proto.ConvolutionParameter()
    pool = caffe_proto.PoolingParameter()
    lrn = caffe_proto.LRNParameter()
    assert (conv.bias_term, conv.group, conv.axis) == (True, 1, 1)
    assert (pool.stride, pool.pool, pool.round_mode, pool.ceil_mode) == (1, 0, 0, True)
    assert (lrn.local_size, lrn.alpha, lrn.beta, lrn.k) == (5, 1.0, 0.75, 1.0)
    assert caffe_proto.BatchNormParameter().eps == pytest.approx(1e-5)
    assert caffe_proto.DropoutParameter().dropout_ratio == 0.5
    assert caffe_proto.NetState().phase == 1   # TEST
    assert caffe_proto.FillerParameter().type == "constant"


def test_blob_wire_bytes_match_packed_floats_by_hand():
    blob = caffe_io.array_to_blob(np.array([[1.0, 2.0, 3.0]], np.float32))
    # field 5 (data), wire type 2, 12 bytes of little-endian float32; field 7 (shape) {dim 1, 3}
    expected = bytes([0x2A, 12]) + np.array([1, 2, 3], "<f4").tobytes() + \
        bytes([0x3A, 4, 0x0A, 2, 1, 3])
    assert blob.SerializeToString() == expected


def test_fast_blob_writer_equals_protobuf_extend():
    rng = np.random.default_rng(0)
    array = rng.standard_normal((3, 4, 5)).astype(np.float32)
    slow = caffe_proto.BlobProto()
    slow.shape.dim.extend(array.shape)
    slow.data.extend(array.ravel().tolist())
    assert caffe_io.array_to_blob(array).SerializeToString() == slow.SerializeToString()


# --- prototxt round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("model", ZOO)
def test_real_deploy_prototxt_round_trip(model, tmp_path):
    net = caffe_io.read_prototxt(DATA / model / "deploy.prototxt")
    assert len(net.layer) > 20 and net.layer[0].type == "Input"
    caffe_io.write_prototxt(net, tmp_path / "copy.prototxt")
    assert caffe_io.read_prototxt(tmp_path / "copy.prototxt") == net


def test_v1_prototxt_round_trip_and_upgrade(tmp_path):
    net = caffe_io.parse_prototxt(V1_PROTOTXT)
    caffe_io.write_prototxt(net, tmp_path / "v1.prototxt")
    again = caffe_io.read_prototxt(tmp_path / "v1.prototxt")
    assert again == net and len(again.layers) == 5 and not len(again.layer)

    v2 = caffe_io.upgrade_net(net)
    assert [layer.type for layer in v2.layer] == ["Input", "Convolution", "ReLU", "Pooling",
                                                  "InnerProduct", "Softmax"]
    assert v2.layer[0].name == "input" and list(v2.layer[0].input_param.shape[0].dim) == [2, 3, 8, 7]
    assert [(p.lr_mult, p.decay_mult) for p in v2.layer[1].param] == [(1, 1), (2, 0)]
    assert v2.layer[1].convolution_param.stride == [2]
    assert not len(v2.input) and not len(v2.input_dim)
    assert len(net.layers) == 5    # the input is left as it was


def test_input_shape_form_upgrades_to_input_layer():
    net = caffe_io.parse_prototxt('input: "a" input_shape { dim: 1 dim: 4 } '
                                  'input: "b" input_shape { dim: 1 dim: 2 dim: 3 }')
    layer = caffe_io.upgrade_net(net).layer[0]
    assert list(layer.top) == ["a", "b"]
    assert [list(s.dim) for s in layer.input_param.shape] == [[1, 4], [1, 2, 3]]


def test_ceil_mode_of_forks_and_round_mode_of_upstream_both_parse():
    fork = caffe_io.parse_prototxt('layer { name: "p" type: "Pooling" '
                                   'pooling_param { kernel_size: 3 ceil_mode: false } }')
    upstream = caffe_io.parse_prototxt('layer { name: "p" type: "Pooling" '
                                       'pooling_param { kernel_size: 3 round_mode: FLOOR } }')
    assert fork.layer[0].pooling_param.HasField("ceil_mode")
    assert fork.layer[0].pooling_param.ceil_mode is False
    assert upstream.layer[0].pooling_param.round_mode == 1


# --- caffemodel round trips -----------------------------------------------------------------------

def seeded_blobs(rng, shapes):
    return [rng.standard_normal(shape).astype(np.float32) for shape in shapes]


def test_v2_caffemodel_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    net = caffe_io.read_prototxt(DATA / "bvlc_reference_caffenet" / "deploy.prototxt")
    weights = {"conv1": seeded_blobs(rng, [(4, 3, 3, 3), (4,)]),
               "fc8": seeded_blobs(rng, [(5, 7), (5,)])}
    for layer in net.layer:
        for array in weights.get(layer.name, []):
            layer.blobs.append(caffe_io.array_to_blob(array))
    caffe_io.write_caffemodel(net, tmp_path / "net.caffemodel")
    again = caffe_io.read_caffemodel(tmp_path / "net.caffemodel")
    assert again == net
    stored = caffe_io.caffemodel_layers(again)
    assert {name for name, blobs in stored.items() if blobs} == {"conv1", "fc8"}
    assert stored["relu1"] == [] and len(stored) == len(net.layer)
    for name, arrays in weights.items():
        for blob, array in zip(stored[name], arrays):
            np.testing.assert_array_equal(caffe_io.blob_to_array(blob), array)


def test_v1_caffemodel_round_trip_with_legacy_blobs(tmp_path):
    rng = np.random.default_rng(2)
    net = caffe_io.parse_prototxt(V1_PROTOTXT)
    fc_weight, fc_bias = seeded_blobs(rng, [(5, 36), (5,)])
    fc = net.layers[3]
    fc.blobs.append(caffe_io.array_to_blob(fc_weight, legacy=True))
    fc.blobs.append(caffe_io.array_to_blob(fc_bias, legacy=True))
    caffe_io.write_caffemodel(net, tmp_path / "v1.caffemodel")
    again = caffe_io.read_caffemodel(tmp_path / "v1.caffemodel")
    assert again == net
    weight_blob, bias_blob = caffe_io.caffemodel_layers(again)["fc"]
    # the old 4D form: an InnerProduct weight (5, 36) is stored as 1 x 1 x 5 x 36
    assert caffe_io.blob_shape(weight_blob) == (1, 1, 5, 36)
    assert caffe_io.blob_shape(bias_blob) == (1, 1, 1, 5)
    assert caffe_io.legacy_shape_matches((5, 36), weight_blob)
    assert not caffe_io.legacy_shape_matches((36, 5), weight_blob)
    assert not caffe_io.legacy_shape_matches((1, 5, 36), caffe_io.array_to_blob(fc_weight))
    np.testing.assert_array_equal(caffe_io.blob_to_array(weight_blob).reshape(5, 36), fc_weight)


def test_downgrade_then_upgrade_gives_the_v2_net_back():
    v2 = caffe_io.upgrade_net(caffe_io.parse_prototxt(V1_PROTOTXT))
    v2.layer[1].blobs.append(caffe_io.array_to_blob(np.ones((4, 3, 3, 3), np.float32)))
    back = caffe_io.upgrade_net(caffe_io.downgrade_to_v1(v2))
    assert [layer.name for layer in back.layer] == [layer.name for layer in v2.layer]
    assert back.layer[0] == v2.layer[0]
    assert caffe_io.blob_shape(back.layer[1].blobs[0]) == (4, 3, 3, 3)
    assert back.layer[3].pooling_param == v2.layer[3].pooling_param


def test_double_data_wins_over_float_data():
    blob = caffe_proto.BlobProto()
    blob.shape.dim.append(2)
    blob.double_data.extend([0.5, -1.5])
    np.testing.assert_array_equal(caffe_io.blob_to_array(blob), np.float32([0.5, -1.5]))


def test_mean_binaryproto(tmp_path):
    mean = np.random.default_rng(3).uniform(0, 255, (1, 3, 4, 5)).astype(np.float32)
    (tmp_path / "mean.binaryproto").write_bytes(
        caffe_io.array_to_blob(mean, legacy=True).SerializeToString())
    np.testing.assert_array_equal(caffe_io.read_blobproto(tmp_path / "mean.binaryproto"), mean)


# --- bad files: one clear ModelError each ---------------------------------------------------

def test_missing_files(tmp_path):
    with pytest.raises(ModelError, match="prototxt not found: .*nope.prototxt"):
        caffe_io.read_prototxt(tmp_path / "nope.prototxt")
    with pytest.raises(ModelError, match="caffemodel not found"):
        caffe_io.read_caffemodel(tmp_path / "nope.caffemodel")


def test_syntax_error_names_file_line_and_column(tmp_path):
    text = 'name: "x"\nlayer {\n  name: "conv1"\n  type: "Convolution"\n  bottom "data"\n}\n'
    (tmp_path / "bad.prototxt").write_text(text)
    with pytest.raises(ModelError, match=r"bad\.prototxt: line 5, column \d+: .*") as info:
        caffe_io.read_prototxt(tmp_path / "bad.prototxt")
    assert "\n" not in str(info.value)


def test_unknown_field_is_skipped_with_a_warning_naming_it():
    text = ('layer { name: "p" type: "Pooling"\n'
            '  pooling_param { kernel_size: 3 pad_mode: 2 stride: 2 } }')
    with pytest.warns(UserWarning, match=r"line 2.*'pad_mode'.*caffe.PoolingParameter"):
        net = caffe_io.parse_prototxt(text)
    assert net.layer[0].pooling_param.stride == 2 and net.layer[0].pooling_param.kernel_size == 3


def test_unknown_enum_value_is_an_error_with_its_line():
    with pytest.raises(ModelError, match="line 1"):
        caffe_io.parse_prototxt('layer { name: "p" pooling_param { pool: MEDIAN } }')


def test_solver_prototxt_is_named_as_such():
    with pytest.raises(ModelError, match="solver prototxt"):
        caffe_io.parse_prototxt('net: "train_val.prototxt"\nbase_lr: 0.01\n')


def test_binary_file_given_as_prototxt(tmp_path):
    net = caffe_io.parse_prototxt(V1_PROTOTXT)
    net.layers[3].blobs.append(caffe_io.array_to_blob(np.zeros((5, 36), np.float32)))
    caffe_io.write_caffemodel(net, tmp_path / "w.caffemodel")
    with pytest.raises(ModelError, match="not a text prototxt"):
        caffe_io.read_prototxt(tmp_path / "w.caffemodel")


def test_text_file_given_as_caffemodel(tmp_path):
    (tmp_path / "deploy.caffemodel").write_text(V1_PROTOTXT)
    with pytest.raises(ModelError, match="deploy.caffemodel: not a readable binary"):
        caffe_io.read_caffemodel(tmp_path / "deploy.caffemodel")


def test_truncated_caffemodel(tmp_path):
    net = caffe_io.upgrade_net(caffe_io.parse_prototxt(V1_PROTOTXT))
    net.layer[4].blobs.append(caffe_io.array_to_blob(np.ones((5, 36), np.float32)))
    data = net.SerializeToString()
    (tmp_path / "cut.caffemodel").write_bytes(data[:len(data) - 50])   # inside the weight data
    with pytest.raises(ModelError, match="cut.caffemodel: .*truncated or corrupt"):
        caffe_io.read_caffemodel(tmp_path / "cut.caffemodel")


def test_blob_count_disagreeing_with_shape():
    blob = caffe_io.array_to_blob(np.ones((2, 3), np.float32))
    blob.shape.dim[1] = 4
    with pytest.raises(ModelError, match="holds 6 values but its shape \\(2, 4\\) needs 8"):
        caffe_io.blob_to_array(blob, "w.caffemodel: layer 'fc'")


def test_hdf5_snapshot_is_named(tmp_path):
    (tmp_path / "w.caffemodel.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(ModelError, match="HDF5"):
        caffe_io.read_caffemodel(tmp_path / "w.caffemodel.h5")


@pytest.mark.parametrize("text,message", [
    ('input: "data" input_dim: 1 input_dim: 3', "need 4 input_dim values"),
    ('input: "data"', "has no shape"),
    ('input: "data" input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 4 '
     'input_shape { dim: 1 }', "not both"),
    ('layers { layer { name: "conv1" type: "conv" } }', "V0 format"),
    ('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }', "both 'layer'"),
])
def test_inconsistent_nets_are_refused_on_upgrade(text, message):
    with pytest.raises(ModelError, match=message):
        caffe_io.upgrade_net(caffe_io.parse_prototxt(text), "net.prototxt")
