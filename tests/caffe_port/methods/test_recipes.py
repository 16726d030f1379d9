"""Localisation recipes: the paper's unchanged, CAM's threshold rule on hand-made maps, every recipe
on the disk detector (tests/helpers/disk_sets.py), whose maps are known by hand."""
import numpy as np
import pytest

from caffe_port.errors import InputError, ShapeError
from caffe_port.methods import (CAM, RECIPES, GradCAM, Localizer, Saliency, SmoothGrad, grabcut_mask,
                                localize_by_threshold, localize_from_saliency, recipe, threshold_mask)
from caffe_port.preprocess import Preset, preset
from helpers.disk_sets import disk_net, disk_photo


@pytest.fixture(scope="module")
def net():
    return disk_net()


def test_the_table_names_each_recipe_once_with_its_map_and_segmentation():
    assert list(RECIPES) == ["paper", "gradcam-grabcut", "cam-grabcut", "cam-threshold", "smoothgrad-grabcut"]
    maps = {name: (r.method, r.wraps, r.segment) for name, r in RECIPES.items()}
    assert maps == {"paper": (Saliency, None, localize_from_saliency),
                    "gradcam-grabcut": (GradCAM, None, localize_from_saliency),
                    "cam-grabcut": (CAM, None, localize_from_saliency),
                    "cam-threshold": (CAM, None, localize_by_threshold),
                    "smoothgrad-grabcut": (SmoothGrad, Saliency, localize_from_saliency)}
    assert recipe(RECIPES["paper"]) is RECIPES["paper"]
    with pytest.raises(InputError, match="unknown localisation recipe 'grabcut'; choose one of paper, "):
        recipe("grabcut")


def test_paper_recipe_gives_the_boxes_and_masks_of_the_localizer_as_it_was(net):
    """The default Localizer and recipe("paper") both run Saliency → localize_from_saliency with the
    paper's defaults: the same masks to the pixel, and the same boxes as calling it by hand."""
    image, _ = disk_photo((30, 20), 9, seed=3)
    p = preset("none")
    old = Localizer(net, p).localize(image, top_k=2)
    new = recipe("paper").localizer(net, p).localize(image, top_k=2)
    saliency = Saliency(net).attribute(p.preprocess(image), top_k=2)[:, 0]
    for a, b, s in zip(old, new, saliency):
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.saliency, b.saliency)
        assert a.box == b.box == localize_from_saliency(image, s)[1]


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_finds_the_disk_for_the_disk_class(net, name):
    """Class 0's saliency, CAM and Grad-CAM are positive exactly on the disk (disk_sets' docstring),
    so every segmentation gives the disk's own box, to the pixel; SmoothGrad's noise (σ = 15 % of
    the range) leaves the seeds on the disk."""
    image, box = disk_photo((34, 22), 10, seed=1)
    options = {"samples": 6} if name == "smoothgrad-grabcut" else {}
    found = recipe(name).localizer(net, preset("none"), method_options=options).localize(image, target=0)
    assert found[0].box == box and found[0].class_index == 0


def test_gradcam_and_cam_seed_grabcut_alike_on_a_gap_linear_net(net):
    """On GAP → linear, Grad-CAM = ReLU(CAM) / (h·w): where the CAM is ≥ 0 everywhere (class 0's
    here) the quantile seeds, hence the boxes and masks, are the same."""
    image, _ = disk_photo((25, 18), 7, seed=2)
    a = recipe("gradcam-grabcut").localizer(net, preset("none")).localize(image, target=0)[0]
    b = recipe("cam-grabcut").localizer(net, preset("none")).localize(image, target=0)[0]
    np.testing.assert_array_equal(a.mask, b.mask)


def test_threshold_is_strictly_above_a_fifth_of_the_range_where_the_net_looked():
    saliency = np.array([[-1.0, 0.0, 1.0, 9.0],
                         [1.0, 1.0, 3.0, 9.0],
                         [1.0, 0.99, 0.0, 50.0]], np.float32)
    valid = np.ones(saliency.shape, bool)
    valid[2, 3] = False                           # outside the crop: neither in the range nor the mask
    # range over valid: -1 … 9, threshold -1 + 0.2 · 10 = 1: values > 1 only
    expected = np.array([[0, 0, 0, 1], [0, 0, 1, 1], [0, 0, 0, 0]], bool)
    np.testing.assert_array_equal(threshold_mask(saliency, valid=valid), expected)
    np.testing.assert_array_equal(threshold_mask(saliency, fraction=0.0, valid=valid),
                                  valid & (saliency > -1))
    mask, box = localize_by_threshold(np.zeros((3, 4, 3)), saliency, valid=valid)
    assert box == (2, 0, 4, 2) and mask.sum() == 3


def test_threshold_keeps_the_largest_component_of_several():
    saliency = np.zeros((10, 12), np.float32)
    saliency[1:3, 1:3] = 5.0                      # 4 pixels
    saliency[5:9, 6:11] = 2.0                     # 20 pixels, weaker (above 1 = 5 / 5) but larger
    mask, box = localize_by_threshold(np.zeros((10, 12, 3)), saliency)
    assert box == (6, 5, 11, 9) and mask.sum() == 20


def test_threshold_refuses_what_it_cannot_segment():
    image = np.zeros((4, 5, 3))
    with pytest.raises(InputError, match="constant"):
        threshold_mask(np.ones((4, 5)))
    with pytest.raises(InputError, match="constant"):
        threshold_mask(np.arange(20.0).reshape(4, 5), valid=np.zeros((4, 5), bool))
    with pytest.raises(InputError, match="fraction"):
        threshold_mask(np.arange(20.0).reshape(4, 5), fraction=1.0)
    with pytest.raises(ShapeError, match="does not match"):
        localize_by_threshold(image, np.arange(12.0).reshape(3, 4))
    with pytest.raises(ShapeError, match="valid mask"):
        threshold_mask(np.arange(20.0).reshape(4, 5), valid=np.ones((5, 4), bool))


def test_grabcut_seeds_a_map_whose_top_value_fills_most_of_the_picture():
    """A map that is 1 on 90 % of the pixels and 0 on a disk: its 30 % quantile is its maximum, so
    the quantile seeds would leave no foreground (OpenCV refused with an assertion before); the top
    value seeds the object instead, and GrabCut finds the ground around the disk."""
    image, box = disk_photo((28, 20), 6, seed=4)
    saliency = np.ones(image.shape[:2], np.float32)
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    disk = (xx - 28) ** 2 + (yy - 20) ** 2 <= 36
    saliency[disk] = 0.0
    mask = grabcut_mask(image, saliency)
    assert not mask[disk].any() and mask[~disk].mean() > 0.95


def test_seeds_lost_in_the_reduction_for_grabcut_are_one_line():
    image = np.full((400, 400, 3), 100, np.uint8)
    saliency = np.zeros((400, 400), np.float32)
    saliency[7, 7] = 1.0                            # one pixel: lost when 400 px become 40
    with pytest.raises(InputError, match="do not survive the reduction to 40×40"):
        grabcut_mask(image, saliency, max_side=40, foreground_quantile=0.999)


def test_a_recipe_on_a_net_without_global_average_pooling_says_to_use_gradcam(tiny):
    net = tiny.conv_pool_fc()
    with pytest.raises(InputError, match="use GradCAM"):
        recipe("cam-threshold").localizer(net, Preset("none"))
