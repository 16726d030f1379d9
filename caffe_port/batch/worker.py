"""The work on one batch of images, the same in every engine: decode, pre-process, one forward,
the maps of every method and class, back to each photograph's pixels, boxes.

    settings = Settings(model, preset, methods=(MethodSpec("saliency", Saliency),), top_k=5)
    worker = Worker(settings)                    # loads the Net once (or takes one: net=)
    decoded = [worker.decode(item) for item in items]
    results = worker.explain(decoded)            # [ImageResult], one per item, in order

One batch (images of one input shape) shares one forward pass: a plain ``Method`` (the scorer)
forwards it and resolves the classes, and every method is built with the scorer's
``HeldForward``, so its ``maps`` finds the forward already held and runs only its backward, the
K classes stacked in it. An image that cannot be read or pre-processed, or a batch the net
refuses, becomes results with the one-line error; nothing here raises for one image's sake.

Settings are plain values (picklable): the Ray engine sends them to each actor, which builds its
own Worker.
"""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from caffe_port.batch.inputs import Item
from caffe_port.errors import CaffePortError, InputError
from caffe_port.methods.base import HeldForward, Method, one_class, resolve_targets
from caffe_port.methods.recipes import DEFAULT as DEFAULT_RECIPE
from caffe_port.methods.recipes import recipe as get_recipe
from caffe_port.models.efficientnet_lite import weights_path
from caffe_port.net import Net
from caffe_port.preprocess import Preset, load_image

EMBEDDED = "efficientnet-lite0"
LABEL = "label"        # --class label: each image's ground-truth class, from its list


@dataclass(frozen=True)
class MethodSpec:
    """A method by name: ``factory(net, **common)`` builds it (common: score_blob, labels,
    batch_size, held); ``options`` are the values bound into the factory, recorded in the
    settings so that a rerun with other values is noticed."""
    name: str
    factory: Callable
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """What a batch run computes, and on what.

    model:      an .onnx or .prototxt path, "efficientnet-lite0", or the model's bytes
    preset:     the caffe_port.preprocess Preset that prepares each photograph
    methods:    MethodSpecs, in the order rows are written
    target:     None (the top class), a class index or name, or "label" (each image's ground truth)
    top_k:      the k best classes instead of ``target``
    localize:   boxes from each (H, W) map, by ``recipe``'s segmentation
    recipe:     a caffe_port.methods.recipes name: its segmentation makes the boxes (default
                "paper": GrabCut, Simonyan et al. §3.1)
    keep_maps:  write each map's .npy (False: only the rows, for boxes and scores)
    batch_size: images per forward (a net with a fixed batch size uses its own)
    """
    model: object
    preset: Preset
    methods: tuple
    weights: str | None = None
    target: object = None
    top_k: int | None = None
    localize: bool = False
    score_blob: str | None = None
    labels: tuple | None = None
    device: str = "auto"
    threads: int | None = None
    batch_size: int = 16
    recipe: str = DEFAULT_RECIPE
    keep_maps: bool = True

    def fingerprint(self) -> dict:
        """What decides the rows and maps (JSON values): the model's bytes, the pre-processing,
        the methods and their options, the classes, localisation. Device, threads and batch size
        decide only the speed and are left out."""
        return {"model": model_identity(self.model, self.weights),
                "preset": {k: list(v) if isinstance(v, tuple) else v
                           for k, v in vars(self.preset).items()},
                "methods": [{"name": m.name, "options": {k: _plain(v) for k, v in m.options.items()}}
                            for m in self.methods],
                "target": _plain(self.target), "top_k": self.top_k, "localize": bool(self.localize),
                "score_blob": self.score_blob,
                "labels": None if self.labels is None else _digest("\n".join(self.labels).encode()),
                # named only where they differ from the defaults, so that folders written before
                # they existed resume
                **({"recipe": self.recipe} if self.localize and self.recipe != DEFAULT_RECIPE else {}),
                **({"keep_maps": False} if not self.keep_maps else {})}


def _plain(value):
    return value if value is None or isinstance(value, (bool, int, float, str)) else repr(value)


