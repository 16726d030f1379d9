"""The shared base: one attribute() for every method, the wrappers answering as the method they wrap."""
import inspect

import numpy as np
import pytest

from caffe_port import methods
from caffe_port.errors import InputError, ShapeError
from caffe_port.methods import Attribution, GradCAM, IntegratedGradients, Saliency, SmoothGrad, as_batch


def test_attribute_is_written_once():
    attributions = [obj for obj in vars(methods).values()
                    if inspect.isclass(obj) and issubclass(obj, Attribution)]
    assert len(attributions) >= 10
    for cls in attributions:
        assert cls.attribute is Attribution.attribute, cls
        assert cls.targets_and_maps is Attribution.targets_and_maps, cls


def test_targets_and_maps_keep_the_class_axis(tiny):
    net = tiny.conv_gap_fc(classes=4, seed=1)
    x = np.random.default_rng(2).standard_normal((3, 3, 9, 8)).astype(np.float32)
    for method in (Saliency(net), GradCAM(net), SmoothGrad(Saliency(net), samples=2)):
        targets, maps = method.targets_and_maps(x, target=1)
        assert maps.shape[:2] == (1, 3) and targets.classes.tolist() == [[1, 1, 1]]
        np.testing.assert_array_equal(method.attribute(x, target=1), maps[0])
        np.testing.assert_array_equal(method.classes_, targets.classes)
        np.testing.assert_array_equal(method.scores_, targets.scores)


def test_a_wrapper_answers_as_the_method_it_wraps(tiny):
    net = tiny.conv_gap_fc(classes=4, seed=1)
    inner = Saliency(net, labels=["a", "b", "c", "d"])
    for wrapper in (SmoothGrad(inner, samples=2), IntegratedGradients(inner, steps=2)):
        assert wrapper.num_classes == 4 and wrapper.labels == ["a", "b", "c", "d"]
        assert wrapper.class_name(2) == "c"
        wrapper.attribute(np.ones((2, 3, 9, 8), np.float32), target="d")
        assert wrapper.classes_.tolist() == [[3, 3]] and wrapper.scores_ is inner.scores_
        with pytest.raises(InputError, match="out of range"):
            wrapper.attribute(np.ones((3, 9, 8), np.float32), target=4)


def test_as_batch():
    assert as_batch(np.zeros((3, 4, 5), np.float64)).shape == (1, 3, 4, 5)
    assert as_batch(np.zeros((2, 3, 4, 5))).dtype == np.float32
    with pytest.raises(ShapeError, match="must be \\(N, C, H, W\\)"):
        as_batch(np.zeros((4, 5)))
    with pytest.raises(ShapeError, match="no images"):
        as_batch(np.zeros((0, 3, 4, 5)))
