"""Gradient checking: a kernel's backward against float64 central finite differences.

The check, as Caffe's GradientChecker does it: draw a random top diff g, let the scalar loss be
L(x) = Σ g · f(x), and compare the kernel's bottom diff ∂L/∂x_i with
(L(x + h·e_i) − L(x − h·e_i)) / 2h at sampled points i. Points within reach of a kink (a ReLU
at 0, a max-pool tie) are skipped: there the second difference L(x+h) − 2L(x) + L(x−h) is of
order h instead of h², and the error it causes in the central difference is exactly that second
difference over 2h — so a point is skipped when that error would exceed a thousandth of the
gradient's scale.

The differences are taken top by top before they are summed, Σ g · (f(x+h·e_i) − f(x−h·e_i)):
outputs that e_i does not reach cancel exactly, so a layer with a million outputs is checked as
precisely as one with ten.

Tolerance: |analytic − numeric| ≤ tol · max(1, |analytic|, |numeric|), tol = 1e-6 by default
(float64, h = 1e-6: central differences are good to about 1e-8 here).

Two levels:

* ``check_op(op_type, bottom_data, attrs)``: one kernel on bottoms you give (the kernel tests).
* ``gradcheck(model)``: every layer of a network (or one), each on its real shapes — from a forward
  pass at the model's input size or a reduced one — with random float64 bottoms at the scale of
  the real blobs and the real weights as float64 constants. Under the deconvnet and guided rules
  the ReLU-family layers compute no gradient; they are checked against their formulas,
  max(g, 0) and max(g, 0) · f'(x), with f'(x) itself taken by central differences.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from caffe_port.errors import InputError
from caffe_port.kernels import REGISTRY, registry
from caffe_port.kernels.relu import RULES
from caffe_port.models.builders import BUILDERS
from caffe_port.net import Net
from caffe_port.onnx_import import load_model

KINK = 1e-3     # skip a point whose second difference over 2h exceeds KINK · its gradient's scale
FORMULAS = {"deconvnet": "max(g,0)", "guided": "max(g,0)·f'(x)"}


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

    def _compare(self, i, p, analytic, numeric, second):
        """One point: skip it as a kink, or count it and keep the worst error."""
        scale = max(1.0, abs(analytic), abs(numeric))
        if abs(second) > KINK * scale:
            self.kinks += 1
            return
        err = abs(analytic - numeric) / scale
        self.points += 1
        if err >= self.max_error:
            self.max_error = err
            self.worst = (i, int(p), analytic, numeric)


def layer_attrs(attrs, *, opset=17, n_outputs=1):
    """A layer's ``attrs`` in the kernel contract (kernels/registry.py): its ONNX attributes plus
    the node facts a graph supplies (``opset``, ``n_outputs``), defaulted where not given."""
    a = dict(attrs or {})
    a.setdefault("opset", opset)
    a.setdefault("n_outputs", n_outputs)
    return a


def walk_controls(bottom_data, top_data, propagate_down=None, rule="backprop"):
    """The controls the walker passes a backward (kernels/registry.py) for these bottoms and tops:
    by default every float bottom takes a diff."""
    if propagate_down is None:
        propagate_down = [b is not None and np.issubdtype(np.asarray(b).dtype, np.floating)
                          for b in bottom_data]
    return {"rule": rule, "propagate_down": tuple(bool(p) for p in propagate_down),
            "bottom_shapes": tuple(None if b is None else tuple(np.shape(b)) for b in bottom_data),
            "top_shapes": tuple(None if t is None else tuple(np.shape(t)) for t in top_data)}


def visible(op, bottom_data, top_data, propagate_down):
    """What the walker hands a backward: kept tensors and constants; None for the rest."""
    reads = set(op.bottoms_read(propagate_down))
    bottoms = [b if (i in reads or not propagate_down[i]) else None for i, b in enumerate(bottom_data)]
    tops = [t if j in op.tops else None for j, t in enumerate(top_data)]
    return bottoms, tops


def _as_float64(bottom_data):
    return [None if b is None else (np.array(b, dtype=np.float64)
                                    if np.issubdtype(np.asarray(b).dtype, np.floating)
                                    else np.asarray(b)) for b in bottom_data]


def _check_bottom_diff(name, bottom_diff, bottom_data, propagate_down, k):
    """The backward returned one (k, *shape) diff per input that takes one."""
    if not isinstance(bottom_diff, (list, tuple)) or len(bottom_diff) < len(bottom_data):
        raise AssertionError(f"{name}: the backward returned {type(bottom_diff).__name__} "
                             f"instead of a list of {len(bottom_data)} bottom diffs")
    for i, x in enumerate(bottom_data):
        if propagate_down[i] and (bottom_diff[i] is None or bottom_diff[i].shape != (k,) + x.shape):
            raise AssertionError(f"{name}: bottom_diff[{i}] has shape "
                                 f"{None if bottom_diff[i] is None else bottom_diff[i].shape}, "
                                 f"expected {(k,) + x.shape}")


def _finite_differences(fwd, bottom_data, attrs, top_diff, bottom_diff, points, h, result):
    """Compare ``bottom_diff`` with central differences of L_j = Σ g_j · f at ``points``.

    points: {input position: flat indices}. Each point costs two forward calls, whatever K is.
    """
    def tops():   # copies: a forward may hand back its input itself (Identity, one-operand Sum)
        return [np.array(t, dtype=np.float64) for t in fwd(bottom_data, attrs)]

    top0 = tops()
    for i, idx in points.items():
        flat = bottom_data[i].reshape(-1)
        analytic_all = bottom_diff[i].reshape(bottom_diff[i].shape[0], -1)
        for p in idx:
            saved = flat[p]
            flat[p] = saved + h
            plus = tops()
            flat[p] = saved - h
            minus = tops()
            flat[p] = saved
            for j in range(analytic_all.shape[0]):
                delta = sum(float(np.sum(g[j] * (tp - tm))) for g, tp, tm in zip(top_diff, plus, minus))
                curve = sum(float(np.sum(g[j] * ((tp - t0) + (tm - t0))))
                            for g, tp, tm, t0 in zip(top_diff, plus, minus, top0))
                result._compare(i, p, float(analytic_all[j, p]), delta / (2 * h), curve / (2 * h))


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
    bwd = backward or op.backward_kernel
    bottom_data = _as_float64(bottom_data)
    a = layer_attrs(attrs, n_outputs=n_outputs)
    top_data = fwd(bottom_data, a)
    controls = walk_controls(bottom_data, top_data, propagate_down)
    propagate_down = controls["propagate_down"]
    rng = np.random.default_rng(seed)
    top_diff = [rng.standard_normal((k,) + t.shape) for t in top_data]
    bottom_diff = registry.call(bwd, top_diff, *visible(op, bottom_data, top_data, propagate_down), a,
                                **controls)
    _check_bottom_diff(op_type, bottom_diff, bottom_data, propagate_down, k)

    points = {}
    for i, x in enumerate(bottom_data):
        if propagate_down[i]:
            points[i] = np.arange(x.size) if x.size <= max_points else \
                rng.choice(x.size, size=max_points, replace=False)
    result = CheckResult(op_type, tol=tol)
    _finite_differences(fwd, bottom_data, a, top_diff, bottom_diff, points, h, result)
    return result


# --- a whole network, layer by layer ---------------------------------------------------------------

@dataclass
class LayerCheck:
    """One layer's check in a ``GradcheckReport``."""
    layer: str
    op_type: str
    bottom_shape: tuple               # the first bottom that takes a diff
    top_shape: tuple
    method: str                       # "finite diff" or "formula max(g,0)" / "formula max(g,0)·f'(x)"
    result: CheckResult
    seconds: float = 0.0
    error: str = ""                   # the backward raised or returned the wrong shapes

    @property
    def ok(self) -> bool:
        return not self.error and self.result.ok

    @property
    def verdict(self) -> str:
        if self.error:
            return "FAIL: " + self.error
        if self.result.points == 0:
            return "FAIL: no point checked"
        return "ok" if self.result.ok else "FAIL"

    def as_dict(self) -> dict:
        r = self.result
        return {"layer": self.layer, "op": self.op_type, "bottom_shape": list(self.bottom_shape),
                "top_shape": list(self.top_shape), "method": self.method,
                "max_rel_error": r.max_error, "points": r.points, "kinks": r.kinks, "tol": r.tol,
                "worst": list(r.worst), "ok": self.ok, "error": self.error, "seconds": self.seconds}


