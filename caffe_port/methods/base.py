"""The shared core of every visualisation method: a thin client of ``caffe_port.Net``.

A method holds a Net, the name of its image input (``data``) and of its *score blob* — the
pre-softmax class scores S_c that Simonyan et al. differentiate (``fc8`` in CaffeNet). It runs
the forward pass in chunks along the batch axis, resolves which classes to explain, injects
one-hot diffs at the score blob and reads diffs back:

    net.forward(data=x)                                   one forward per chunk of images
    net.backward(fc8=onehots, rule=..., diffs=[...])      onehots: (K, N, classes), one backward

Classes: ``target`` is an int, a class name, one class per image (N,), or K per image (K, N);
``top_k=k`` takes each image's k best scores. K classes share one forward and one backward (the
stacked diffs of ``Net.backward``). Results are (N, ...) for a single target per image and
(K, N, ...) when ``top_k`` or a (K, N) target is given; after a call, ``classes_`` and
``scores_`` hold the (K, N) class indices and scores used.

The classes: ``Attribution`` (``attribute``, written once; each method supplies ``maps``),
``Method`` (the Net client: forward, targets, backward), ``GradientMethod`` (input gradients under
a ReLU rule: Saliency, Deconvnet, GuidedBackprop) and ``Wrapper`` (a method over another:
SmoothGrad, IntegratedGradients). The CAM family is in cam.py.
"""
from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from caffe_port import imagenet
from caffe_port.errors import InputError, ShapeError
from caffe_port.layout import input_layout

DEFAULT_BATCH = 16
REDUCTIONS = ("max", "abs", "l2", "sum", "signed")


# --- finding the blobs ---------------------------------------------------------------------------

def find_score_blob(net, score_blob=None) -> str:
    """The pre-softmax class scores: ``score_blob`` if given; else the input of the Softmax that
    produces an output of the net; else the net's first output."""
    graph = net.graph
    if score_blob is not None:
        net.blobs[score_blob]                       # BlobError, with a suggestion, if unknown
        name = score_blob
    else:
        name = graph.score_blob()
    if name not in graph.differentiable:
        raise InputError(f"score blob {name!r} does not depend on the image input (or is not a "
                         f"float tensor); name the class scores with score_blob=")
    return name


def find_input_blob(net, input_blob=None) -> str:
    """The image input: ``input_blob`` if given, else the net's only 4-D float input."""
    if input_blob is not None:
        if input_blob not in net.inputs:
            raise InputError(f"{input_blob!r} is not an input of this net "
                             f"(inputs: {', '.join(net.inputs)})")
        return input_blob
    images = [name for name in net.inputs
              if len(net.graph.input_shape(name)) == 4 and net.graph.is_float(name)]
    if len(images) != 1:
        raise InputError(f"cannot tell which input is the image (inputs: {', '.join(net.inputs)}); "
                         f"pass input_blob=")
    return images[0]


# --- class names -----------------------------------------------------------------------------------

def imagenet_labels():
    """The 1000 ILSVRC-2012 class names, in class-index order (caffe_port/data)."""
    return list(imagenet.class_names())


def class_index(name, labels) -> int:
    """A class name → its index: the whole label, any of its comma-separated synonyms, or a
    WordNet id, case-insensitively."""
    if labels is None:
        raise InputError(f"class {name!r} given by name, but the net has no class names: "
                         f"pass labels= (a list of names) or a class index")
    if len(labels) == imagenet.NUM_CLASSES and tuple(labels) == imagenet.class_names():
        return imagenet.class_index(name)       # also WordNet ids, and ambiguity reported
    wanted = name.strip().lower()
    for k, label in enumerate(labels):
        if wanted == label.lower() or wanted in (s.strip().lower() for s in label.split(",")):
            return k
    synonyms = [s.strip() for label in labels for s in label.split(",")]
    close = difflib.get_close_matches(name, synonyms, n=3)
    raise InputError(f"unknown class name {name!r}" + (f"; did you mean {', '.join(map(repr, close))}?"
                                                       if close else ""))


@dataclass
class Targets:
    classes: np.ndarray        # (K, N) class indices
    scores: np.ndarray         # (K, N) their scores S_c
    stacked: bool              # results keep the K axis

    def shape(self, maps):
        """(K, N, ...) results → (N, ...) unless stacked."""
        return maps if self.stacked else maps[0]