def _digest(data) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_identity(model, weights=None) -> dict:
    """The model as the settings record it: its file's (and weights') SHA-256, the embedded
    model's weights' digest, or the digest of the bytes given."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return {"bytes_sha256": _digest(bytes(model))}
    if hasattr(model, "SerializeToString"):
        return {"bytes_sha256": _digest(model.SerializeToString())}
    model = os.fspath(model)
    if model == EMBEDDED:
        return {"embedded": EMBEDDED, "weights_sha256": file_digest(weights_path())}
    try:
        identity = {"file": os.path.basename(model), "sha256": file_digest(model)}
        if weights is not None:
            identity.update(weights=os.path.basename(weights), weights_sha256=file_digest(weights))
    except OSError as e:
        raise InputError(f"{e.filename}: cannot read the model ({e.strerror})") from None
    return identity


# --- results ----------------------------------------------------------------------------------------

@dataclass
class Decoded:
    """One item read and pre-processed (or its error)."""
    item: Item
    photo: np.ndarray | None = None     # (H, W, 3) RGB, the photograph
    data: np.ndarray | None = None      # (1, C, h, w), the net's input
    error: str | None = None
    seconds: float = 0.0


@dataclass
class MapRow:
    """One method × class of one image: the map in the photograph's pixels."""
    method: str
    rank: int                           # 1 … K within the image's classes
    class_index: int
    name: str
    score: float                        # S_c, the pre-softmax score
    prob: float                         # softmax of the scores at c
    saliency_map: np.ndarray | None     # (H, W) or (C, H, W) float32; None when maps are not kept
    box: tuple | None = None            # (x0, y0, x1, y1), half-open, when localising


@dataclass
class ImageResult:
    """What one image gave: its maps, or the one-line error that stopped it."""
    item: Item
    rows: list
    error: str | None = None
    size: tuple | None = None           # (H, W) of the photograph
    seconds: float = 0.0                # decode … maps and boxes (its share of the batch's passes)


