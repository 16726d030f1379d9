"""caffe_port.kernels: the reverse-mode layer library, one file per layer kind.

The kernel contract (shapes, the stacked ``K`` axis, ``attrs`` and the walk's keyword controls
``rule``, ``propagate_down``, ``bottom_shapes``, ``top_shapes``, ``in_place``, ``out``) is
written once, in ``registry.py``'s docstring; ``sigmoid.py`` is the whole contract in a few lines.
"""
from .registry import CONTROLS, REGISTRY, Op, lookup

__all__ = ["CONTROLS", "REGISTRY", "Op", "lookup"]
