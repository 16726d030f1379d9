"""caffe.NetSpec / layers / params / to_proto, caffe.draw, caffe.coord_map and
caffe.layer_type_list: the prototxts pycaffe's net_spec writes (names included), the nets they
build, the graph draw_net lays out, the coordinate maps worked out by hand."""
import shutil

import numpy as np
import pytest

import caffe_port.pycaffe as caffe
from caffe_port.models import caffe_io
from caffe_port.pycaffe import coord_map, layers as L, params as P
from caffe_port.pycaffe.proto import caffe_pb2


def lenet(batch, named=True):
    """01-learning-lenet's net with DummyData for its LMDB Data layer."""
    n = caffe.NetSpec() if named else None
    data, label = L.DummyData(shape=[dict(dim=[batch, 1, 28, 28]), dict(dim=[batch, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50, weight_filler=dict(type="xavier"))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    fc1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type="xavier"))
    relu1 = L.ReLU(fc1, in_place=True)
    score = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type="xavier"))
    loss = L.SoftmaxWithLoss(score, label)
    if not named:
        return loss.to_proto()
    for name, top in [("data", data), ("label", label), ("conv1", conv1), ("pool1", pool1),
                      ("conv2", conv2), ("pool2", pool2), ("fc1", fc1), ("relu1", relu1),
                      ("score", score), ("loss", loss)]:
        n[name] = top
    return n.to_proto()


def test_netspec_writes_the_layers_and_names_of_the_notebook():
    proto = lenet(64)
    assert [(layer.name, layer.type, list(layer.bottom), list(layer.top)) for layer in proto.layer] == [
        ("data", "DummyData", [], ["data", "label"]),
        ("conv1", "Convolution", ["data"], ["conv1"]), ("pool1", "Pooling", ["conv1"], ["pool1"]),
        ("conv2", "Convolution", ["pool1"], ["conv2"]), ("pool2", "Pooling", ["conv2"], ["pool2"]),
        ("fc1", "InnerProduct", ["pool2"], ["fc1"]), ("relu1", "ReLU", ["fc1"], ["fc1"]),
        ("score", "InnerProduct", ["fc1"], ["score"]),
        ("loss", "SoftmaxWithLoss", ["score", "label"], ["loss"])]
    conv1 = proto.layer[1].convolution_param
    assert (conv1.num_output, list(conv1.kernel_size), conv1.weight_filler.type) == (20, [5], "xavier")
    assert proto.layer[2].pooling_param.pool == caffe_pb2.PoolingParameter.MAX == P.Pooling.MAX
    assert proto.layer[0].transform_param.scale == pytest.approx(1 / 255)
    # the text the notebook writes out is the protobuf text of that message, and reads back
    assert caffe_io.parse_prototxt(str(proto)) == proto


def test_to_proto_names_anonymous_tops_by_type():
    proto = lenet(8, named=False)
    assert [layer.name for layer in proto.layer] == [
        "DummyData1", "Convolution1", "Pooling1", "Convolution2", "Pooling2", "InnerProduct1",
        "ReLU1", "InnerProduct2", "SoftmaxWithLoss1"]
    assert list(proto.layer[0].top) == ["DummyData1", "DummyData2"]
    assert list(proto.layer[-1].bottom) == ["InnerProduct2", "DummyData2"]


def test_netspec_builds_a_net_that_runs(tmp_path):
    path = tmp_path / "lenet.prototxt"
    path.write_text(str(lenet(4)))
    caffe.set_random_seed(0)
    net = caffe.Net(str(path), caffe.TRAIN)
    assert [(k, v.data.shape) for k, v in net.blobs.items()] == [
        ("data", (4, 1, 28, 28)), ("label", (4, 1, 1, 1)), ("conv1", (4, 20, 24, 24)),
        ("pool1", (4, 20, 12, 12)), ("conv2", (4, 50, 8, 8)), ("pool2", (4, 50, 4, 4)),
        ("fc1", (4, 500)), ("score", (4, 10)), ("loss", ())]
    assert [(k, v[0].data.shape) for k, v in net.params.items()] == [
        ("conv1", (20, 1, 5, 5)), ("conv2", (50, 20, 5, 5)), ("fc1", (500, 800)),
        ("score", (10, 500))]
    # xavier: U(±√(3/fan_in)), fan_in 25 for conv1
    conv1 = net.params["conv1"][0].data
    assert 0.95 * np.sqrt(3 / 25) < np.abs(conv1).max() <= np.sqrt(3 / 25) + 1e-6
    loss = float(net.forward()["loss"])
    assert np.isfinite(loss) and loss > 0        # the labels are DummyData's zeros


