"""The diff-flow trace: how a class score's diff travels down to the image under each rule.

One image, one class c. A one-hot diff at the score blob (S_c, the pre-softmax scores) is walked
back to the image three times, with the three rules of the ReLU family:

    backprop   bottom_diff = top_diff · f'(x)            the gradient ∂S_c/∂I (Simonyan §3)
    deconvnet  bottom_diff = max(top_diff, 0)           Zeiler & Fergus's reconstruction
    guided     bottom_diff = max(top_diff, 0) · f'(x)   Springenberg et al.

Every other layer is the same linear map under all three (Simonyan et al. §4), so the three
traces part only at the ReLUs. The numbers come from ``net.trace`` (``Net(debug_info=True)``):
per layer in backward order, the mean |diff| it writes to each bottom and, for the ReLU family,
the pass fraction (non-zero bottom diffs / non-zero top diffs: the part of the arriving signal
that the gate lets through); per blob, the mean |diff| of its final (summed) diff.

    result = trace_rules(net, image, class_index=281)   # a dict; maps and the image are arrays
    trace_json(result)                                 # the numbers, JSON-able
    plot_trace(result, "trace.png")                    # the figure (matplotlib, Agg)
    trace_picture(result)                              # the same as an (H, W, 3) uint8 array

Input-gradient maps are M = max over channels of |diff at the image| (N = 1: (H, W)), divided
by their maximum so that each lies in [0, 1].
"""
from __future__ import annotations

import math
import os

import numpy as np

from caffe_port import imagenet
from caffe_port.errors import InputError
from caffe_port.kernels.relu import RULES

COLOURS = {"backprop": "#1f77b4", "deconvnet": "#d62728", "guided": "#2ca02c"}


def score_blob_of(net, score_blob=None) -> str:
    """The class scores: ``score_blob``, else the input of the Softmax producing an output of the
    net, else the net's first output."""
    graph = net.graph
    if score_blob is not None:
        net.blobs[score_blob]                   # BlobError, with suggestions, if unknown
        return score_blob
    return graph.score_blob()


def image_blob_of(net, input_blob=None) -> str:
    if input_blob is not None:
        if input_blob not in net.inputs:
            raise InputError(f"{input_blob!r} is not an input of this net (inputs: {', '.join(net.inputs)})")
        return input_blob
    images = [name for name in net.inputs if len(net.graph.input_shape(name)) == 4]
    if len(images) != 1:
        raise InputError(f"cannot tell which input is the image (inputs: {', '.join(net.inputs)}); "
                         "pass input_blob=")
    return images[0]


def trace_rules(net, image, class_index=None, score_blob=None, *, input_blob=None,
                rules=tuple(RULES)) -> dict:
    """Trace the diff of ``class_index``'s score from ``score_blob`` to the image, once per rule.

    net: a ``Net`` (its ``debug_info`` is switched on for the call, then restored)
    image: (C, H, W) or (1, C, H, W), already pre-processed for the net
    class_index: an int, an ImageNet class name (for 1000-class nets), or None for the top class
    Returns a dict: "model", "score_blob", "input_blob", "class", "score", "rules",
    "score_diff_mean_abs" (the one-hot's mean |diff|), "layers" (backward order, one row per
    (layer, bottom blob): "layer", "type", "blob", "mean_abs" {rule: value} and, for the ReLU
    family, "pass_fraction" {rule: value}), "blobs" {rule: {blob: mean |diff|}} in backward order,
    "map_max" {rule: max |diff| at the image}; and two arrays: "maps" {rule: (H, W) in [0, 1]}
    and "image" (C, H, W).
    """
    rules = tuple(rules)
    bad = [r for r in rules if r not in RULES]
    if bad or not rules:
        raise InputError(f"unknown rule {bad[0]!r}; choose among {', '.join(RULES)}" if bad
                         else "rules is empty")
    input_blob = image_blob_of(net, input_blob)
    score_blob = score_blob_of(net, score_blob)
    batch = _one_image(image, input_blob)
    graph = net.graph
    start = graph.producer[score_blob].name if score_blob in graph.producer else None
    if start is None or score_blob not in graph.differentiable:
        raise InputError(f"score blob {score_blob!r} does not depend on input {input_blob!r}")

    was_debug = net.debug_info
    net.debug_info = True                  # fills net.trace; prints only if logging is set up
    try:
        net.forward(**{input_blob: batch})
        scores = np.asarray(net.blobs[score_blob].data).reshape(-1)
        c = _class_index(class_index, scores)
        onehot = np.zeros(net.blobs[score_blob].shape, np.float32)
        onehot.reshape(-1)[c] = 1
        # every blob's diff is kept, whatever the Net's keep mode, to read its statistics
        walked = graph.nodes[:graph.producer[score_blob].index + 1]
        bottoms = {i for node in walked for i in node.inputs if i in graph.differentiable}
        reached = [b for b in net.blobs if b in bottoms]
        per_rule = {}
        for rule in rules:
            net.backward(start=start, rule=rule, diffs=reached, **{score_blob: onehot})
            records = [r for r in net.trace if r["phase"] == "backward"]
            blobs = {}
            for b in reversed(reached):
                d = net.blobs[b].diff
                if d.size:
                    blobs[b] = float(np.mean(np.abs(d)))
            grad = np.asarray(net.blobs[input_blob].diff, dtype=np.float64)[0]
            per_rule[rule] = (records, blobs, np.abs(grad).max(axis=0))
    finally:
        net.debug_info = was_debug

    layers = []
    for n, record in enumerate(per_rule[rules[0]][0]):
        row = {"layer": record["layer"], "type": record["type"], "blob": record["blob"],
               "mean_abs": {}}
        for rule in rules:
            other = per_rule[rule][0][n]       # same walk, same order: only the ReLU rule differs
            assert (other["layer"], other["blob"]) == (row["layer"], row["blob"])
            row["mean_abs"][rule] = other["mean_abs"]
            if "pass_fraction" in other:
                row.setdefault("pass_fraction", {})[rule] = other["pass_fraction"]
        layers.append(row)
    maps, map_max = {}, {}
    for rule in rules:
        m = per_rule[rule][2]
        map_max[rule] = float(m.max())
        maps[rule] = (m / m.max() if m.max() > 0 else m).astype(np.float32)
    return {"model": graph.model.graph.name or "net", "score_blob": score_blob, "input_blob": input_blob,
            "class": int(c), "score": float(scores[c]), "rules": list(rules),
            "score_diff_mean_abs": 1.0 / onehot.size, "layers": layers,
            "blobs": {rule: per_rule[rule][1] for rule in rules}, "map_max": map_max,
            "maps": maps, "image": batch[0]}