def truncation(path) -> str | None:
    """Why a JPEG or PNG file is cut short, or None. OpenCV decodes a JPEG that lacks its end
    (a download or copy that stopped) into a photograph whose lower part is grey, with only a
    warning on stderr; a JPEG without its end-of-image marker (FF D9) in its last 4 KiB, or a PNG
    without its IEND chunk at the end, is refused here instead."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read()
    except OSError:
        return None                     # load_image says what is wrong with it
    # entropy-coded data cannot hold FF D9 (a data FF is stuffed as FF 00): a file cut in its
    # scan has none near its end, while trailers appended after the marker keep one in view
    if head[:2] == b"\xff\xd8" and b"\xff\xd9" not in tail:
        return f"{path}: truncated JPEG file (no end-of-image marker)"
    if head == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail[-16:]:
        return f"{path}: truncated PNG file (no IEND chunk)"
    return None


def decode(item: Item, preset: Preset) -> Decoded:
    """Read and pre-process one image; an unreadable one gives its error, not an exception."""
    t0 = time.perf_counter()
    try:
        cut = truncation(item.path)
        if cut is not None:
            return Decoded(item, error=cut, seconds=time.perf_counter() - t0)
        photo = load_image(item.path)
        data = preset.preprocess(photo)
        return Decoded(item, photo, data, seconds=time.perf_counter() - t0)
    except CaffePortError as e:
        return Decoded(item, error=str(e), seconds=time.perf_counter() - t0)
    except (MemoryError, OSError) as e:
        return Decoded(item, error=f"{item.path}: {type(e).__name__}: {e}", seconds=time.perf_counter() - t0)


class Worker:
    """A Net and the methods of ``settings``, loaded once; ``decode`` and ``explain`` batches."""

    def __init__(self, settings: Settings, net=None):
        if net is None:
            net = Net(settings.model, weights=settings.weights, device=settings.device,
                      threads=settings.threads)
        self.settings = settings
        self.net = net
        self.preset = settings.preset
        held = HeldForward()
        common = {"score_blob": settings.score_blob, "batch_size": settings.batch_size, "held": held,
                  "labels": None if settings.labels is None else list(settings.labels)}
        self.scorer = Method(net, **common)
        self.batch_size = self.scorer.batch_size
        self.methods = [(spec.name, spec.factory(net, **common)) for spec in settings.methods]
        self.segment = get_recipe(settings.recipe).segment
        self._pool = ThreadPoolExecutor(settings.threads or os.cpu_count() or 1,
                                        thread_name_prefix="caffe-port-maps")
        if settings.top_k is not None and not 1 <= settings.top_k <= self.scorer.num_classes:
            raise InputError(f"--top-k must be in 1…{self.scorer.num_classes}, got {settings.top_k}")
        if settings.target is not None and settings.target != LABEL:
            one_class(settings.target, self.scorer.num_classes, self.scorer.labels)   # now, not per image

    def decode(self, item: Item) -> Decoded:
        return decode(item, self.preset)

    def explain(self, decoded) -> list:
        """[ImageResult] for the decoded images, in their order. Images are forwarded together in
        groups of one input shape, at most ``batch_size`` at a time."""
        results = [None] * len(decoded)
        groups = {}
        for i, d in enumerate(decoded):
            if d.error is not None:
                results[i] = ImageResult(d.item, [], d.error, None, d.seconds)
            elif self.settings.target == LABEL and d.item.label is None:
                results[i] = ImageResult(d.item, [], f"{d.item.image}: --class label, but the image "
                                                     f"has no ground-truth class (give a list with "
                                                     f"class indices)", d.photo.shape[:2], d.seconds)
            else:
                groups.setdefault(d.data.shape, []).append(i)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                for i, result in zip(chunk, self._explain_group([decoded[i] for i in chunk])):
                    results[i] = result
        return results

    def _explain_group(self, group):
        t0 = time.perf_counter()
        try:
            data = np.concatenate([d.data for d in group])
            target = self.settings.target
            if target == LABEL:
                target = [d.item.label for d in group]
            scores = self.scorer.scores(data)          # the one forward of this batch
            chosen = resolve_targets(scores, target, self.settings.top_k, self.scorer.labels)
            maps = {name: method.maps(data, chosen.classes) for name, method in self.methods}
        except CaffePortError as e:
            return [ImageResult(d.item, [], str(e), d.photo.shape[:2], d.seconds) for d in group]
        finally:
            self.scorer.release()
        shared = (time.perf_counter() - t0) / len(group)
        probs = softmax(scores)
        # each image's maps back to its pixels, and GrabCut, one image a thread: OpenCV releases
        # the GIL and the net is idle meanwhile
        return list(self._pool.map(lambda n: self._image_result(group[n], n, chosen, maps, probs, shared),
                                   range(len(group))))

    def _image_result(self, d, n, chosen, maps, probs, shared_seconds):
        t0 = time.perf_counter()
        geometry = self.preset.geometry(d.photo.shape[:2])
        covered = geometry.covered() if self.settings.localize else None
        rows = []
        for name, _ in self.methods:
            for k in range(chosen.classes.shape[0]):
                c = int(chosen.classes[k, n])
                saliency_map = geometry.to_original(maps[name][k, n])
                box = None
                if covered is not None and saliency_map.ndim == 2:
                    box = self._box(d.photo, saliency_map, covered)
                rows.append(MapRow(name, k + 1, c, self.scorer.class_name(c), float(chosen.scores[k, n]),
                                   float(probs[n, c]), saliency_map if self.settings.keep_maps else None,
                                   box))
        seconds = d.seconds + shared_seconds + (time.perf_counter() - t0)
        return ImageResult(d.item, rows, None, d.photo.shape[:2], seconds)

    def close(self):
        self._pool.shutdown(wait=True)

    def _box(self, photo, saliency_map, covered):
        try:
            _, box = self.segment(photo, saliency_map, valid=covered)
        except InputError:          # a constant map where the net looked: nothing to localise
            return None
        return None if box is None else tuple(int(v) for v in box)


def softmax(scores) -> np.ndarray:
    """(N, classes) scores → probabilities, in float64."""
    s = np.asarray(scores, dtype=np.float64)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
