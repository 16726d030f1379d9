"""Deconvnet reconstructions (Zeiler & Fergus 2014), as Simonyan et al. (§4) relate them.

A deconvnet maps a class score back to pixels with the transposed filters and the max-pooling
switches — exactly back-propagation — except at the ReLU, where it rectifies the signal coming
down instead of gating it by the forward activation:

    backprop   bottom_diff = top_diff · [bottom_data > 0]
    deconvnet  bottom_diff = max(top_diff, 0)

So this is ``Net.backward(rule="deconvnet")`` from a one-hot at the score blob. The result is the
signed (K, N, C, H, W) reconstruction; ``caffe_port.render.signed`` shows it as all / positive /
negative parts.
"""
from __future__ import annotations

from caffe_port.methods.base import GradientMethod


class Deconvnet(GradientMethod):
    """Zeiler & Fergus's deconvnet reconstruction of a class score (signed by default)."""
    rule = "deconvnet"
    default_reduction = "signed"