@dataclass
class GradcheckReport:
    """Every checked layer, in forward order; ``str(report)`` is the table, ``ok`` the verdict."""
    model: str
    rule: str
    input_shapes: dict
    layers: list
    k: int
    h: float
    tol: float
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.layers) and all(c.ok for c in self.layers)

    @property
    def failures(self) -> list:
        return [c for c in self.layers if not c.ok]

    def as_dict(self) -> dict:
        return {"model": self.model, "rule": self.rule,
                "input_shapes": {k: list(v) for k, v in self.input_shapes.items()},
                "stacked_diffs": self.k, "h": self.h, "tol": self.tol, "ok": self.ok,
                "seconds": self.seconds, "layers": [c.as_dict() for c in self.layers]}

    def __str__(self):
        shapes = ", ".join(f"{name} {_dims(s)}" for name, s in self.input_shapes.items())
        head = (f"gradcheck {self.model}: rule {self.rule}, input {shapes}, {self.k} stacked top diffs, "
                f"h {self.h:g}, error |a−n|/max(1,|a|,|n|) ≤ {self.tol:g}")
        rows = [("layer", "op", "bottom → top", "check", "max rel err", "points", "kinks", "verdict")]
        for c in self.layers:
            rows.append((c.layer, c.op_type, f"{_dims(c.bottom_shape)} → {_dims(c.top_shape)}", c.method,
                         f"{c.result.max_error:.1e}", str(c.result.points), str(c.result.kinks), c.verdict))
        widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]) - 1)]
        lines = [head]
        for n, r in enumerate(rows):
            cells = [r[j].rjust(widths[j]) if j in (4, 5, 6) and n else r[j].ljust(widths[j])
                     for j in range(len(widths))]
            lines.append("  ".join(cells + [r[-1]]).rstrip())
        bad = self.failures
        lines.append(f"{len(self.layers)} layers checked, {len(self.layers) - len(bad)} ok, {len(bad)} failed"
                     + (f" ({', '.join(c.layer for c in bad[:5])}{', …' if len(bad) > 5 else ''})" if bad else "")
                     + f"; {self.seconds:.1f} s")
        return "\n".join(lines)


