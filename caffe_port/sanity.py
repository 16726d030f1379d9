"""Model-randomisation sanity checks (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

A map that explains a model should change when the model's weights are destroyed. Two tests:

    cascading     re-initialise the weights from the top layer down, one unit after another,
                  keeping the units above randomised: column k has the top k units random
    independent   re-initialise one unit at a time, every other unit trained

and for each randomised net, each method's map of the *same* image and class (the class the
trained net chose) is compared with the trained net's map:

    spearman_abs  Spearman's ρ of the maps' magnitudes |M| (Σ_c |M_c| for a (C, H, W) map)
    spearman      Spearman's ρ of the signed maps (Σ_c M_c for a (C, H, W) map; a map that is
                  non-negative by construction — saliency, Grad-CAM — gives spearman_abs again)
    ssim          SSIM of the magnitudes, each scaled to [0, 1] by its own min and max (R = 1)

(caffe_port.metrics.similarity; a constant map has no ranks and gives NaN, ``null`` in JSON).

Re-initialisation: every parameter tensor of a layer (``net.params[layer]``: weights and biases,
BatchNorm folded in where the model did so — the paper randomises "weights (and other trainable
variables)") is redrawn from a normal distribution of mean 0 and the tensor's own standard
deviation, truncated at ±2σ (TensorFlow's truncated_normal; taking each tensor's own σ is
caffe_port's choice, so that the activations keep their scale). The draws are seeded by the seed
and, as a SeedSequence spawn key, the layer's position in ``net.params``: a layer gets the same
random weights in both tests and in every run. A tensor whose values are all equal (σ = 0)
keeps them.

Units: "layer" makes every layer with parameters a unit; "block" (the default) groups layers by
their name up to the last '.' or '/' (EfficientNet's ``blocks.3.expand``, ``.depthwise`` and
``.project`` are one unit ``blocks.3``; GoogLeNet's ``inception_3a/1x1`` … are ``inception_3a``).
"Top down" is the graph's topological order reversed.

The randomised weights go in through ``Net.set_params`` and the trained arrays come back the
same way when the checks end, however they end: the net the caller passed is as it was.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from caffe_port import render
from caffe_port.errors import InputError
from caffe_port.methods.base import as_batch
from caffe_port.metrics.similarity import spearman, ssim

MODES = ("cascading", "independent")
UNITS = ("block", "layer")
TRUNCATION = 2.0        # truncated normal: draws beyond ±2σ are redrawn


# --- what gets randomised --------------------------------------------------------------------------

@dataclass(frozen=True)
class Unit:
    """Layers randomised together, named for the figure and the JSON."""
    name: str
    layers: tuple


def block_name(layer) -> str:
    """A layer's block: its name up to the last '.' or '/' (the whole name if it has neither)."""
    cut = max(layer.rfind("."), layer.rfind("/"))
    return layer[:cut] if cut > 0 else layer


def layers_top_down(net):
    """The layers with parameters, the last in the graph's order first."""
    position = {node.name: node.index for node in net.graph.nodes}
    layers = sorted(net.params, key=lambda name: position[name], reverse=True)
    if not layers:
        raise InputError("the net has no layers with parameters to randomise")
    return layers


def units(net, by="block"):
    """The units of the net's layers with parameters, top first: a unit comes where its topmost
    layer does."""
    if by not in UNITS:
        raise InputError(f"unknown unit {by!r}; choose one of {', '.join(UNITS)}")
    groups = {}
    for layer in layers_top_down(net):
        groups.setdefault(layer if by == "layer" else block_name(layer), []).append(layer)
    return [Unit(name, tuple(members)) for name, members in groups.items()]


def choose_units(all_units, names):
    """The units named (by unit name, or by the name of a layer in one), top first; all if None."""
    if names is None:
        return list(all_units)
    by_layer = {layer: u for u in all_units for layer in u.layers}
    chosen = []
    for name in names:
        unit = next((u for u in all_units if u.name == name), None) or by_layer.get(name)
        if unit is None:
            raise InputError(f"no unit or layer with parameters is named {name!r} (units: "
                             f"{', '.join(u.name for u in all_units)})")
        if unit not in chosen:
            chosen.append(unit)
    order = {u: k for k, u in enumerate(all_units)}
    return sorted(chosen, key=order.get)


