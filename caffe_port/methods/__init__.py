"""The visualisation methods, each a thin client of ``caffe_port.Net`` that returns arrays.

    Saliency(net).attribute(data, target=281)            Simonyan et al. §3   (N, H, W)
    Deconvnet(net).attribute(data, top_k=5)              Zeiler & Fergus      (5, N, C, H, W)
    GuidedBackprop(net).attribute(data)                  Springenberg et al.  (N, C, H, W)
    CAM(net).attribute(data)                             Zhou et al.          (N, H, W)
    GradCAM(net, layer="conv5").attribute(data)          Selvaraju et al.     (N, H, W)
    GuidedGradCAM(net).attribute(data)                                        (N, C, H, W)
    SmoothGrad(Saliency(net), samples=50, noise=0.15)    Smilkov et al.
    IntegratedGradients(net, steps=50)                   Sundararajan et al.  (N, C, H, W)
    ClassModel(net, preset).generate("goose")            Simonyan et al. §2
    Localizer(net, preset).localize(photo, top_k=5)      Simonyan et al. §3.1
    recipe("cam-threshold").localizer(net, preset)       other maps and segmentations (recipes.py)

``data`` is the (N, C, H, W) input blob (``caffe_port.preprocess`` makes it from photographs).
Every method but ClassModel is an ``Attribution``: ``attribute`` is written once (base.py) and
each method supplies only ``maps(data, classes)`` — the Net client ``Method`` resolves the
classes, or, for SmoothGrad and IntegratedGradients (``Wrapper``), the method they wrap.
"""
from caffe_port.methods.base import (Attribution, GradientMethod, Method, Targets, Wrapper, as_batch,
                                     find_input_blob, find_score_blob, reduce_channels,
                                     resolve_targets)
from caffe_port.methods.cam import CAM, CAMFamily, cam_structure, upsample
from caffe_port.methods.classmodel import ClassModel, ClassModelResult
from caffe_port.methods.deconvnet import Deconvnet
from caffe_port.methods.gradcam import GradCAM, GuidedGradCAM, last_spatial_blob
from caffe_port.methods.guided import GuidedBackprop
from caffe_port.methods.integrated_gradients import IntegratedGradients
from caffe_port.methods.localize import (Localization, Localizer, grabcut_mask, localize_by_threshold,
                                         localize_from_saliency, threshold_mask)
from caffe_port.methods.recipes import RECIPES, Recipe, recipe
from caffe_port.methods.saliency import Saliency
from caffe_port.methods.smoothgrad import SmoothGrad

__all__ = ["Attribution", "Method", "GradientMethod", "Wrapper", "Targets", "as_batch",
           "find_score_blob", "find_input_blob", "reduce_channels", "resolve_targets", "Saliency",
           "Deconvnet", "GuidedBackprop", "CAMFamily", "CAM", "cam_structure", "upsample", "GradCAM",
           "GuidedGradCAM", "last_spatial_blob", "SmoothGrad", "IntegratedGradients", "ClassModel",
           "ClassModelResult", "Localizer", "Localization", "grabcut_mask", "localize_from_saliency",
           "threshold_mask", "localize_by_threshold", "Recipe", "RECIPES", "recipe"]
