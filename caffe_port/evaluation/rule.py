"""The ILSVRC localisation rule (the CLS-LOC task's ``eval_clsloc.m``), on one image at a time.

Boxes are half-open pixel boxes (x0, y0, x1, y1) in the image's own pixels, 0-based: the box
covers columns x0 … x1 − 1 and rows y0 … y1 − 1, its area is (x1 − x0)·(y1 − y0). (VOC/ILSVRC
files write inclusive 1-based corners; annotations.py converts them: [xmin − 1, xmax).) With
that convention the intersection over union below equals the devkit's, which adds 1 to each
inclusive width and height.

    IoU(a, b) = |a ∩ b| / |a ∪ b|

For an image with ground-truth classes C_1 … C_n (one in ILSVRC CLS-LOC) and predictions
(c_j, b_j) ranked by score, best first:

    localised at top-K for C_k  ⇔  ∃ j ≤ K:  c_j = C_k  and  max_{B of class C_k} IoU(b_j, B) ≥ 0.5
    classified at top-K for C_k ⇔  ∃ j ≤ K:  c_j = C_k
    image error at top-K        =  (1/n) Σ_k [not localised at top-K for C_k]

and the set's error is the mean of the images' errors (the devkit's ``sum(e./n) / images``). A
prediction without a box (a map with nothing to segment) localises nothing. IoU ≥ 0.5 is decided
exactly (2·|a ∩ b| ≥ |a ∪ b|), so a box with IoU exactly one half counts. Predictions are ranked
by score, ties broken by the smaller class index — the order ``resolve_targets`` gives
(a stable sort of the negated scores), so top-K here is the top-K the maps were made for.
"""
from __future__ import annotations

from dataclasses import dataclass, field

THRESHOLD = 0.5
TOP = (1, 5)


def area(box) -> float:
    x0, y0, x1, y1 = box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def intersection(a, b) -> float:
    return area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def iou(a, b) -> float:
    """The intersection over union of two half-open boxes (0 when either is empty)."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def overlaps_enough(a, b) -> bool:
    """IoU(a, b) ≥ 0.5, decided without division: 2·|a ∩ b| ≥ |a ∪ b| > 0."""
    inter = intersection(a, b)
    union = area(a) + area(b) - inter
    return union > 0 and 2 * inter >= union


@dataclass(frozen=True)
class Prediction:
    class_index: int
    score: float
    box: tuple | None               # half-open, the image's pixels; None: no box


@dataclass
class Judgement:
    """One ground-truth class of one image, judged."""
    label: int
    truth: list                     # the label's ground-truth boxes
    weight: float                   # 1/n, n the image's ground-truth classes
    localised: dict                 # {K: bool}
    classified: dict                # {K: bool}
    predictions: list = field(default_factory=list)   # [(Prediction, IoU with the label's boxes)]


def ranked(predictions) -> list:
    """Best score first; equal scores by the smaller class index (module docstring)."""
    return sorted(predictions, key=lambda p: (-p.score, p.class_index))


def judge(objects, predictions, top=TOP) -> list:
    """[Judgement], one per ground-truth class, for ``objects`` = [(class, box)] of one image and
    its ``predictions`` (any order; ranked here).

    Each Judgement's predictions carry the best IoU of their box with the ground-truth boxes of
    its label, whatever class they predict (the rule counts it only where the class is the
    label): a right box given the wrong class shows there."""
    by_class = {}
    for class_index, box in objects:
        by_class.setdefault(int(class_index), []).append(tuple(box))
    order = ranked(predictions)
    judgements = []
    for label, boxes in by_class.items():
        hits = [p.class_index == label for p in order]
        found = [hit and p.box is not None and any(overlaps_enough(p.box, b) for b in boxes)
                 for hit, p in zip(hits, order)]
        judgements.append(Judgement(
            label, boxes, 1.0 / len(by_class),
            localised={k: any(found[:k]) for k in top}, classified={k: any(hits[:k]) for k in top},
            predictions=[(p, None if p.box is None else max(iou(p.box, b) for b in boxes)) for p in order]))
    return judgements


def errors(judgements_per_image, top=TOP) -> dict:
    """{"top1_loc_error", "top5_loc_error", "top1_cls_error", "top5_cls_error"} (fractions) over
    the images' judgements (a list per image); None where there are no images."""
    n = len(judgements_per_image)
    result = {}
    for what, attribute in (("loc", "localised"), ("cls", "classified")):
        for k in top:
            right = sum(j.weight * getattr(j, attribute)[k] for image in judgements_per_image for j in image)
            result[f"top{k}_{what}_error"] = (n - right) / n if n else None
    return result
