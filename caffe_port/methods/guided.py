"""Guided back-propagation (Springenberg et al. 2015).

At every ReLU both gates apply, the forward one (back-propagation) and the backward one
(deconvnet):

    guided     bottom_diff = max(top_diff, 0) · [bottom_data > 0]

elsewhere the pass is back-propagation. This is ``Net.backward(rule="guided")`` from a one-hot
at the score blob; the result is the signed (K, N, C, H, W) image, shown by
``caffe_port.render.signed`` as all / positive / negative parts.
"""
from __future__ import annotations

from caffe_port.methods.base import GradientMethod


class GuidedBackprop(GradientMethod):
    """Guided back-propagation of a class score (signed by default)."""
    rule = "guided"
    default_reduction = "signed"