def trace_json(result) -> dict:
    """The numbers of a ``trace_rules`` result without its arrays (maps, image): JSON-able."""
    numbers = {k: v for k, v in result.items() if k not in ("maps", "image")}
    numbers["map_shape"] = list(next(iter(result["maps"].values())).shape)
    return numbers


def format_trace(result) -> str:
    """The trace as text, Caffe's debug_info per rule side by side: one line per (layer, bottom)
    in backward order with each rule's mean |diff| and, at the ReLU family, its pass fraction."""
    rules = result["rules"]
    head = (f"{result['model']}: class {result['class']} (score {result['score']:.4g}), one-hot at "
            f"'{result['score_blob']}' (mean |diff| {result['score_diff_mean_abs']:.3g}) down to "
            f"'{result['input_blob']}'")
    rows = [["layer", "type", "bottom blob"] + [f"{r} |diff|" for r in rules] + [f"{r} pass" for r in rules]]
    for row in result["layers"]:
        fractions = row.get("pass_fraction")
        rows.append([row["layer"], row["type"], row["blob"]]
                    + [f"{row['mean_abs'][r]:.3e}" for r in rules]
                    + [f"{fractions[r]:.2f}" if fractions else "" for r in rules])
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = [head] + ["  ".join(cell.rjust(w) if j >= 3 else cell.ljust(w)
                                for j, (cell, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    lines.append("input map max |diff|: " + ", ".join(f"{r} {result['map_max'][r]:.3e}" for r in rules))
    return "\n".join(lines)


def _one_image(image, input_blob):
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != 1:
        raise InputError(f"the trace takes one image for {input_blob!r}: (C, H, W) or (1, C, H, W), "
                         f"got shape {image.shape}")
    return image


def _class_index(class_index, scores):
    n = scores.size
    if class_index is None:
        return int(np.argmax(scores))
    if isinstance(class_index, str) and not class_index.strip().isdigit():
        if n != 1000:
            raise InputError(f"class {class_index!r} given by name, but the net has {n} classes, "
                             "not ImageNet's 1000; give an index")
        return imagenet.class_index(class_index)
    try:
        c = int(class_index)
    except (TypeError, ValueError):
        raise InputError(f"a class must be an index or a name, got {class_index!r}") from None
    if not 0 <= c < n:
        raise InputError(f"class index {c} is out of range: the score blob has {n} classes (0…{n - 1})")
    return c


# --- the figure ------------------------------------------------------------------------------------

def plot_trace(result, path, *, title=None, bgr=False, dpi=110, percentile=99.5):
    """Write the trace figure as a PNG at ``path``; returns the path.

    Left, top: mean |diff| written by each layer (backward order, log scale), one line per rule,
    starting from the one-hot at the score blob. Left, bottom: the pass fraction of each
    ReLU-family layer under each rule. Right: the image (min–max scaled; ``bgr`` for Caffe's
    channel order) and the three normalised input-gradient maps, each shown white from its
    ``percentile``-th percentile up (a few extreme pixels would otherwise leave the rest black;
    100 shows the maps as they are).
    """
    fig = _figure(result, title, bgr, percentile)
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def trace_picture(result, *, title=None, bgr=False, dpi=110, percentile=99.5) -> np.ndarray:
    """The trace figure as an (H, W, 3) uint8 RGB array (for ``caffe_port.render.write_png``)."""
    fig = _figure(result, title, bgr, percentile)
    fig.set_dpi(dpi)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _figure(result, title, bgr, percentile):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("matplotlib is needed for the trace figure; pip install 'caffe_port[plot]'") from None

    rules = result["rules"]
    layers = result["layers"]
    labels = [f"one-hot at {result['score_blob']}"] + [
        row["layer"] if row["blob"] == _only_blob(layers, row["layer"]) else f"{row['layer']}→{row['blob']}"
        for row in layers]
    x = np.arange(len(labels))

    fig = Figure(figsize=(15, 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    outer = fig.add_gridspec(1, 2, width_ratios=[2, 1])
    left = outer[0].subgridspec(2, 1, height_ratios=[2.2, 1])
    right = outer[1].subgridspec(2, 2)
    flow = fig.add_subplot(left[0])
    gates = fig.add_subplot(left[1], sharex=flow)
    for rule in rules:
        values = np.array([result["score_diff_mean_abs"]] + [row["mean_abs"][rule] for row in layers])
        values = np.where(values > 0, values, np.nan)        # a zero diff has no place on a log axis
        flow.plot(x, values, marker="o", markersize=3, linewidth=1.4, color=COLOURS[rule], label=rule)
    flow.set_yscale("log")
    flow.set_ylabel("mean |diff| of the bottom blob")
    flow.set_title("diff flow from the class score (left) down to the image (right)", fontsize=10)
    flow.grid(True, which="major", alpha=0.3)
    flow.legend(loc="best", fontsize=9)

    relu_rows = [(n + 1, row) for n, row in enumerate(layers) if "pass_fraction" in row]
    width = 0.8 / max(1, len(rules))
    for k, rule in enumerate(rules):
        xs = [pos - 0.4 + width * (k + 0.5) for pos, _ in relu_rows]
        gates.bar(xs, [row["pass_fraction"][rule] for _, row in relu_rows], width=width,
                  color=COLOURS[rule], label=rule)
    gates.set_ylim(0, 1.05)
    gates.set_ylabel("ReLU pass fraction")
    gates.grid(True, axis="y", alpha=0.3)
    step = max(1, math.ceil(len(labels) / 45))
    shown = x[::step]
    gates.set_xticks(shown)
    gates.set_xticklabels([labels[i] for i in shown], rotation=90, fontsize=7 if len(labels) <= 45 else 6)
    for tick in flow.get_xticklabels():
        tick.set_visible(False)
    gates.set_xlim(-0.6, len(labels) - 0.4)
    gates.set_xlabel("layer, in backward order (each point: the diff it writes to its bottom blob)", fontsize=9)

    panels = [("image", None)] + [(rule, result["maps"][rule]) for rule in rules]
    names = {"backprop": "backprop (saliency)", "deconvnet": "deconvnet", "guided": "guided backprop"}
    for k, (name, heat) in enumerate(panels[:4]):
        ax = fig.add_subplot(right[k // 2, k % 2])
        if heat is None:
            ax.imshow(_displayable(result["image"], bgr))
            ax.set_title(f"input (min–max scaled)\nclass {result['class']}", fontsize=9)
        else:
            top = float(np.percentile(heat, percentile)) if percentile < 100 else 1.0
            ax.imshow(heat, cmap="gray", vmin=0, vmax=top if top > 0 else 1.0)
            shown = f", white ≥ p{percentile:g}" if percentile < 100 else ""
            ax.set_title(f"{names[name]}\nmax |diff| {result['map_max'][name]:.2e}{shown}", fontsize=9,
                         color=COLOURS[name])
        ax.set_axis_off()
    fig.suptitle(title or f"{result['model']}: back-propagating class {result['class']} "
                          f"(score {result['score']:.3g}) from '{result['score_blob']}' under "
                          f"{', '.join(rules)}", fontsize=11)
    return fig


def _only_blob(layers, layer):
    """The bottom blob of a layer that writes one diff (else None: label each row with its blob)."""
    blobs = [row["blob"] for row in layers if row["layer"] == layer]
    return blobs[0] if len(blobs) == 1 else None


def _displayable(image, bgr):
    """(C, H, W) network input → (H, W, 3) or (H, W) in [0, 1], min–max scaled."""
    image = np.asarray(image, dtype=np.float64)
    if image.shape[0] == 3:
        image = image[::-1] if bgr else image
        image = image.transpose(1, 2, 0)
    else:
        image = image[0]
    lo, hi = image.min(), image.max()
    return (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
