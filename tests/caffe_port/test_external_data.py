"""Models whose tensors live beside them (model.onnx.data): read from the model's own folder
wherever the user runs from; bytes and ModelProtos from the folder given; one line when missing."""
import os

import numpy as np
import onnx
import pytest

from caffe_port import Net
from caffe_port.errors import ModelError
from caffe_port.models.builders import caffenet

X = np.random.default_rng(0).standard_normal((1, 3, 67, 67)).astype(np.float32)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(folder, model path, in-memory model): weights in model.onnx.data, as the dynamo exporter
    writes them."""
    folder = tmp_path_factory.mktemp("exported")
    model = caffenet(width=0.25, input_size=67, num_classes=7, seed=1)
    path = folder / "model.onnx"
    written = onnx.ModelProto()
    written.CopyFrom(model)                 # onnx.save turns the proto it writes into references
    onnx.save(written, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    assert (folder / "model.onnx.data").is_file()
    return folder, path, model


def scores(net):
    return net.forward(data=X)["prob"]


def test_read_from_the_model_folder_wherever_we_run(saved, tmp_path, monkeypatch):
    folder, path, model = saved
    expected = scores(Net(model, device="cpu"))
    monkeypatch.chdir(tmp_path)                     # not the model's folder
    net = Net(str(path), device="cpu")
    np.testing.assert_array_equal(scores(net), expected)
    grad = net.backward(start=net.score_blob, **{net.score_blob: np.ones((1, 7), np.float32)})["data"]
    assert grad.shape == X.shape and np.abs(grad).max() > 0


def test_bytes_and_protos_take_the_folder_given(saved, tmp_path, monkeypatch):
    folder, path, model = saved
    expected = scores(Net(model, device="cpu"))
    data = path.read_bytes()
    proto = onnx.load(path, load_external_data=False)
    monkeypatch.chdir(tmp_path)
    for given in (data, proto):
        np.testing.assert_array_equal(scores(Net(given, weights=str(folder), device="cpu")), expected)
        with pytest.raises(ModelError, match=r"stored in 'model.onnx.data', which is not a file in \."):
            Net(given, device="cpu")
    assert onnx.external_data_helper.uses_external_data(proto.graph.initializer[0])   # left as it was
    monkeypatch.chdir(folder)
    np.testing.assert_array_equal(scores(Net(data, device="cpu")), expected)


def test_a_missing_data_file_is_one_line(saved, tmp_path):
    folder, path, model = saved
    lonely = tmp_path / "model.onnx"
    lonely.write_bytes(path.read_bytes())
    with pytest.raises(ModelError) as info:
        Net(str(lonely), device="cpu")
    message = str(info.value)
    assert "model.onnx.data" in message and os.fspath(tmp_path) in message and "\n" not in message


def test_a_location_outside_the_folder_is_refused(saved, tmp_path):
    folder, path, model = saved
    proto = onnx.load(path, load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../model.onnx.data"
    (tmp_path / "model.onnx.data").write_bytes((folder / "model.onnx.data").read_bytes())
    (tmp_path / "sub").mkdir()
    escaping = tmp_path / "sub" / "model.onnx"
    onnx.save(proto, escaping)
    with pytest.raises(ModelError, match="external tensor data"):
        Net(str(escaping), device="cpu")
