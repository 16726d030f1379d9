"""Weakly supervised object localisation from a saliency map (Simonyan et al. 2013, §3.1).

The saliency map seeds a colour segmentation (OpenCV's GrabCut, whose colour models are Gaussian
mixtures of 5 components each, cut by a graph cut):

    saliency ≥ q(95 %)   → GC_FGD     (certainly object: the foreground colour model's seeds)
    saliency ≤ q(30 %)   → GC_BGD     (certainly background: the background model's seeds)
    anything in between  → GC_PR_BGD  (probably background)
    outside the crop     → GC_PR_BGD  (the net never saw it: no evidence either way)

The quantiles are taken over the pixels the net saw. The undecided band starts as *probably
background* because an object rarely fills 65 % of a photograph: starting it as foreground would
make the object's colour model half background. GrabCut's later iterations re-estimate both
models from the current labelling, so undecided pixels of the object's colours move to the
foreground. The result is the largest 8-connected component of the foreground, and its
bounding box (x0, y0, x1, y1), half-open (``mask[y0:y1, x0:x1]``), in original-image pixels.

GrabCut runs on at most ``max_side`` pixels along the longer side (larger photographs are
shrunk by area averaging, and the foreground scaled back with nearest-neighbour sampling).
OpenCV's random generator is seeded (``seed``) before each cut: the result is deterministic.

The other segmentation, CAM's (Zhou et al. 2016, §3: "segment the regions of which the value is
above 20 % of the max value of the CAM", then the box of the largest connected component), is
``threshold_mask``: over the pixels the net saw, the map stretched to 0…1 and cut above
``fraction``,

    foreground = M > min M + fraction · (max M − min M)

as the authors' released code does it (the map written as a grey image by ``mat2gray`` over its
own range, then thresholded). For a map whose minimum is 0 (Grad-CAM's, after its ReLU) this is
the paper's "20 % of the max"; CAM itself has no ReLU and its raw values are mostly positive on
a photograph, where 20 % of the raw maximum keeps nearly the whole crop. Recipes (recipes.py)
pair a map with one of the two segmentations.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from caffe_port.errors import InputError, ShapeError
from caffe_port.methods.saliency import Saliency
from caffe_port.preprocess import as_rgb
from caffe_port.preprocess import preset as get_preset

MAX_SIDE = 1024


def largest_component(foreground):
    """(mask of the largest 8-connected component, its half-open box or None)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(foreground.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(foreground.shape, dtype=bool), None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x0, y0 = int(stats[best, cv2.CC_STAT_LEFT]), int(stats[best, cv2.CC_STAT_TOP])
    box = (x0, y0, x0 + int(stats[best, cv2.CC_STAT_WIDTH]), y0 + int(stats[best, cv2.CC_STAT_HEIGHT]))
    return labels == best, box


def grabcut_mask(image, saliency, *, foreground_quantile=0.95, background_quantile=0.30,
                 iterations=5, valid=None, max_side=MAX_SIDE, seed=0):
    """The GrabCut foreground (H, W) bool seeded by ``saliency`` (H, W) on ``image`` (H, W, 3).

    valid: (H, W) bool, the pixels whose saliency is known (default: all)
    """
    image = as_rgb(image)
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.shape != image.shape[:2]:
        raise ShapeError(f"saliency map of shape {saliency.shape} does not match the "
                         f"{image.shape[0]}×{image.shape[1]} image")
    if not 0 <= background_quantile < foreground_quantile <= 1:
        raise InputError(f"need 0 ≤ background_quantile < foreground_quantile ≤ 1, got "
                         f"{background_quantile} and {foreground_quantile}")
    valid = np.ones(saliency.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    seen = saliency[valid]
    if seen.size == 0 or not np.all(np.isfinite(seen)) or seen.max() == seen.min():
        raise InputError("the saliency map is constant (or empty or not finite) where the net "
                         "looked: nothing to localise")
    q_bg, q_fg = np.quantile(seen, [background_quantile, foreground_quantile])
    background = valid & (saliency <= q_bg)
    foreground = valid & (saliency >= q_fg) & ~background
    if not foreground.any():          # the top quantile tied with the bottom one
        foreground = valid & ~background
    if not foreground.any():
        # the bottom quantile is the maximum (a map that takes its top value on over 70 % of the
        # pixels): the top value seeds the object, everything below it the background
        foreground = valid & (saliency >= q_fg)
        background = valid & ~foreground
    mask = np.full(saliency.shape, cv2.GC_PR_BGD, dtype=np.uint8)
    mask[background] = cv2.GC_BGD
    mask[foreground] = cv2.GC_FGD

    height, width = saliency.shape
    factor = min(1.0, max_side / max(height, width))
    pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8) if image.dtype != np.uint8 else image
    pixels = np.ascontiguousarray(pixels[..., ::-1])                       # OpenCV's BGR
    if factor < 1.0:
        small = (max(1, round(width * factor)), max(1, round(height * factor)))
        pixels = cv2.resize(pixels, small, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, small, interpolation=cv2.INTER_NEAREST)
    if not (mask == cv2.GC_FGD).any() or not np.isin(mask, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        # seeds of a few pixels can vanish when a large photograph is shrunk for GrabCut
        raise InputError(f"the saliency map's seeds do not survive the reduction to {mask.shape[1]}×"
                         f"{mask.shape[0]} pixels for GrabCut: nothing to localise (raise max_side)")
    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(int(seed))
    cv2.grabCut(pixels, mask, None, background_model, foreground_model, int(iterations),
                cv2.GC_INIT_WITH_MASK)
    result = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    if factor < 1.0:
        result = cv2.resize(result.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    return result


def localize_from_saliency(image, saliency, **options):
    """(mask, box): the largest component of ``grabcut_mask`` and its half-open box (or None)."""
    return largest_component(grabcut_mask(image, saliency, **options))


def threshold_mask(saliency, *, fraction=0.2, valid=None):
    """(H, W) bool: ``saliency`` > min + ``fraction`` · (max − min), its range taken over ``valid``
    (default: all), inside ``valid`` (Zhou et al. 2016's segmentation; module docstring)."""
    saliency = np.asarray(saliency, dtype=np.float32)
    if not 0 <= fraction < 1:
        raise InputError(f"the threshold fraction must be in 0…1 (exclusive of 1), got {fraction}")
    valid = np.ones(saliency.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if valid.shape != saliency.shape:
        raise ShapeError(f"valid mask of shape {valid.shape} does not match the map's {saliency.shape}")
    seen = saliency[valid]
    if seen.size == 0 or not np.all(np.isfinite(seen)) or seen.max() == seen.min():
        raise InputError("the saliency map is constant (or empty or not finite) where the net "
                         "looked: nothing to localise")
    low, high = float(seen.min()), float(seen.max())
    return valid & (saliency > low + fraction * (high - low))


def localize_by_threshold(image, saliency, *, fraction=0.2, valid=None):
    """(mask, box): the largest component of ``threshold_mask`` and its half-open box (or None).
    Only the image's size is read (the signature is ``localize_from_saliency``'s)."""
    if np.shape(saliency) != np.shape(image)[:2]:
        raise ShapeError(f"saliency map of shape {np.shape(saliency)} does not match the "
                         f"{np.shape(image)[0]}×{np.shape(image)[1]} image")
    return largest_component(threshold_mask(saliency, fraction=fraction, valid=valid))


@dataclass
class Localization:
    class_index: int
    class_name: str
    score: float
    box: tuple | None           # (x0, y0, x1, y1), half-open, original-image pixels
    mask: np.ndarray            # (H0, W0) bool, the largest foreground component
    saliency: np.ndarray        # (H0, W0) float32, the map in original-image pixels


class Localizer:
    """Map → segmentation → box, for the classes of one photograph (by default the paper's:
    Saliency → GrabCut; recipes.py has the others).

    method:  a map-making method (default: Saliency of the net) whose maps are (H, W)
    preset:  the caffe_port.preprocess Preset (or name) that prepares the photograph
    segment: (image, map, valid=, **options) → (mask, box); default ``localize_from_saliency``
    options: the segmentation's: foreground_quantile, background_quantile, iterations, max_side,
             seed (``grabcut_mask``), or fraction (``threshold_mask``)
    """

    def __init__(self, method, preset, *, segment=localize_from_saliency, **options):
        if not hasattr(method, "maps"):
            method = Saliency(method)
        self.method = method
        self.preset = get_preset(preset)
        self.segment = segment
        self.options = options

    def localize(self, image, target=None, top_k=None):
        """A list of Localization, one per class (the top-1 by default)."""
        image = as_rgb(image)
        m = self.method
        t, maps = m.targets_and_maps(self.preset.preprocess(image), target, top_k)
        maps = maps[:, 0]                       # (K, ...): the one photograph's
        if maps.ndim != 3:
            raise InputError(f"localisation needs one saliency value per pixel; the method gives "
                             f"maps of shape {maps.shape[1:]} (use a channel reduction, e.g. 'max')")
        geometry = self.preset.geometry(image.shape[:2])
        valid = geometry.covered()
        results = []
        for k in range(maps.shape[0]):
            saliency = geometry.to_original(maps[k])
            mask, box = self.segment(image, saliency, valid=valid, **self.options)
            c = int(t.classes[k, 0])
            name = m.class_name(c) if hasattr(m, "class_name") else f"class {c}"
            results.append(Localization(c, name, float(t.scores[k, 0]), box, mask, saliency))
        return results