def truncated_normal(rng, shape, std, dtype):
    """Normal(0, std²) draws, each beyond ±TRUNCATION·std drawn again."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > TRUNCATION
    while np.any(outside):
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > TRUNCATION
    return (values * std).astype(dtype)


def reinitialised(net, layers, seed=0) -> dict:
    """{param tensor name: a new random array} for every parameter of ``layers`` (module
    docstring); the net is not changed."""
    position = {name: k for k, name in enumerate(net.params)}
    values = {}
    for layer in layers:
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(position[layer],)))
        for blob in net.params[layer]:
            trained = net.graph.constants[blob.name]
            std = float(np.std(trained, dtype=np.float64))
            values[blob.name] = (trained.copy() if std == 0 else
                                 truncated_normal(rng, trained.shape, std, trained.dtype))
    return values


@contextlib.contextmanager
def randomised(net, layers, seed=0):
    """Within the block, the layers' parameters are re-initialised; afterwards the net holds its
    trained arrays again (the same array objects), whatever happened inside."""
    new = reinitialised(net, layers, seed)
    trained = {name: net.graph.constants[name] for name in new}
    net.set_params(new)
    try:
        yield
    finally:
        net.set_params(trained)


# --- comparing maps --------------------------------------------------------------------------------

def magnitude(saliency_map) -> np.ndarray:
    """|M| as an (H, W) map: Σ_c |M_c| for a (C, H, W) map."""
    m = np.asarray(saliency_map, dtype=np.float64)
    return np.abs(m).sum(axis=0) if m.ndim == 3 else np.abs(m)


def signed_map(saliency_map) -> np.ndarray:
    """M as an (H, W) map: Σ_c M_c for a (C, H, W) map."""
    m = np.asarray(saliency_map, dtype=np.float64)
    return m.sum(axis=0) if m.ndim == 3 else m


def unit_range(values) -> np.ndarray:
    """Scaled to [0, 1] by min and max (a constant map becomes zeros)."""
    return render.normalise(values).astype(np.float64)


def compare(original, other) -> dict:
    """{"spearman_abs", "spearman", "ssim"} of two maps of one method (module docstring)."""
    a, b = magnitude(original), magnitude(other)
    return {"spearman_abs": spearman(a, b), "spearman": spearman(signed_map(original), signed_map(other)),
            "ssim": ssim(unit_range(a), unit_range(b), 1.0)}


# --- the checks --------------------------------------------------------------------------------

@dataclass
class Comparison:
    """One method's map on one randomised net, beside the trained net's."""
    unit: str
    spearman_abs: float
    spearman: float
    ssim: float
    saliency_map: np.ndarray = field(repr=False)

    def as_json(self) -> dict:
        def plain(v):
            return None if not np.isfinite(v) else round(float(v), 6)
        return {"layer": self.unit, "spearman_abs": plain(self.spearman_abs),
                "spearman": plain(self.spearman), "ssim": plain(self.ssim)}


@dataclass
class SanityResult:
    """What ``sanity_checks`` found: for each method, its trained map and one Comparison per unit
    of each mode, in the order the units were randomised (top first)."""
    target: int
    name: str
    score: float
    units: list
    seed: int
    original: dict = field(default_factory=dict)           # method → trained map
    results: dict = field(default_factory=dict)            # method → {mode: [Comparison]}

    def as_json(self) -> dict:
        return {"class": self.target, "name": self.name, "score": round(float(self.score), 6), "seed": self.seed,
                "units": [{"name": u.name, "layers": list(u.layers)} for u in self.units],
                "methods": {name: {mode: [c.as_json() for c in rows] for mode, rows in modes.items()}
                            for name, modes in self.results.items()}}


def sanity_checks(net, methods, data, target=None, *, units_to_randomise=None, modes=MODES, seed=0,
                  progress=None) -> SanityResult:
    """Cascading and independent randomisation checks of each method on one image.

    net:       the caffe_port.Net; its trained weights are back in it when this returns or raises
    methods:   {name: factory}, factory(net) → a method with ``attribute`` (built again on every
               randomised net: CAM reads its class weights when built)
    data:      one image as the net's input, (C, H, W) or (1, C, H, W)
    target:    the class (index or name; default: the trained net's top class, as the first
               method resolves it); every net is asked for the same class
    units_to_randomise: Units, top first (default: ``units(net)``)
    modes:     "cascading", "independent", or both
    progress:  called with (done, total) after each map, or None
    """
    data = as_batch(data)
    if data.shape[0] != 1:
        raise InputError(f"sanity checks explain one image, got {data.shape[0]}")
    if not methods:
        raise InputError("sanity checks need at least one method")
    for mode in modes:
        if mode not in MODES:
            raise InputError(f"unknown randomisation {mode!r}; choose from {', '.join(MODES)}")
    chosen = list(units_to_randomise) if units_to_randomise is not None else units(net)
    if not chosen:
        raise InputError("no units to randomise")
    top_down = layers_top_down(net)

    first = next(iter(methods.values()))(net)
    targets = first.targets(data, target, None)
    first.release()
    c, score = int(targets.classes[0, 0]), float(targets.scores[0, 0])
    result = SanityResult(c, first.class_name(c), score, chosen, int(seed))
    total = len(methods) * (1 + len(chosen) * len(modes))
    done = 0

    def maps_of_every_method():
        nonlocal done
        found = {}
        for name, factory in methods.items():
            found[name] = np.asarray(factory(net).attribute(data, target=c)[0], dtype=np.float32)
            done += 1
            if progress is not None:
                progress(done, total)
        return found

    result.original = maps_of_every_method()
    for name in methods:
        result.results[name] = {mode: [] for mode in modes}
    for mode in modes:
        for unit in chosen:
            if mode == "cascading":
                # every layer from the top down to this unit's lowest
                layers = top_down[:max(top_down.index(layer) for layer in unit.layers) + 1]
            else:
                layers = list(unit.layers)
            with randomised(net, layers, seed):
                maps = maps_of_every_method()
            for name, randomised_map in maps.items():
                scores = compare(result.original[name], randomised_map)
                result.results[name][mode].append(Comparison(unit.name, saliency_map=randomised_map, **scores))
    return result


# --- the figure ------------------------------------------------------------------------------------

FIGURE_TILE = 112


def figure(result, mode, displays, photo=None, tile=FIGURE_TILE) -> np.ndarray:
    """The paper's layout for one mode: a row per method, the trained net's map first, then one
    column per randomised unit, top first; each tile captioned with its unit and ρ of |M|.

    displays: {method: render.Display}; a smooth map (CAM, Grad-CAM) goes over ``photo`` (the
              network's view of the image, (H, W, 3) RGB) when given, a gradient map is grey
    """
    tiles, captions = [], []
    for name, trained in result.original.items():
        rows = result.results[name][mode]
        display = displays.get(name, render.GRADIENT)
        for k, (caption, saliency_map) in enumerate(
                [(f"{name}: trained", trained)] +
                [(f"{c.unit} {'r=--' if not np.isfinite(c.spearman_abs) else f'r={c.spearman_abs:.2f}'}",
                  c.saliency_map) for c in rows]):
            m = magnitude(saliency_map)
            if display.over_photo and photo is not None:
                picture = render.overlay(photo, m, percentile=display.percentile)
            else:
                picture = render.grey(m, display.percentile)
            tiles.append(render.fit_tile(picture, tile))
            captions.append(caption)
    columns = 1 + len(next(iter(result.results.values()))[mode])
    return render.grid(tiles, captions, columns=columns, font_scale=0.35)
