"""A two-class "disk detector" whose maps are known by hand, and photographs for it: red disks on a
green, textured ground, with the disks' boxes. For the localisation recipes and ``evaluate``.

The net is gap_fc (tiny_nets): a 1×1 convolution → ReLU → global average pooling → linear, on
(3, 40, 56) RGB pixels 0–255 (preset "none"):

    feature 0 = ReLU(R − G − 10)      positive on the disks only (R − G = 170 there, < 0 around)
    feature 1 = ReLU(G − R)           positive on the ground only
    S_0 = 2·mean(feature 0) + 5,  S_1 = mean(feature 1) / 100

so class 0 ("disk") is always the top class, class 1 ("ground") the second; class 0's CAM,
Grad-CAM and saliency are positive exactly on the disks and zero elsewhere.
"""
import os

import cv2
import numpy as np

from helpers import tiny_nets

SHAPE = (3, 40, 56)
DISK = (200, 30, 30)        # RGB


def disk_net():
    conv_w = np.zeros((2, 3, 1, 1), np.float32)
    conv_w[0, :, 0, 0] = [1, -1, 0]
    conv_w[1, :, 0, 0] = [-1, 1, 0]
    fc_w = np.array([[2.0, 0.0], [0.0, 0.01]], np.float32)
    return tiny_nets.gap_fc(conv_w, np.array([-10.0, 0.0]), fc_w, np.array([5.0, 0.0]), SHAPE)


def ground(seed):
    """A (40, 56, 3) RGB ground: G 110–150, R 40–80, B 30–70, fine texture."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE[1:]
    image = np.empty((h, w, 3), np.float64)
    image[..., 0] = 60 + 20 * rng.uniform(-1, 1, (h, w))
    image[..., 1] = 130 + 20 * rng.uniform(-1, 1, (h, w))
    image[..., 2] = 50 + 20 * rng.uniform(-1, 1, (h, w))
    return image.astype(np.uint8)


def disk_photo(centre, radius, seed=0):
    """(image, half-open box of the disk) with a disk of ``radius`` at ``centre`` = (x, y)."""
    image = ground(seed)
    yy, xx = np.mgrid[:SHAPE[1], :SHAPE[2]]
    disk = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius ** 2
    image[disk] = DISK
    ys, xs = np.nonzero(disk)
    return image, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def write_disk_photo(path, centre, radius, seed=0):
    """Write the photograph as PNG (OpenCV's BGR on disk); its disk's box."""
    image, box = disk_photo(centre, radius, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, image[..., ::-1])
    return box