def _dims(shape):
    return "×".join(str(d) for d in shape) if shape else "scalar"


def gradcheck(net_or_model, *, layer=None, rule="backprop", points=16, seed=0, input_size=None,
              batch=2, k=2, h=1e-6, tol=1e-6, data=None, weights=None, backward_overrides=None,
              progress=None) -> GradcheckReport:
    """Check the backward of every layer of a network (or of ``layer``) on its real shapes.

    net_or_model: a ``Net``, an ``onnx.ModelProto``, a path or bytes (anything ``Net`` loads, with
        ``weights`` for a Caffe prototxt), "efficientnet-lite0", or a builder name from
        ``caffe_port.models.builders.BUILDERS`` ("vgg16", "caffenet", …).
    input_size: S or (H, W): run at this spatial size instead of the model's (builders are built
        for it; other models have their image input's H and W changed, which works for fully
        convolutional nets and those ending in a global pooling).
    data: an input batch (N, C, H, W) to take the blobs' shapes and scales from; default
        ``batch`` images of N(0, 1) noise. A Net given at its own size is run forward on that
        batch (its blobs change); otherwise a Net of its own is built (device "cpu", keep "all").
    points: finite-difference points per layer input: half drawn uniformly, half among the
        elements where the backward's diff is non-zero (a max pool's few winners, an open gate),
        so that neither what a wrong backward routes nor what it drops goes unseen. The table's
        points column counts comparisons: sampled elements × ``k``, over the layer's inputs.
    k: the number of stacked random top diffs (the K axis of the kernel contract).
    backward_overrides: {op type or layer name: backward function} replacing the registered
        kernel's backward, e.g. to see a wrong one caught.
    progress: called with each ``LayerCheck`` as it completes (the CLI prints the rows).

    Each layer is checked on its own: bottoms that take a diff are drawn as N(μ, σ²) float64 with
    μ, σ the real blob's mean and standard deviation (so ReLU6's upper gate and LRN's
    normalisation are exercised as in the real net), constants and integer side inputs are the
    real ones, and a random (k, *top) top diff is pushed through the kernel's backward.
    """
    if rule not in RULES:
        raise InputError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    if points < 1:
        raise InputError(f"points must be at least 1, got {points}")
    started = time.perf_counter()
    net, label = _net_for_check(net_or_model, input_size, weights)
    rng = np.random.default_rng(seed)
    feeds = _feeds(net, label, input_size, batch, data, rng)
    try:
        net.forward(**feeds)
    except Exception as e:
        if input_size is None:
            raise
        raise InputError(f"{label} cannot run at input size {input_size}: {_first_line(e)}") from None
    graph = net.graph
    overrides = _overrides(graph, backward_overrides)
    if layer is not None:
        node = graph.resolve_node(layer)
        if not graph.needs_backward(node):
            raise InputError(f"layer {node.name!r} ({node.op_type}) has no backward: "
                             "no diff from the image input reaches it")
        nodes = [node]
    else:
        nodes = [n for n in graph.nodes if graph.needs_backward(n) and graph.has_kernel(n)]
    report = GradcheckReport(label, rule, {name: tuple(v.shape) for name, v in feeds.items()}, [], k, h, tol)
    for node in nodes:
        backward = overrides.get(node.name) or overrides.get(node.op_type)
        check = check_layer(net, node, rule=rule, points=points, rng=rng, k=k, h=h, tol=tol,
                            backward=backward)
        report.layers.append(check)
        if progress is not None:
            progress(check)
    report.seconds = time.perf_counter() - started
    return report