def test_type_errors_and_zero_tops():
    data = L.DummyData(ntop=2)
    with pytest.raises(TypeError, match=r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"):
        L.Silence(data, ntop=0)
    silence = L.Silence(*data, ntop=0)
    assert silence.type_name == "Silence" and silence.tops == ()      # the layer itself
    n = caffe.NetSpec()
    n.a, n.b = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence = L.Silence(n.a, n.b, ntop=0)
    proto = n.to_proto()
    assert [layer.name for layer in proto.layer] == ["a", "silence"]
    with pytest.raises(AttributeError, match="no top 'missing'"):
        n.missing


def test_layer_type_list_names_what_net_builds():
    types = caffe.layer_type_list()
    assert types == sorted(types)
    assert {"Convolution", "InnerProduct", "DummyData", "SoftmaxWithLoss", "Accuracy"} <= set(types)
    assert "Data" not in types        # LMDB/LevelDB data layers are not built


def caffenet_like():
    net = caffe_pb2.NetParameter()
    net.name = "drawn"
    for text in ['name: "data" type: "Input" top: "data"',
                 'name: "conv1" type: "Convolution" bottom: "data" top: "conv1" '
                 'convolution_param { num_output: 8 kernel_size: 3 stride: 2 pad: 1 } '
                 'param { lr_mult: 1 } param { lr_mult: 2 }',
                 'name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1"',
                 'name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" '
                 'pooling_param { pool: AVE kernel_size: 2 stride: 2 }',
                 'name: "train_only" type: "Dropout" bottom: "pool1" top: "pool1" '
                 'include { phase: TRAIN }']:
        net.layer.append(caffe_io.parse_prototxt(text, "<layer>", "LayerParameter"))
    return net


def test_draw_lays_out_layers_blobs_and_edges():
    pytest.importorskip("pydot")
    graph = caffe.draw.get_pydot_graph(caffenet_like(), "TB", display_lrm=True)
    labels = {node.get_name(): node for node in graph.get_nodes()}
    conv = '"conv1 (Convolution) kernel size: 3 stride: 2 pad: 1 lr mult: 1.0, 2.0"'
    assert conv in labels and labels[conv].get("fillcolor") == "#FF5050"
    assert labels['"relu1 (ReLU)"'].get("fillcolor") == "#90EE90"       # in place
    assert '"pool1 (Pooling AVE) kernel size: 2 stride: 2 pad: 0"' in labels
    edges = {(e.get_source(), e.get_destination()): e.get("label") for e in graph.get_edges()}
    assert edges[(conv, "conv1")] == "8"
    test_graph = caffe.draw.get_pydot_graph(caffenet_like(), "LR", phase=caffe.TEST)
    assert not any("train_only" in node.get_name() for node in test_graph.get_nodes())


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_draw_net_to_file_renders(tmp_path):
    pytest.importorskip("pydot")
    caffe.draw.draw_net_to_file(caffenet_like(), str(tmp_path / "net.png"), "LR")
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def conv_pool(ks, stride, pad):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 64, 64]))
    n.conv = L.Convolution(n.data, num_output=4, kernel_size=ks, stride=stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    return n


def test_coord_maps_by_hand():
    # back from pool to data: pool k2 s2 (a ½, b −¼), conv k3 s1 p1 (a 1, b 0) compose to
    # (½, −¼), whose inverse is data → pool: a 2, b ½
    n = conv_pool(3, 1, 1)
    ax, a, b = coord_map.coord_map_from_to(n.pool, n.data)
    assert ax == 1 and (a, b) == (pytest.approx(2), pytest.approx(0.5))
    # a deconvolution k4 s2 (a 2, b 3/2) undoes the stride: scale 1, shift −1: a crop by 1
    n.up = L.Deconvolution(n.pool, num_output=4, kernel_size=4, stride=2)
    ax, a, b = coord_map.coord_map_from_to(n.up, n.data)
    assert (a, b) == (pytest.approx(1), pytest.approx(-1))
    crop = coord_map.crop(n.up, n.data)
    assert crop.fn.type_name == "Crop" and crop.fn.params["crop_param"] == {"axis": 2, "offset": [1]}
    n.fc = L.InnerProduct(n.pool, num_output=3)
    with pytest.raises(RuntimeError, match="connected by spatial layers"):
        coord_map.coord_map_from_to(n.fc, n.data)
