"""tools/make_composites.py: the labelled sets of docs/evaluation.md, the same on every run, each
object pasted at the box its CSV row says, inside what the embedded model's crop sees."""
import csv
import importlib.util
import os

import numpy as np
import pytest

from caffe_port.batch.inputs import collect
from caffe_port.evaluation.annotations import class_resolver, load, match
from caffe_port.preprocess import load_image

pytest.importorskip("skimage")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tool():
    spec = importlib.util.spec_from_file_location("make_composites", os.path.join(ROOT, "tools", "make_composites.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sets_are_deterministic_and_each_object_sits_at_its_box(tmp_path):
    make = tool()
    first = list(make.composites(np.random.default_rng(0)))
    again = list(make.composites(np.random.default_rng(0)))
    assert len(first) == len(make.OBJECTS) * 7 * len(make.SIZES) == 84
    for (name, picture, class_index, box), (name2, picture2, class2, box2) in zip(first, again):
        assert (name, class_index, box) == (name2, class2, box2)
        np.testing.assert_array_equal(picture, picture2)
    rx0, ry0, rx1, ry1 = make.seen_region()
    backgrounds = make.backgrounds(np.random.default_rng(0))       # the noise is drawn first, as in composites
    for name, picture, _, (x0, y0, x1, y1) in first:
        assert rx0 <= x0 < x1 <= rx1 and ry0 <= y0 < y1 <= ry1
        ground = backgrounds[name.split("_")[1]]
        outside = np.ones(picture.shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(picture[outside], ground[outside])   # only the box was pasted
    make.main(["make_composites.py", str(tmp_path)])
    with open(tmp_path / "composites.csv", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image", "class", "x0", "y0", "x1", "y1"] and len(rows) == 85
    # the files read back as an annotated set: every composite has its box, every photograph its XML
    resolve = class_resolver(1000)
    composites = collect([str(tmp_path / "composites")])
    truths = match(composites, load(str(tmp_path / "composites.csv"), resolve))
    assert len(truths) == 84
    photos = collect([str(tmp_path / "photos")])
    assert len(match(photos, load(os.path.join(ROOT, "tests", "data", "labelled"), resolve))) == 5
    for photo in photos:
        truth = match([photo], load(os.path.join(ROOT, "tests", "data", "labelled"), resolve))[photo.path]
        assert truth.size == load_image(photo.path).shape[1::-1]
