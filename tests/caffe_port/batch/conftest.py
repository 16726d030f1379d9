"""A small ONNX classifier (7 classes, 67×67 input) for the batch tests, and its Settings."""
import onnx
import pytest

from caffe_port.models.builders import caffenet


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "caffenet_small.onnx"
    onnx.save(caffenet(width=0.25, input_size=67, num_classes=7, seed=1), path)
    return str(path)
