"""The pointing game (Zhang et al. 2016, "Top-down Neural Attention by Excitation Backprop").

For an image and a class it contains, the map's maximum is a hit when it lies on an object of
that class, give or take ``tolerance`` pixels:

    point = argmax M                     (the first maximum in row-major order, among the pixels
                                          the net saw: ``valid``)
    hit   ⇔ min over the class's boxes of d(point, box) < tolerance, or the point is inside one

d is the Euclidean distance in pixels from the point to the nearest pixel of the box. Boxes are
half-open (x0, y0, x1, y1) in the photograph's pixels: pixel (x, y) is inside when x0 ≤ x < x1
and y0 ≤ y < y1. With the default tolerance of 15 this is TorchRay's rule (its acceptance disk
is d² < 15²); tolerance 0 is the plain "inside a box" that Quantus's PointingGame scores.

The score: per class, accuracy = hits / (hits + misses) over the (image, class) pairs it has;
the game's score is the mean of the per-class accuracies over the classes that occur (TorchRay
averages over its dataset's fixed 20 or 80 classes, all of which occur in VOC and COCO).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from caffe_port.errors import InputError, ShapeError

TOLERANCE = 15


def check_box(box):
    """A half-open (x0, y0, x1, y1) box as four ints, or InputError."""
    try:
        x0, y0, x1, y1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise InputError(f"a box is four integers (x0, y0, x1, y1), got {box!r}") from None
    if not (x0 < x1 and y0 < y1):
        raise InputError(f"box {(x0, y0, x1, y1)} is empty: need x0 < x1 and y0 < y1")
    return x0, y0, x1, y1


def map_maximum(saliency_map, valid=None):
    """(x, y) of the map's first maximum in row-major order, among ``valid`` pixels."""
    m = np.asarray(saliency_map, dtype=np.float64)
    if m.ndim != 2:
        raise ShapeError(f"the pointing game reads an (H, W) map, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise InputError("the map holds NaN or infinite values")
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != m.shape or not valid.any():
            raise ShapeError("valid must be a non-empty boolean mask of the map's shape")
        m = np.where(valid, m, -np.inf)
    y, x = np.unravel_index(int(np.argmax(m)), m.shape)
    return int(x), int(y)


def distance_to_box(point, box) -> float:
    """Euclidean distance from the pixel ``point`` (x, y) to the nearest pixel of ``box``."""
    x, y = point
    x0, y0, x1, y1 = check_box(box)
    dx = max(x0 - x, 0, x - (x1 - 1))
    dy = max(y0 - y, 0, y - (y1 - 1))
    return float(np.hypot(dx, dy))


def is_hit(point, boxes, tolerance=TOLERANCE) -> bool:
    """The pointing game's rule (module docstring) for one point and the class's boxes."""
    if tolerance < 0:
        raise InputError(f"tolerance must be non-negative, got {tolerance}")
    distances = [distance_to_box(point, box) for box in boxes]
    if not distances:
        raise InputError("the pointing game needs at least one box of the class")
    nearest = min(distances)
    return nearest == 0 or nearest < tolerance


def pointing_hit(saliency_map, boxes, tolerance=TOLERANCE, valid=None):
    """(hit, (x, y)): the map's maximum and whether it hits one of ``boxes``."""
    point = map_maximum(saliency_map, valid)
    return is_hit(point, boxes, tolerance), point


@dataclass
class PointingGame:
    """Hits and misses per class, and the game's score (module docstring)."""
    hits: dict = field(default_factory=dict)
    misses: dict = field(default_factory=dict)

    def add(self, target, hit):
        counts = self.hits if hit else self.misses
        counts[target] = counts.get(target, 0) + 1
        other = self.misses if hit else self.hits
        other.setdefault(target, 0)

    def class_accuracies(self) -> dict:
        """{class: hits / (hits + misses)}, for each class seen."""
        return {c: self.hits[c] / (self.hits[c] + self.misses[c]) for c in sorted(self.hits)}

    def accuracy(self) -> float:
        """The mean of the per-class accuracies (NaN before any pair was added)."""
        accuracies = list(self.class_accuracies().values())
        return float(np.mean(accuracies)) if accuracies else float("nan")