def resolve_targets(scores, target=None, top_k=None, labels=None) -> Targets:
    """scores (N, classes) + the user's choice → Targets. See the module docstring."""
    n, num_classes = scores.shape
    if top_k is not None and target is not None:
        raise InputError("give either target= or top_k=, not both")
    if top_k is not None:
        if not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= num_classes:
            raise InputError(f"top_k must be an int in 1…{num_classes}, got {top_k!r}")
        classes = np.argsort(-scores, axis=1, kind="stable")[:, :int(top_k)].T
        stacked = True
    elif target is None:
        classes = np.argmax(scores, axis=1)[None]
        stacked = False
    else:
        if isinstance(target, (str, int, np.integer)):
            grid = np.array([[target] * n], dtype=object)
            stacked = False
        else:
            grid = np.array(target, dtype=object)
            if grid.ndim == 1:
                if grid.shape[0] != n:
                    raise InputError(f"target has {grid.shape[0]} classes for {n} images; give one "
                                     f"class, one per image, or a (K, N) array")
                grid, stacked = grid[None], False
            elif grid.ndim == 2 and grid.shape[1] == n:
                stacked = True
            else:
                raise InputError(f"target of shape {grid.shape} does not fit {n} images; give one "
                                 f"class, one per image (N,), or K per image (K, N)")
        classes = np.empty(grid.shape, dtype=np.int64)
        for idx, c in np.ndenumerate(grid):
            classes[idx] = one_class(c, num_classes, labels)
    classes = np.asarray(classes, dtype=np.int64)
    return Targets(classes, np.take_along_axis(scores.T, classes, axis=0), stacked)


def one_class(c, num_classes, labels) -> int:
    """One class given as an index or a name → its index, checked against ``num_classes``."""
    if isinstance(c, str):
        return class_index(c, labels)
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
        raise InputError(f"a class must be an index or a name, got {c!r}")
    if not 0 <= int(c) < num_classes:
        raise InputError(f"class index {int(c)} is out of range: the net has {num_classes} "
                         f"classes (0…{num_classes - 1})")
    return int(c)


# --- channel reductions ----------------------------------------------------------------------------

def check_reduction(reduction) -> str:
    """``reduction`` if it is one of ``REDUCTIONS``; InputError naming them otherwise."""
    if reduction not in REDUCTIONS:
        raise InputError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
    return reduction


def reduce_channels(grad, reduction):
    """(..., C, H, W) gradients → a map. Simonyan's saliency is "max":

        max     M = max_c |g_c|              (the paper's; (…, H, W))
        abs     M = Σ_c |g_c|                (L1 over channels)
        l2      M = √(Σ_c g_c²)
        sum     M = Σ_c g_c                  (signed)
        signed  the gradient itself          ((…, C, H, W))
    """
    check_reduction(reduction)
    if reduction == "max":
        return np.max(np.abs(grad), axis=-3)
    if reduction == "abs":
        return np.sum(np.abs(grad), axis=-3)
    if reduction == "l2":
        return np.sqrt(np.sum(np.square(grad, dtype=np.float64), axis=-3)).astype(grad.dtype)
    if reduction == "sum":
        return np.sum(grad, axis=-3)
    return grad                                     # "signed"


