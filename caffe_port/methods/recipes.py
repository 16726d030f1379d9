"""Localisation recipes: which map seeds which segmentation, by name.

    paper               Saliency (max_c |∂S_c/∂I|)  → GrabCut from the 95 % / 30 % quantiles →
                        largest component (Simonyan et al. 2013, §3.1; the default, unchanged)
    gradcam-grabcut     Grad-CAM (ReLU'd, upsampled) → the paper's GrabCut
    cam-grabcut         CAM (Zhou et al. 2016)       → the paper's GrabCut
    cam-threshold       CAM → above 20 % of its range → largest component (Zhou et al. 2016, §3)
    smoothgrad-grabcut  SmoothGrad of the saliency (Smilkov et al. 2017) → the paper's GrabCut

A recipe is a map-making method (a class of this package, built on the net) and a segmentation
of localize.py (``localize_from_saliency`` or ``localize_by_threshold``); ``Localizer`` applies
it to one photograph, ``caffe-port batch --localize`` and ``caffe-port evaluate`` to a set:

    boxes = recipe("cam-threshold").localizer(net, preset).localize(photo, top_k=5)

The maps are taken where the net looked (the preset's crop, in the photograph's pixels); every
segmentation works on those pixels only.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from caffe_port.errors import InputError
from caffe_port.methods.cam import CAM
from caffe_port.methods.gradcam import GradCAM
from caffe_port.methods.localize import Localizer, localize_by_threshold, localize_from_saliency
from caffe_port.methods.saliency import Saliency
from caffe_port.methods.smoothgrad import SmoothGrad

DEFAULT = "paper"


@dataclass(frozen=True)
class Recipe:
    """A map and the segmentation it seeds.

    method:  the map's class, built as method(net, **common), or for a Wrapper as
             method(wraps(net, **common))
    segment: (image, map, valid=, **options) → (mask, half-open box or None)
    wraps:   the class a Wrapper's method is (SmoothGrad over Saliency)
    """
    name: str
    method: type
    segment: Callable
    wraps: type | None = None
    summary: str = ""

    def build(self, net, method_options=None, **common):
        """The recipe's map-making method on ``net``; ``common``: score_blob, labels, layout, …;
        ``method_options``: the method's own (layer=, samples=, noise=, seed=)."""
        options = dict(method_options or {})
        if self.wraps is not None:
            return self.method(self.wraps(net, **common), **options)
        return self.method(net, **common, **options)

    def localizer(self, net_or_method, preset, method_options=None, common=None, **segment_options):
        """A Localizer of this recipe: on a net (its method built) or on a method given."""
        method = net_or_method if hasattr(net_or_method, "maps") else \
            self.build(net_or_method, method_options, **(common or {}))
        return Localizer(method, preset, segment=self.segment, **segment_options)


RECIPES = {r.name: r for r in (
    Recipe("paper", Saliency, localize_from_saliency,
           summary="saliency, 95 %/30 % quantile seeds, GrabCut, largest component (Simonyan et al. §3.1)"),
    Recipe("gradcam-grabcut", GradCAM, localize_from_saliency,
           summary="Grad-CAM seeds the paper's GrabCut"),
    Recipe("cam-grabcut", CAM, localize_from_saliency, summary="CAM seeds the paper's GrabCut"),
    Recipe("cam-threshold", CAM, localize_by_threshold,
           summary="CAM above 20 % of its range, largest component (Zhou et al. 2016)"),
    Recipe("smoothgrad-grabcut", SmoothGrad, localize_from_saliency, wraps=Saliency,
           summary="SmoothGrad saliency into the paper's GrabCut"),
)}


def recipe(name) -> Recipe:
    """The recipe called ``name`` (a Recipe passes through); InputError naming them otherwise."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise InputError(f"unknown localisation recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]
