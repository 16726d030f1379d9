"""Measures of maps: how alike two maps are, how faithful a map is, whether it points at the object.

    similarity.py    spearman(a, b), ssim(a, b, data_range): the sanity checks' measures
                     (caffe_port/sanity.py, ``caffe-port sanity``)
    perturbation.py  deletion(...) and insertion(...): Petsiuk et al.'s curves and their AUC
    pointing.py      pointing_hit(map, boxes), PointingGame: Zhang et al.'s game, TorchRay's
                     15-pixel tolerance
    boxes.py         read_boxes_csv(path): ground-truth boxes (image, class, x0, y0, x1, y1)
    measure.py       measure(inputs, net, preset, methods, boxes=...): all three over a set
                     (``caffe-port metrics``)

Each module's docstring states its definition; tests/caffe_port/metrics/ checks each against an
independent implementation (scipy, scikit-image, Quantus, hand-computed cases).
"""
from caffe_port.metrics.boxes import read_boxes_csv
from caffe_port.metrics.measure import MetricsResult, measure
from caffe_port.metrics.perturbation import Curve, deletion, insertion, perturbation_curve
from caffe_port.metrics.pointing import PointingGame, is_hit, map_maximum, pointing_hit
from caffe_port.metrics.similarity import spearman, ssim

__all__ = ["spearman", "ssim", "deletion", "insertion", "perturbation_curve", "Curve", "pointing_hit",
           "is_hit", "map_maximum", "PointingGame", "read_boxes_csv", "measure", "MetricsResult"]