def as_batch(data) -> np.ndarray:
    """Image data as a contiguous float32 (N, C, H, W) batch (one (C, H, W) image becomes N = 1),
    channels first whatever the net's own input layout (``Method.layout`` converts)."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 3:
        data = data[None]
    if data.ndim != 4:
        raise ShapeError(f"image data must be (N, C, H, W) (or one (C, H, W) image), got "
                         f"shape {data.shape}")
    if data.shape[0] == 0:
        raise ShapeError("image data holds no images (N = 0)")
    return np.ascontiguousarray(data)


# --- what every method is ----------------------------------------------------------------------

class Attribution(ABC):
    """Maps of images for chosen classes: what every visualisation method is (Captum's
    ``Attribution``). ``attribute`` is written here once; a method supplies

        maps(data, classes)     (K, N, ...) maps for explicit (K, N) class indices
        targets(data, ...)      the forward pass and the classes resolved (``Targets``)
        release()               let the forward the net holds go

    A ``Method`` gets ``targets``/``release`` from its Net, a ``Wrapper`` from the method it
    wraps; only ``maps`` differs from one method to the next.
    """

    @abstractmethod
    def maps(self, data, classes) -> np.ndarray:
        """(K, N, ...) maps for explicit (K, N) classes."""

    @abstractmethod
    def targets(self, data, target=None, top_k=None) -> Targets:
        """Forward the images and resolve ``target``/``top_k`` against their scores."""

    @abstractmethod
    def release(self):
        """Forget which forward the net holds (the next call runs its own forward)."""

    def targets_and_maps(self, data, target=None, top_k=None):
        """(Targets, (K, N, ...) maps): the classes chosen and their maps, the K axis kept."""
        data = as_batch(data)
        try:
            t = self.targets(data, target, top_k)
            return t, self.maps(data, t.classes)
        finally:
            self.release()

    def attribute(self, data, target=None, top_k=None) -> np.ndarray:
        """Maps of the images for the chosen classes: (N, ...) for one class per image, (K, N, ...)
        for ``top_k`` or a (K, N) ``target`` (module docstring). ``...`` is (H, W) for a map
        reduced over channels, (C, H, W) for a signed image. Afterwards ``classes_`` and
        ``scores_`` hold the (K, N) classes and scores used."""
        t, maps = self.targets_and_maps(data, target, top_k)
        return t.shape(maps)


# --- the Net client ----------------------------------------------------------------------------

class HeldForward:
    """Which forward the net's blobs hold: ``key`` = (array, start, stop) of the chunk a method
    forwarded within its current call, or None. Methods given one ``held=`` share it, so that one
    forward of a batch serves them all: ``GradCAM(net, held=saliency.held)``."""

    def __init__(self):
        self.key = None


class Method:
    """A Net, its image input and its score blob; forward/backward in chunks of the batch axis.

    net:        a caffe_port.Net
    score_blob: the pre-softmax class scores (default: found, see ``find_score_blob``)
    input_blob: the image input (default: the only 4-D float input)
    labels:     class names, for ``target="tabby cat"`` and captions (default: ImageNet's when the
                net has 1000 classes)
    batch_size: images per forward/backward (a net whose batch size is fixed uses that one)
    held:       a ``HeldForward`` shared with other methods on the same net (default: its own)
    layout:     "NCHW" or "NHWC", the image input's (default: found from the graph, see
                caffe_port.layout); the method's images and maps are (N, C, H, W) whatever it is,
                converted where they enter and leave the net
    """

    def __init__(self, net, *, score_blob=None, input_blob=None, labels=None, batch_size=DEFAULT_BATCH,
                 held=None, layout=None):
        self.net = net
        self.input_blob = find_input_blob(net, input_blob)
        self.layout = input_layout(net.graph, self.input_blob, layout)
        self.score_blob = find_score_blob(net, score_blob)
        self._labels = list(labels) if labels is not None else None
        fixed = net.graph.input_shape(self.input_blob, batch=None)[0]
        self.batch_size = int(fixed) if fixed is not None else int(batch_size)
        self._fixed_batch = fixed is not None
        if self.batch_size < 1:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        # whose forward the net's blobs hold, within one call only: a later call may follow the
        # user's own net.forward()
        self.held = held if held is not None else HeldForward()
        self.classes_ = None
        self.scores_ = None

    # --- classes ---------------------------------------------------------------------------------

    @property
    def num_classes(self):
        shape = self.net.blobs[self.score_blob].shape
        return int(shape[1])

    @property
    def labels(self):
        if self._labels is None and self.num_classes == 1000:
            self._labels = imagenet_labels()
        return self._labels

    def class_name(self, index) -> str:
        labels = self.labels
        return labels[index] if labels is not None and 0 <= index < len(labels) else f"class {index}"

    # --- data and chunks -------------------------------------------------------------------------

    def _chunks(self, n):
        return [(start, min(start + self.batch_size, n)) for start in range(0, n, self.batch_size)]

    def _forward(self, data, start, stop):
        """Forward images start:stop (padded to a fixed batch size); returns their (n, classes) scores."""
        chunk = data[start:stop]
        if self._fixed_batch and chunk.shape[0] < self.batch_size:
            pad = np.repeat(chunk[-1:], self.batch_size - chunk.shape[0], axis=0)
            chunk = np.concatenate([chunk, pad])
        held = self.held.key
        if held is None or held[0] is not data or held[1:] != (start, stop):
            out = self.net.forward(blobs=[self.score_blob], **{self.input_blob: self.layout.to_net(chunk)})
            self.held.key = (data, start, stop)
        else:
            out = {self.score_blob: self.net.blobs[self.score_blob].data}
        # a copy: the blob's memory is rewritten by the next chunk's forward
        scores = np.array(out[self.score_blob])
        if scores.ndim < 2 or int(np.prod(scores.shape[2:])) != 1:
            raise InputError(f"score blob {self.score_blob!r} has shape {scores.shape}, not "
                             f"(N, classes): name the class scores with score_blob=")
        return scores.reshape(scores.shape[0], -1)[:stop - start]

    def scores(self, data) -> np.ndarray:
        """The (N, classes) pre-softmax scores of the images."""
        data = as_batch(data)
        self.held.key = None
        return np.concatenate([self._forward(data, a, b) for a, b in self._chunks(len(data))])

    def targets(self, data, target=None, top_k=None) -> Targets:
        """Forward the images and resolve ``target``/``top_k`` against their scores."""
        targets = resolve_targets(self.scores(data), target, top_k, self.labels)
        self.classes_, self.scores_ = targets.classes, targets.scores
        return targets

    def release(self):
        """Forget which forward the net holds (the next call runs its own forward)."""
        self.held.key = None

    def _backward(self, classes, n, rule="backprop", diffs=()):
        """One backward for the chunk the net holds: one-hot diffs at the score blob for the (K, n)
        ``classes``; returns {input: (K, n, ...), each of ``diffs``: (K, n, ...)}."""
        shape = self.net.blobs[self.score_blob].shape
        k = classes.shape[0]
        onehot = np.zeros((k, shape[0], shape[1]), dtype=np.float32)
        onehot[np.arange(k)[:, None], np.arange(n)[None, :], classes] = 1
        onehot = onehot.reshape((k,) + tuple(shape))
        result = self.net.backward(diffs=list(diffs), rule=rule, **{self.score_blob: onehot})
        result[self.input_blob] = self.layout.from_net(result[self.input_blob])
        return {name: d[:, :n] for name, d in result.items()}

    def input_gradients(self, data, classes, rule="backprop"):
        """∂S_c/∂data for the (K, N) ``classes`` → (K, N, C, H, W) float32, under ``rule``
        ("backprop", "deconvnet" or "guided")."""
        data = as_batch(data)
        classes = np.asarray(classes, dtype=np.int64)
        out = np.empty((classes.shape[0],) + data.shape, dtype=np.float32)
        for a, b in self._chunks(len(data)):
            self._forward(data, a, b)
            out[:, a:b] = self._backward(classes[:, a:b], b - a, rule)[self.input_blob]
        return out


class GradientMethod(Method, Attribution):
    """Maps made from the input gradient under one ReLU rule, reduced over channels.

    reduction: see ``reduce_channels`` (each subclass has its own default)
    """
    rule = "backprop"
    default_reduction = "signed"

    def __init__(self, net, *, reduction=None, **kwargs):
        super().__init__(net, **kwargs)
        self.reduction = check_reduction(reduction if reduction is not None else self.default_reduction)

    def gradients(self, data, classes):
        """Raw (K, N, C, H, W) gradients under this method's rule for explicit (K, N) classes."""
        return self.input_gradients(data, classes, self.rule)

    def maps(self, data, classes):
        """(K, N, ...) maps for explicit (K, N) classes (what SmoothGrad averages)."""
        return reduce_channels(self.gradients(data, classes), self.reduction)


def _of_the_wrapped(name):
    """A read-only attribute that a Wrapper reads from the method it wraps."""
    return property(lambda self: getattr(self.method, name), doc=f"The wrapped method's ``{name}``.")


class Wrapper(Attribution):
    """A method over another method (SmoothGrad, Integrated Gradients, as Captum's NoiseTunnel):
    the wrapped one runs the net and resolves the classes; the wrapper only changes ``maps``."""

    num_classes = _of_the_wrapped("num_classes")
    labels = _of_the_wrapped("labels")
    classes_ = _of_the_wrapped("classes_")
    scores_ = _of_the_wrapped("scores_")

    def __init__(self, method):
        self.method = method

    def targets(self, data, target=None, top_k=None) -> Targets:
        return self.method.targets(data, target, top_k)

    def release(self):
        self.method.release()

    def class_name(self, index) -> str:
        return self.method.class_name(index)
