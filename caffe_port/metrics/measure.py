"""Deletion, insertion and the pointing game over a set of images (``caffe-port metrics``).

    from caffe_port.metrics import measure, read_boxes_csv
    result = measure(["photos/"], net, preset, {"saliency": Saliency, "gradcam": GradCAM},
                     boxes=read_boxes_csv("boxes.csv"))
    result.summary()        # {method: {"deletion_auc", "insertion_auc", "pointing_game", …}}

Each image is read and pre-processed once; each method makes, in one call, the maps of the
class deletion and insertion explain (``target``: None for the net's top class, an index or a
name, or "label" for the class an image list gives) and of every class the image has boxes of
(the pointing game asks about each class present, as Zhang et al. do). Deletion and insertion
run at the network's resolution (perturbation.py); the pointing game in the photograph's pixels,
where the boxes are, the map's maximum taken among the pixels the network saw (the crop).

A (C, H, W) map is reduced to one value per pixel by ``reduction`` ("abs": Σ_c |M_c|, or "sum")
for all three. An image that cannot be read or explained is kept with its one-line error and
left out of the means.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from caffe_port.batch.inputs import Item, collect
from caffe_port.errors import CaffePortError, InputError
from caffe_port.methods.base import check_reduction, one_class, reduce_channels
from caffe_port.metrics.perturbation import deletion, insertion, scorer_of
from caffe_port.metrics.pointing import TOLERANCE, PointingGame, pointing_hit
from caffe_port.preprocess import load_image

LABEL = "label"


@dataclass
class ImageMetrics:
    """One image's numbers: per method {"deletion": Curve, "insertion": Curve, "pointing":
    [(class, hit, (x, y))]}; or the error that stopped it."""
    item: Item
    target: int | None = None
    methods: dict = field(default_factory=dict)
    error: str | None = None

    def as_json(self) -> dict:
        row = {"image": self.item.image, "class": self.target}
        if self.error is not None:
            row["error"] = self.error
            return row
        curves = next(iter(self.methods.values()))
        row["fractions"] = [round(float(f), 6) for f in curves["deletion"].fractions]
        row["methods"] = {
            name: {"deletion_auc": m["deletion"].auc, "insertion_auc": m["insertion"].auc,
                   "deletion_curve": [round(float(p), 6) for p in m["deletion"].probabilities],
                   "insertion_curve": [round(float(p), 6) for p in m["insertion"].probabilities],
                   "pointing": [{"class": c, "hit": hit, "point": list(point)} for c, hit, point in m["pointing"]]}
            for name, m in self.methods.items()}
        return row


@dataclass
class MetricsResult:
    """Every image's numbers and the settings they were measured with."""
    images: list
    settings: dict

    def summary(self) -> dict:
        """{method: {"deletion_auc", "insertion_auc" (means over the images measured),
        "pointing_game" (mean per-class accuracy, None without boxes), "pointing_classes",
        "pointing_pairs", "images"}}."""
        done = [r for r in self.images if r.error is None]
        names = list(done[0].methods) if done else []
        out = {}
        for name in names:
            game = PointingGame()
            for r in done:
                for c, hit, _ in r.methods[name]["pointing"]:
                    game.add(c, hit)
            accuracies = game.class_accuracies()
            out[name] = {
                "deletion_auc": float(np.mean([r.methods[name]["deletion"].auc for r in done])),
                "insertion_auc": float(np.mean([r.methods[name]["insertion"].auc for r in done])),
                "pointing_game": game.accuracy() if accuracies else None,
                "pointing_classes": {str(c): a for c, a in accuracies.items()},
                "pointing_pairs": sum(game.hits.values()) + sum(game.misses.values()),
                "images": len(done)}
        return out

    def as_json(self) -> dict:
        return {"settings": self.settings, "methods": self.summary(),
                "images": [r.as_json() for r in self.images]}


def pixel_values(saliency_map, reduction):
    """An (H, W) map as it is, a (C, H, W) one reduced over channels."""
    m = np.asarray(saliency_map, dtype=np.float32)
    return reduce_channels(m, reduction) if m.ndim == 3 else m


