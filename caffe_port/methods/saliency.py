"""Image-specific class saliency (Simonyan et al. 2013, §3).

The class score S_c is, near an image I₀, approximately linear in the image,
S_c(I) ≈ wᵀI + b with w = ∂S_c/∂I at I₀; the magnitude of w says which pixels change the score
most. For a C-channel image the map takes the largest magnitude over the channels:

    M_ij = max_c |w_{c,i,j}|                          (K, N, C, H, W) gradients → (K, N, H, W)

S_c is the pre-softmax score (the paper: the softmax would also reward suppressing the other
classes). One forward and one backward serve every class: the K one-hots are stacked.
"""
from __future__ import annotations

from caffe_port.methods.base import GradientMethod


class Saliency(GradientMethod):
    """Simonyan's saliency: plain back-propagation, M = max over channels of |∂S_c/∂I|.

    reduction: "max" (the paper's, the default), or "abs", "l2", "sum", "signed" (see
    ``reduce_channels``)
    """
    rule = "backprop"
    default_reduction = "max"