def check_layer(net, node, *, rule="backprop", points=16, rng=None, k=2, h=1e-6, tol=1e-6,
                backward=None) -> LayerCheck:
    """Check one layer of a Net that has run forward: see ``gradcheck``."""
    started = time.perf_counter()
    rng = rng if rng is not None else np.random.default_rng(0)
    graph = net.graph
    op = REGISTRY[node.op_type]
    fwd, bwd = op.forward, backward or op.backward_kernel
    propagate_down = list(graph.propagate_down[node.name])
    bottom_data = _layer_bottoms(net, node, propagate_down, rng)
    a = graph.node_attrs(node)
    top_data = fwd(bottom_data, a)
    controls = walk_controls(bottom_data, top_data, propagate_down, rule)
    first = next(i for i, pd in enumerate(propagate_down) if pd)
    formula = rule != "backprop" and op.relu_family
    method = f"formula {FORMULAS[rule]}" if formula else "finite diff"
    check = LayerCheck(node.name, node.op_type, tuple(bottom_data[first].shape), tuple(top_data[0].shape),
                       method, CheckResult(node.op_type, tol=tol))
    top_diff = [rng.standard_normal((k,) + t.shape) for t in top_data]
    try:
        bottom_diff = registry.call(bwd, top_diff, *visible(op, bottom_data, top_data, propagate_down),
                                    a, **controls)
        _check_bottom_diff(node.name, bottom_diff, bottom_data, propagate_down, k)
    except Exception as e:
        check.error = f"{type(e).__name__}: {_first_line(e)}"
        check.seconds = time.perf_counter() - started
        return check
    if formula:
        _check_rule_formula(fwd, bottom_data, a, top_diff, bottom_diff, rule, h, check.result)
    else:
        chosen = {i: _sample(bottom_diff[i], points, rng) for i, pd in enumerate(propagate_down) if pd}
        _finite_differences(fwd, bottom_data, a, top_diff, bottom_diff, chosen, h, check.result)
    check.seconds = time.perf_counter() - started
    return check


