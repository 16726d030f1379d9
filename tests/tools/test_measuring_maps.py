"""tools/measuring_maps.py photos: the docs' photographs and boxes — every box inside its
photograph, its class one of ImageNet's, the CSV what caffe-port metrics reads."""
import importlib.util
from pathlib import Path

import pytest

from caffe_port import imagenet
from caffe_port.metrics import read_boxes_csv
from caffe_port.preprocess import load_image

TOOL = Path(__file__).resolve().parents[2] / "tools" / "measuring_maps.py"


def test_photos_and_boxes(tmp_path):
    pytest.importorskip("skimage")
    spec = importlib.util.spec_from_file_location("measuring_maps", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.write_photos(str(tmp_path))
    boxes = read_boxes_csv(str(tmp_path / "boxes.csv"))
    assert sorted(boxes) == sorted(name for name, *_ in tool.PHOTOS)
    for name, entries in boxes.items():
        height, width = load_image(str(tmp_path / name)).shape[:2]
        for target, (x0, y0, x1, y1) in entries:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (name, (x0, y0, x1, y1))
            imagenet.class_index(target)                 # a name ImageNet has