def boxes_by_item(items, boxes, scorer):
    """Each item's {class index: [box]}, found by its file name; refused before anything runs:
    two images of one name that has boxes (ambiguous), a class the net does not have."""
    if not boxes:
        return [{} for _ in items]
    resolved = {}
    for name, entries in boxes.items():
        for c, box in entries:
            try:
                index = one_class(c, scorer.num_classes, scorer.labels)
            except InputError as e:
                raise InputError(f"boxes of {name}: {e}") from None
            resolved.setdefault(name, {}).setdefault(index, []).append(box)
    seen = {}
    for item in items:
        name = os.path.basename(item.path)
        if name in resolved and seen.setdefault(name, item.path) != item.path:
            raise InputError(f"two images are named {name!r} ({seen[name]} and {item.path}); the "
                             f"boxes file matches images by file name")
    return [resolved.get(os.path.basename(item.path), {}) for item in items]


def measure(inputs, net, preset, methods, *, boxes=None, target=None, step=None,
            deletion_baseline="zeros", insertion_baseline="blur", reduction="abs",
            tolerance=TOLERANCE, progress=None) -> MetricsResult:
    """Deletion and insertion AUC of every method on every image, and the pointing game where
    ``boxes`` has the image.

    inputs:  image files, folders, .txt lists (as ``caffe-port batch`` reads them), or Items
    net, preset: the caffe_port.Net and the Preset that prepares its images
    methods: {name: factory}, factory(net) → a method (built once, used for every image)
    boxes:   {image file name: [(class, box)]} (``read_boxes_csv``), or None
    progress: called with (done, total) after each image
    """
    check_reduction(reduction)
    items = inputs if inputs and all(isinstance(i, Item) for i in inputs) else collect(inputs)
    if not items:
        raise InputError("no images to measure")
    if not methods:
        raise InputError("no methods to measure")
    built = {name: factory(net) for name, factory in methods.items()}
    scorer = scorer_of(next(iter(built.values())))
    if target is not None and target != LABEL:
        one_class(target, scorer.num_classes, scorer.labels)            # refused now, not per image
    settings = {"target": target, "step": step, "deletion_baseline": _describe(deletion_baseline),
                "insertion_baseline": _describe(insertion_baseline), "reduction": reduction,
                "tolerance": tolerance, "probability": "softmax of the pre-softmax class scores"}
    results = []
    for k, (item, item_boxes) in enumerate(zip(items, boxes_by_item(items, boxes, scorer))):
        try:
            results.append(_measure_image(item, preset, built, item_boxes, target, step,
                                          deletion_baseline, insertion_baseline, reduction, tolerance))
        except CaffePortError as e:
            results.append(ImageMetrics(item, error=str(e)))
        if progress is not None:
            progress(k + 1, len(items))
    return MetricsResult(results, settings)


def _describe(baseline):
    return baseline if isinstance(baseline, str) else f"array {np.shape(baseline)}"


def _measure_image(item, preset, methods, pointing, target, step, deletion_baseline,
                   insertion_baseline, reduction, tolerance):
    photo = load_image(item.path)
    data = preset.preprocess(photo)
    scorer = scorer_of(next(iter(methods.values())))
    if target == LABEL:
        if item.label is None:
            raise InputError(f"{item.image}: --class label, but no list gives this image a class")
        explained = one_class(item.label, scorer.num_classes, scorer.labels)
    elif target is None:
        explained = int(np.argmax(scorer.scores(data)[0]))
    else:
        explained = one_class(target, scorer.num_classes, scorer.labels)
    classes = [explained] + [c for c in pointing if c != explained]
    geometry = preset.geometry(photo.shape[:2])
    valid = geometry.covered()
    result = ImageMetrics(item, explained)
    for name, method in methods.items():
        _, maps = method.targets_and_maps(data, target=np.array(classes)[:, None])
        found = {"deletion": deletion(method, data, maps[0, 0], explained, step=step,
                                      baseline=deletion_baseline, reduction=reduction),
                 "insertion": insertion(method, data, maps[0, 0], explained, step=step,
                                        baseline=insertion_baseline, reduction=reduction),
                 "pointing": []}
        for c, class_boxes in pointing.items():
            full = geometry.to_original(pixel_values(maps[classes.index(c), 0], reduction))
            hit, point = pointing_hit(full, class_boxes, tolerance, valid)
            found["pointing"].append((c, hit, point))
        result.methods[name] = found
    return result
