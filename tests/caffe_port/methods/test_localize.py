"""Weakly supervised localisation (Simonyan §3.1): saliency-seeded GrabCut → largest component → box."""
import numpy as np
import pytest

from caffe_port.errors import InputError, ShapeError
from caffe_port.methods import Localizer, grabcut_mask, localize_from_saliency
from caffe_port.preprocess import Preset


def iou(a, b):
    """Half-open boxes (x0, y0, x1, y1)."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def disk_scene(height=120, width=160, centre=(96, 56), radius=32, seed=0):
    """A red disk on a green–brown textured background; returns (image, disk mask, disk box)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    texture = 0.5 + 0.25 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + 0.1 * rng.standard_normal((height, width))
    image = np.stack([90 * texture + 30, 140 * texture + 40, 60 * texture + 20], axis=2)
    disk = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius ** 2
    image[disk] = [220, 40, 30] + 12 * rng.standard_normal((disk.sum(), 3))
    ys, xs = np.nonzero(disk)
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return np.clip(image, 0, 255).astype(np.uint8), disk, box


def test_disk_is_found_from_a_saliency_concentrated_on_it():
    """Saliency: uniform on 0.2…1.2 on the disk, on 0…0.5 elsewhere. The disk covers 17 % of the
    picture, so the 95 % quantile seeds lie inside it (about 30 % of it) and the 30 % ones outside;
    the rest of the disk is in the undecided band, overlapping the background's saliencies."""
    image, disk, disk_box = disk_scene()
    rng = np.random.default_rng(1)
    saliency = np.where(disk, 0.2 + rng.random(disk.shape), 0.5 * rng.random(disk.shape))
    mask, box = localize_from_saliency(image, saliency)
    assert iou(box, disk_box) >= 0.9, (box, disk_box)
    assert (mask & disk).sum() / (mask | disk).sum() >= 0.9
    # the seeds alone (top 5 %) cover a third of the disk at most: GrabCut did the rest
    assert (saliency >= np.quantile(saliency, 0.95)).sum() < 0.35 * disk.sum()


def test_largest_component_only_and_half_open_box():
    image, disk, _ = disk_scene(seed=2)
    # a second, smaller salient blob of the same colour in the corner
    image[5:15, 5:15] = [220, 40, 30]
    saliency = np.where(disk, 1.0, 0.0)
    saliency[5:15, 5:15] = 1.0
    saliency += 0.01 * np.random.default_rng(3).random(saliency.shape)
    fg = grabcut_mask(image, saliency)
    assert fg[5:15, 5:15].mean() > 0.9                    # GrabCut keeps both …
    mask, box = localize_from_saliency(image, saliency)
    assert not mask[5:15, 5:15].any()                     # … the box is the larger one's
    x0, y0, x1, y1 = box
    assert mask[y0:y1, x0:x1].sum() == mask.sum()
    assert mask[y0, x0:x1].any() and mask[y1 - 1, x0:x1].any() and mask[y0:y1, x0].any() and mask[y0:y1, x1 - 1].any()


def test_deterministic_and_downscaled_for_large_images():
    image, disk, disk_box = disk_scene()
    rng = np.random.default_rng(4)
    saliency = np.where(disk, 1.0 + rng.random(disk.shape), rng.random(disk.shape) * 0.5)
    a = grabcut_mask(image, saliency)
    np.testing.assert_array_equal(a, grabcut_mask(image, saliency))
    # max_side 80 halves the picture for GrabCut; the box stays close (in original pixels)
    mask, box = localize_from_saliency(image, saliency, max_side=80)
    assert mask.shape == disk.shape and iou(box, disk_box) >= 0.85


def test_bad_inputs():
    image, disk, _ = disk_scene()
    with pytest.raises(ShapeError, match="does not match the 120×160 image"):
        grabcut_mask(image, np.ones((10, 10)))
    with pytest.raises(InputError, match="saliency map is constant"):
        grabcut_mask(image, np.ones(disk.shape))
    with pytest.raises(InputError, match="background_quantile < foreground_quantile"):
        grabcut_mask(image, disk.astype(float), foreground_quantile=0.2, background_quantile=0.3)


def test_localizer_end_to_end_through_a_preset(tiny):
    """A linear "disk detector" net: class 0's weights are 1 on a disk of radius 10 around (28, 20)
    in the 40×56 crop, tiny elsewhere. The preset halves a 96×128 photograph to 48×64 and crops
    40×56 at (4, 4); the disk sits at (2·(28+4), 2·(20+4)) = (64, 48), radius 20, in the photograph."""
    height, width = 96, 128
    image, disk, disk_box = disk_scene(height, width, centre=(64, 48), radius=20, seed=5)
    yy, xx = np.mgrid[:40, :56]
    detector = ((xx - 27.75) ** 2 + (yy - 19.75) ** 2 <= 10 ** 2).astype(np.float32)
    rng = np.random.default_rng(6)
    weights = np.stack([np.broadcast_to(detector, (3, 40, 56)).ravel() + 0.01 * rng.random(3 * 40 * 56),
                        0.01 * rng.random(3 * 40 * 56)])
    net = tiny.relu_linear(weights, np.array([5.0, 0.0]), (3, 40, 56), relu=False)
    p = Preset("half", resize=(48, 64), crop=(40, 56))
    results = Localizer(net, p).localize(image, top_k=2)
    assert [r.class_index for r in results] == [0, 1]
    first = results[0]
    assert first.saliency.shape == (height, width) and first.mask.shape == (height, width)
    assert iou(first.box, disk_box) >= 0.9, (first.box, disk_box)
    assert first.class_name == "class 0"
    # outside the crop (rows < 8 or ≥ 88, columns < 8 or ≥ 120) the saliency is zero
    assert not first.saliency[:8].any() and not first.saliency[:, 120:].any()
