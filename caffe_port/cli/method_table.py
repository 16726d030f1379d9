"""The methods ``caffe-port`` knows by name, one line each: the class, how its maps are shown,
whether the grid shows it, and which command-line options its constructor takes.

A new method is one file in caffe_port/methods and one line here: ``saliency --method`` offers
every name, ``grid`` shows the ``grid=True`` lines in the table's order. A localisation recipe
(caffe_port.methods.recipes) names its map by class; ``recipe_method`` finds its line.
"""
from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass

from caffe_port import methods, render


@dataclass(frozen=True)
class MethodEntry:
    """How to build one method from the loaded net and the parsed options.

    method:  the class, built as method(net, score_blob=..., labels=..., **options)
    display: render.GRADIENT or render.SMOOTH: the pictures' saturation, and grey or over the
             photograph in the grid
    grid:    shown by ``caffe-port grid`` (and ``demo``)
    options: the command-line options passed on, named as the constructor's keywords
    wraps:   for a Wrapper, the class it wraps (built on the net instead)
    """
    method: type
    display: render.Display
    grid: bool = False
    options: tuple = ()
    wraps: type | None = None

    def build(self, net, args, **common):
        """The method on ``net``; ``args`` holds the options, ``common`` score_blob and labels."""
        options = {name: getattr(args, name) for name in self.options}
        if self.wraps is not None:
            return self.method(self.wraps(net, **common), **options)
        return self.method(net, **common, **options)


METHODS = {
    "saliency": MethodEntry(methods.Saliency, render.GRADIENT, grid=True),
    "deconvnet": MethodEntry(methods.Deconvnet, render.GRADIENT, grid=True),
    "guided": MethodEntry(methods.GuidedBackprop, render.GRADIENT, grid=True),
    "gradcam": MethodEntry(methods.GradCAM, render.SMOOTH, grid=True, options=("layer",)),
    "guided-gradcam": MethodEntry(methods.GuidedGradCAM, render.GRADIENT, grid=True, options=("layer",)),
    "cam": MethodEntry(methods.CAM, render.SMOOTH, grid=True),
    "smoothgrad": MethodEntry(methods.SmoothGrad, render.GRADIENT, options=("samples", "noise", "seed"),
                              wraps=methods.Saliency),
    "ig": MethodEntry(methods.IntegratedGradients, render.GRADIENT, options=("steps",),
                      wraps=methods.Saliency),
}
GRID = tuple(name for name, entry in METHODS.items() if entry.grid)


def build_method(name, loaded, args):
    """The method ``name`` on the loaded net (a ``Loaded``), with the options in ``args``."""
    return METHODS[name].build(loaded.net, args, **loaded.method_kwargs())


def method_factory(name, args, **common):
    """factory(net) → the method ``name`` on that net, with the options in ``args`` and
    ``common`` (score_blob, labels, layout): for commands that build a method on several nets
    (sanity) or once for a whole set (metrics)."""
    return functools.partial(METHODS[name].build, args=args, **common)


def method_names(text):
    """A --method comma list → the names, each a method of the table, none twice."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown method {unknown[0] if unknown else text!r}; choose "
                                         f"from {', '.join(METHODS)} (a comma list)")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"--method names a method twice: {text}")
    return names


def recipe_method(recipe) -> str:
    """The name in ``METHODS`` of a localisation recipe's map (caffe_port.methods.recipes)."""
    return next(name for name, entry in METHODS.items()
                if entry.method is recipe.method and entry.wraps is recipe.wraps)
