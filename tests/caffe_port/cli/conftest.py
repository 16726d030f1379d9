"""A small ONNX classifier and a photograph for the command-line tests."""
import numpy as np
import onnx
import pytest

from caffe_port.models.builders import caffenet


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "caffenet_small.onnx"
    onnx.save(caffenet(width=0.25, input_size=67, num_classes=7, seed=1), path)
    return str(path)


@pytest.fixture(scope="session")
def photo(tmp_path_factory):
    import cv2
    path = tmp_path_factory.mktemp("img") / "photo.png"
    rng = np.random.default_rng(0)
    image = (rng.uniform(0, 255, (80, 100, 3))).astype(np.uint8)
    cv2.circle(image, (50, 40), 20, (0, 0, 255), -1)
    cv2.imwrite(str(path), image)
    return str(path)
