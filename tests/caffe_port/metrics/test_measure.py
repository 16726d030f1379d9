"""measure(): the three metrics over a set of photographs on a small CAM-ready net, each number
checked against the single-image functions fed independently (the map from the method's own
``attribute``, the pointing game on the map taken back to the photograph by hand)."""
import os

import numpy as np
import pytest

from caffe_port.batch.inputs import Item
from caffe_port.errors import InputError
from caffe_port.methods import CAM, GuidedBackprop, Saliency, SmoothGrad
from caffe_port.metrics import deletion, insertion, is_hit, measure
from caffe_port.preprocess import Preset, load_image
from helpers import image_sets, tiny_nets

PRESET = Preset(name="tiny", resize=16, crop=16, scale=1 / 255)
METHODS = {"saliency": Saliency, "guided": GuidedBackprop, "cam": CAM}


@pytest.fixture(scope="module")
def net():
    return tiny_nets.conv_gap_fc(classes=4, seed=5, shape=(3, 16, 16))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return image_sets.write_photos(str(tmp_path_factory.mktemp("photos")), 3,
                                   sizes=((20, 30), (24, 24), (30, 18)))


def test_each_number_is_the_single_image_functions(net, photos):
    boxes = {os.path.basename(photos[0]): [(2, (0, 0, 12, 10)), (1, (20, 10, 30, 20))],
             os.path.basename(photos[2]): [(3, (2, 2, 16, 28))]}
    result = measure(photos, net, PRESET, METHODS, boxes=boxes, step=5)
    assert [r.error for r in result.images] == [None] * 3
    for r, path in zip(result.images, photos):
        photo = load_image(path)
        data = PRESET.preprocess(photo)
        top = int(np.argmax(Saliency(net).scores(data)[0]))
        assert r.target == top
        geometry = PRESET.geometry(photo.shape[:2])
        for name, cls in METHODS.items():
            method = cls(net)
            m = method.attribute(data, target=top)[0]
            expected = deletion(method, data, m, top, step=5)
            np.testing.assert_allclose(r.methods[name]["deletion"].probabilities, expected.probabilities, atol=1e-6)
            assert r.methods[name]["insertion"].auc == pytest.approx(insertion(method, data, m, top, step=5).auc, abs=1e-6)
            for c, hit, point in r.methods[name]["pointing"]:
                mc = method.attribute(data, target=c)[0]
                mc = np.abs(mc).sum(axis=0) if mc.ndim == 3 else mc
                full = np.where(geometry.covered(), geometry.to_original(mc), -np.inf)
                y, x = np.unravel_index(np.argmax(full), full.shape)
                assert point == (x, y)
                assert hit == is_hit((x, y), [b for k, b in boxes[os.path.basename(path)] if k == c])
    assert [len(r.methods["cam"]["pointing"]) for r in result.images] == [2, 0, 1]
    summary = result.summary()
    for name in METHODS:
        s = summary[name]
        assert s["deletion_auc"] == pytest.approx(np.mean([r.methods[name]["deletion"].auc for r in result.images]))
        per_class = {str(c): float(hit) for r in result.images for c, hit, _ in r.methods[name]["pointing"]}
        assert s["pointing_classes"] == per_class                  # one pair per class here
        assert s["pointing_game"] == pytest.approx(np.mean(list(per_class.values())))
        assert s["pointing_pairs"] == 3 and s["images"] == 3


def test_labels_bad_images_and_json(net, photos, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    items = [Item(photos[0], os.path.abspath(photos[0]), 2), Item(str(broken), str(broken), 1),
             Item(photos[1], os.path.abspath(photos[1]))]
    result = measure(items, net, PRESET, {"saliency": Saliency}, target="label")
    assert result.images[0].target == 2 and result.images[0].error is None
    assert "broken.png" in result.images[1].error
    assert "no list gives this image a class" in result.images[2].error
    assert result.summary()["saliency"]["images"] == 1
    assert result.summary()["saliency"]["pointing_game"] is None
    row = result.as_json()["images"][0]
    assert row["methods"]["saliency"]["deletion_auc"] == result.images[0].methods["saliency"]["deletion"].auc
    assert len(row["fractions"]) == len(row["methods"]["saliency"]["deletion_curve"]) == 17


def test_refusals_before_anything_runs(net, photos, tmp_path):
    with pytest.raises(InputError, match="class index 9 is out of range"):
        measure(photos, net, PRESET, {"saliency": Saliency}, boxes={"x.png": [(9, (0, 0, 1, 1))]})
    twin = tmp_path / os.path.basename(photos[0])
    twin.write_bytes(open(photos[0], "rb").read())
    with pytest.raises(InputError, match="matches images by file name"):
        measure([photos[0], str(twin)], net, PRESET, {"saliency": Saliency},
                boxes={os.path.basename(photos[0]): [(1, (0, 0, 4, 4))]})
    with pytest.raises(InputError, match="class index 7"):
        measure(photos, net, PRESET, {"saliency": Saliency}, target=7)
    with pytest.raises(InputError, match="no such file"):
        measure([str(tmp_path / "missing.png")], net, PRESET, {"saliency": Saliency})


def test_a_wrapper_first_scores_through_the_method_it_wraps(net, photos):
    methods = {"smoothgrad": lambda net: SmoothGrad(Saliency(net), samples=2), "saliency": Saliency}
    result = measure(photos[:1], net, PRESET, methods, step=16)
    assert result.images[0].error is None
    top = int(np.argmax(Saliency(net).scores(PRESET.preprocess(load_image(photos[0])))[0]))
    assert result.images[0].target == top