def _layer_bottoms(net, node, propagate_down, rng):
    """Float64 bottoms for one layer: random at the real blob's scale where a diff flows,
    the real values (constants, integer side inputs) elsewhere."""
    graph = net.graph
    bottoms = []
    for i, name in enumerate(node.inputs):
        if not name:
            bottoms.append(None)
            continue
        real = graph.constants[name] if name in graph.constants else net.blobs[name].data
        real = np.asarray(real)
        if not propagate_down[i]:
            bottoms.append(real.astype(np.float64) if np.issubdtype(real.dtype, np.floating) else real)
            continue
        mean = float(np.mean(real, dtype=np.float64)) if real.size else 0.0
        std = float(np.std(real, dtype=np.float64)) if real.size else 0.0
        bottoms.append(mean + (std if std > 0 else 1.0) * rng.standard_normal(real.shape))
    return bottoms


def _sample(diff, points, rng):
    """Half of the points uniformly, half among the elements where some stacked diff is non-zero."""
    size = int(np.prod(diff.shape[1:]))
    if size <= points:
        return np.arange(size)
    nonzero = np.flatnonzero(np.any(diff.reshape(diff.shape[0], -1) != 0, axis=0))
    n_nonzero = min(points // 2, nonzero.size)
    picked = rng.choice(nonzero, size=n_nonzero, replace=False) if n_nonzero else np.empty(0, np.int64)
    rest = np.setdiff1d(np.arange(size), picked, assume_unique=True)
    uniform = rng.choice(rest, size=points - n_nonzero, replace=False)
    return np.concatenate([picked, uniform]).astype(np.int64)


def _check_rule_formula(fwd, bottom_data, attrs, top_diff, bottom_diff, rule, h, result):
    """Deconvnet and guided backprop: bottom_diff = max(g, 0) or max(g, 0) · f'(x), elementwise.

    The ReLU family is elementwise, so f'(x) at every element comes from one pair of forward calls
    with the whole of x shifted by ±h; elements within reach of a kink are skipped for guided
    (whose formula reads f'), never for deconvnet (whose formula does not)."""
    x = bottom_data[0]
    rest = bottom_data[1:]
    y0 = fwd([x] + rest, attrs)[0]
    yp = fwd([x + h] + rest, attrs)[0]
    ym = fwd([x - h] + rest, attrs)[0]
    slope = ((yp - ym) / (2 * h)).reshape(-1)
    curve = (((yp - y0) + (ym - y0)) / (2 * h)).reshape(-1)
    g = top_diff[0].reshape(top_diff[0].shape[0], -1)
    got = bottom_diff[0].reshape(g.shape)
    passed = np.maximum(g, 0)
    expected = passed if rule == "deconvnet" else passed * slope
    # the kink test of _compare, vectorised: |second difference| against the point's scale
    scale = np.maximum(1.0, np.maximum(np.abs(got), np.abs(expected)))
    kink = (np.abs(curve) > KINK * scale) if rule == "guided" else np.zeros(g.shape, bool)
    err = np.where(kink, 0.0, np.abs(got - expected) / scale)
    result.kinks = int(np.count_nonzero(kink))
    result.points = int(kink.size - result.kinks)
    if result.points:
        j, p = np.unravel_index(int(np.argmax(err)), err.shape)
        result.max_error = float(err[j, p])
        result.worst = (0, int(p), float(got[j, p]), float(expected[j, p]))


def _overrides(graph, backward_overrides):
    overrides = dict(backward_overrides or {})
    known = {n.op_type for n in graph.nodes} | set(graph.by_name)
    unknown = [key for key in overrides if key not in known]
    if unknown:
        raise InputError(f"backward_overrides names {unknown[0]!r}, which is neither a layer nor "
                         f"an op type of this net")
    return overrides


# --- getting a net at the size to check --------------------------------------------------------------

def _net_for_check(net_or_model, input_size, weights):
    """(Net, label) for ``net_or_model`` at ``input_size`` (None: as declared)."""
    if isinstance(net_or_model, Net):
        if input_size is None:
            return net_or_model, net_or_model.graph.model.graph.name or "net"
        model = _model_of(net_or_model)
        label = model.graph.name or "net"
    else:
        builder = _builder(net_or_model)
        if builder is not None:
            kwargs = {} if input_size is None else {"input_size": _square(input_size, net_or_model)}
            return Net(builder(**kwargs), device="cpu", keep="all"), net_or_model
        model = load_model(net_or_model, weights)
        label = net_or_model if isinstance(net_or_model, str) else (model.graph.name or "model")
    if input_size is not None:
        _resize_inputs(model, input_size)
    return Net(model, device="cpu", keep="all"), str(label)


def _builder(spec):
    if not isinstance(spec, str):
        return None
    return BUILDERS.get(spec)


def _square(input_size, name):
    h, w = _pair(input_size)
    if h != w:
        raise InputError(f"builder {name!r} makes square inputs; give one size, not {input_size!r}")
    return h


def _pair(input_size):
    if isinstance(input_size, (int, np.integer)):
        h = w = int(input_size)
    else:
        try:
            h, w = (int(s) for s in input_size)
        except (TypeError, ValueError):
            raise InputError(f"input_size must be S or (H, W), got {input_size!r}") from None
    if h < 1 or w < 1:
        raise InputError(f"input_size must be positive, got {input_size!r}")
    return h, w


def _model_of(net):
    """The full ModelProto of a Net (its graph keeps large weights outside the proto)."""
    model = onnx.ModelProto()
    model.CopyFrom(net.graph.model)
    del model.graph.initializer[:]
    model.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in net.graph.constants.items())
    return model


def _resize_inputs(model, input_size):
    """Set H and W of every 4-D input; drop inferred shapes that the old size fixed."""
    h, w = _pair(input_size)
    del model.graph.value_info[:]
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if len(dims) == 4:
            for d, value in zip(list(dims)[2:], (h, w)):
                d.Clear()
                d.dim_value = value
    for vi in model.graph.output:   # declared output shapes may name the old spatial size
        if vi.type.tensor_type.HasField("shape"):
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_value"):
                    d.Clear()


def _feeds(net, label, input_size, batch, data, rng):
    graph = net.graph
    feeds = {}
    for name in net.inputs:
        if not graph.is_float(name):
            raise InputError(f"{label}: input {name!r} is not a float tensor; gradcheck feeds noise")
        if data is not None and len(net.inputs) == 1:
            feeds[name] = np.asarray(data, dtype=np.float32)
            continue
        shape = list(graph.input_shape(name, batch=batch))
        if input_size is not None and len(shape) == 4:
            shape[2:] = _pair(input_size)
        if None in shape:
            raise InputError(f"{label}: input {name!r} has symbolic dimensions {tuple(shape)}; "
                             f"give input_size")
        feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _first_line(e):
    text = str(e).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)[:300]
