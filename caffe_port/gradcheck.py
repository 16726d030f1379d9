"""Gradient checking: a kernel's backward against float64 central finite differences.

The check, as Caffe's GradientChecker does it: draw a random top diff g, let the scalar loss be
L(x) = Σ g · f(x), and compare the kernel's bottom diff ∂L/∂x_i with
(L(x + h·e_i) − L(x − h·e_i)) / 2h at sampled points i. Points within reach of a kink (a ReLU
at 0, a max-pool tie) are skipped: there the second difference L(x+h) − 2L(x) + L(x−h) is of
order h instead of h², and the error it causes in the central difference is exactly that second
difference over 2h — so a point is skipped when that error would exceed a thousandth of the
gradient's scale.

Tolerance: |analytic − numeric| ≤ tol · max(1, |analytic|, |numeric|), tol = 1e-6 by default
(float64, h = 1e-6: central differences are good to about 1e-8 here).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from caffe_port.kernels import REGISTRY


@dataclass
class CheckResult:
    op_type: str
    max_error: float = 0.0            # max over checked points of |a − n| / max(1, |a|, |n|)
    points: int = 0                   # points compared
    kinks: int = 0                    # points skipped as kinks
    worst: tuple = field(default_factory=tuple)   # (input, flat index, analytic, numeric)
    tol: float = 1e-6

    @property
    def ok(self) -> bool:
        return self.points > 0 and self.max_error <= self.tol

    def __str__(self):
        return (f"{self.op_type}: max rel error {self.max_error:.2e} over {self.points} points "
                f"({self.kinks} kinks skipped) -> {'ok' if self.ok else 'FAIL'}")


def full_attrs(attrs, bottom_data, top_data, propagate_down=None, rule="backprop", opset=17):
    """Complete a node's attrs with what the walker adds at run time (see kernels/__init__.py)."""
    a = dict(attrs)
    a.setdefault("opset", opset)
    a["rule"] = rule
    if propagate_down is None:
        propagate_down = [b is not None and np.issubdtype(np.asarray(b).dtype, np.floating)
                          for b in bottom_data]
    a["propagate_down"] = list(propagate_down)
    a["bottom_shapes"] = tuple(None if b is None else tuple(np.shape(b)) for b in bottom_data)
    a["top_shapes"] = tuple(None if t is None else tuple(np.shape(t)) for t in top_data)
    return a


def visible(op, bottom_data, top_data, propagate_down):
    """What the walker hands a backward: kept tensors and constants; None for the rest."""
    reads = set(op.bottoms_read(propagate_down))
    bottoms = [b if (i in reads or not propagate_down[i]) else None for i, b in enumerate(bottom_data)]
    tops = [t if j in op.tops else None for j, t in enumerate(top_data)]
    return bottoms, tops


def check_op(op_type, bottom_data, attrs=None, *, propagate_down=None, max_points=200, h=1e-6,
             tol=1e-6, seed=0, backward=None, forward=None, k=1, n_outputs=1) -> CheckResult:
    """Check one op's backward on the given (float64) bottoms. ``k`` stacks k random top diffs.

    The backward sees what it would see in a real pass: the inputs and outputs the registry says
    it reads, the inputs that take no diff (constants), and None for everything else.
    ``backward``/``forward`` override the registered kernel (to check a replacement, or to show
    that a wrong one is caught); ``n_outputs`` tells the first forward call how many tops there are.
    """
    op = REGISTRY[op_type]
    fwd = forward or op.forward
    bwd = backward or op.backward
    bottom_data = [None if b is None else (np.array(b, dtype=np.float64)
                                           if np.issubdtype(np.asarray(b).dtype, np.floating)
                                           else np.asarray(b)) for b in bottom_data]
    attrs = dict(attrs or {})
    top_data = fwd(bottom_data, full_attrs(attrs, bottom_data, [None] * n_outputs, propagate_down))
    a = full_attrs(attrs, bottom_data, top_data, propagate_down)
    rng = np.random.default_rng(seed)
    top_diff = [rng.standard_normal((k,) + t.shape) for t in top_data]
    bottom_diff = bwd(top_diff, *visible(op, bottom_data, top_data, a["propagate_down"]), a)

    def loss(bottoms, j):
        return sum(float(np.sum(g[j] * t)) for g, t in zip(top_diff, fwd(bottoms, a)))

    result = CheckResult(op_type, tol=tol)
    for i, x in enumerate(bottom_data):
        if not a["propagate_down"][i]:
            continue
        if bottom_diff[i] is None or bottom_diff[i].shape != (k,) + x.shape:
            raise AssertionError(f"{op_type}: bottom_diff[{i}] has shape "
                                 f"{None if bottom_diff[i] is None else bottom_diff[i].shape}, "
                                 f"expected {(k,) + x.shape}")
        flat = x.reshape(-1)
        idx = np.arange(flat.size) if flat.size <= max_points else \
            rng.choice(flat.size, size=max_points, replace=False)
        for j in range(k):
            l0 = loss(bottom_data, j)
            for p in idx:
                saved = flat[p]
                flat[p] = saved + h
                lp = loss(bottom_data, j)
                flat[p] = saved - h
                lm = loss(bottom_data, j)
                flat[p] = saved
                numeric = (lp - lm) / (2 * h)
                analytic = float(bottom_diff[i][j].reshape(-1)[p])
                scale = max(1.0, abs(analytic), abs(numeric))
                if abs(lp - 2 * l0 + lm) / (2 * h) > 1e-3 * scale:
                    result.kinks += 1
                    continue
                err = abs(analytic - numeric) / scale
                result.points += 1
                if err >= result.max_error:
                    result.max_error = err
                    result.worst = (i, int(p), analytic, numeric)
    return result
