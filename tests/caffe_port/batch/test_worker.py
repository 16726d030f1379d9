"""The Worker: a batch's maps are each image's own (one forward for all methods and classes),
in the photograph's pixels; bad images become errors, not exceptions."""
import numpy as np
import pytest

from caffe_port import Net
from caffe_port.batch.inputs import Item
from caffe_port.batch.worker import LABEL, MethodSpec, Settings, Worker, decode
from caffe_port.errors import InputError
from caffe_port.methods import GradCAM, GuidedBackprop, Saliency
from caffe_port.preprocess import load_image, preset
from helpers.image_sets import write_bad_files, write_photos

METHODS = (MethodSpec("saliency", Saliency), MethodSpec("gradcam", GradCAM),
           MethodSpec("guided", GuidedBackprop))


@pytest.fixture(scope="module")
def net(small_model):
    return Net(small_model, device="cpu")


def settings(small_model, **changes):
    base = dict(model=small_model, preset=preset("torchvision", crop=67, resize=70), methods=METHODS,
                top_k=2, batch_size=4)
    base.update(changes)
    return Settings(**base)


def items_of(paths, labels=None):
    return [Item(p, p, None if labels is None else labels[k]) for k, p in enumerate(paths)]


def test_a_batch_gives_each_images_own_maps_from_one_forward(tmp_path, small_model, net):
    paths = write_photos(str(tmp_path), 6)
    s = settings(small_model)
    worker = Worker(s, net)
    forwards = []
    original = net.forward
    net.forward = lambda *a, **k: forwards.append(1) or original(*a, **k)
    try:
        results = worker.explain([worker.decode(i) for i in items_of(paths)])
    finally:
        del net.forward
    assert len(forwards) == 2                       # 6 images in batches of 4: two forwards in all
    p = s.preset
    for path, result in zip(paths, results):
        photo = load_image(path)
        data = p.preprocess(photo)
        assert result.error is None and result.size == photo.shape[:2]
        assert [(r.method, r.rank) for r in result.rows] == [(m, k) for m in ("saliency", "gradcam", "guided")
                                                             for k in (1, 2)]
        for spec in METHODS:
            single = spec.factory(net)
            expected = single.attribute(data, top_k=2)[:, 0]
            rows = [r for r in result.rows if r.method == spec.name]
            assert [r.class_index for r in rows] == list(single.classes_[:, 0])
            for k, row in enumerate(rows):
                assert row.saliency_map.shape[-2:] == photo.shape[:2]
                # the same up to float32 summation order (a batch's GEMMs sum in another order)
                np.testing.assert_allclose(row.saliency_map, p.to_original(expected[k], photo.shape[:2]),
                                           rtol=1e-5, atol=1e-6 * float(np.abs(expected[k]).max()))
        scores = Saliency(net).scores(data)[0]
        probs = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        for row in result.rows:
            assert row.score == pytest.approx(scores[row.class_index], rel=1e-6)
            assert row.prob == pytest.approx(probs[row.class_index], rel=1e-5)


def test_bad_files_become_errors_and_the_rest_of_the_batch_is_explained(tmp_path, small_model, net):
    paths = write_photos(str(tmp_path), 2)
    bad = write_bad_files(str(tmp_path / "bad"), paths)
    missing = str(tmp_path / "gone.jpg")
    worker = Worker(settings(small_model), net)
    order = [paths[0], bad["empty"], bad["text"], bad["cut_jpeg"], bad["cut_png"], missing, paths[1]]
    results = worker.explain([worker.decode(i) for i in items_of(order)])
    assert [r.error is None for r in results] == [True, False, False, False, False, False, True]
    errors = [r.error for r in results[1:6]]
    assert "not an image file" in errors[0] and "not an image file" in errors[1]
    assert "truncated JPEG" in errors[2] and "truncated PNG" in errors[3]
    assert "not found" in errors[4]
    assert all(order[k + 1] in e and "\n" not in e for k, e in enumerate(errors))


def test_images_of_other_shapes_go_in_their_own_forward(tmp_path, small_model, net):
    # no resize or crop: each photograph's own size is its input shape; the net takes only 67×67
    paths = write_photos(str(tmp_path), 3, sizes=((67, 67), (60, 90), (67, 67)))
    worker = Worker(settings(small_model, preset=preset("torchvision", resize=None, crop=None)), net)
    results = worker.explain([worker.decode(i) for i in items_of(paths)])
    assert results[0].error is None and results[2].error is None
    assert results[1].error is not None and "\n" not in results[1].error


def test_class_label_explains_each_images_ground_truth(tmp_path, small_model, net):
    paths = write_photos(str(tmp_path), 3)
    worker = Worker(settings(small_model, top_k=None, target=LABEL, methods=METHODS[:1]), net)
    results = worker.explain([worker.decode(i) for i in items_of(paths, [5, None, 2])])
    assert [r.rows[0].class_index for r in (results[0], results[2])] == [5, 2]
    assert "no ground-truth class" in results[1].error


def test_boxes_come_from_each_two_dimensional_map(tmp_path, small_model, net):
    paths = write_photos(str(tmp_path), 2)
    worker = Worker(settings(small_model, localize=True), net)
    for result in worker.explain([worker.decode(i) for i in items_of(paths)]):
        h, w = result.size
        for row in result.rows:
            if row.method == "guided":                     # a signed (C, H, W) image: no box
                assert row.saliency_map.ndim == 3 and row.box is None
            else:
                x0, y0, x1, y1 = row.box
                assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h


def test_settings_that_cannot_work_are_refused_at_once(small_model, net):
    with pytest.raises(InputError, match="top-k"):
        Worker(settings(small_model, top_k=8), net)
    with pytest.raises(InputError, match="out of range"):
        Worker(settings(small_model, top_k=None, target=9), net)


def test_decode_reports_what_load_image_says(tmp_path):
    result = decode(Item("x", str(tmp_path / "x.jpg")), preset("torchvision"))
    assert result.photo is None and "not found" in result.error


def test_the_fingerprint_notices_what_changes_results_and_only_that(small_model):
    a = settings(small_model).fingerprint()
    assert a == settings(small_model, batch_size=8, threads=1, device="cpu").fingerprint()
    for change in ({"top_k": 3}, {"localize": True}, {"methods": METHODS[:1]},
                   {"preset": preset("torchvision", crop=67, resize=80)},
                   {"methods": (MethodSpec("gradcam", GradCAM, {"layer": "conv5"}),)}):
        assert settings(small_model, **change).fingerprint() != a, change
