"""The backward walk: Caffe's Net::BackwardFromTo over an ONNX graph.

Layers run from ``start`` down to ``end`` in reverse topological order. As in Caffe, each layer
reads the diffs of its tops and writes the diffs of its bottoms; a blob read by several walked
layers receives the sum of their diffs (Caffe's automatic Split layers), and a blob that no
walked layer reads keeps the diff it was given — that is where a diff is injected
(``net.blobs['fc8'].diff[...] = onehot; net.backward(start='fc8')``). A layer none of whose tops
carries a diff is skipped: its bottom diffs would be zero.

Every diff carries a leading K axis: K stacked diffs share one forward pass.
"""
from __future__ import annotations

import numpy as np

from caffe_port.kernels import REGISTRY


def walk(graph, nodes, data, injected, shapes, rule="backprop", keep=(), observer=None, in_place=None):
    """Back-propagate through ``nodes`` (a topologically ordered slice of ``graph.nodes``).

    data:     blob name -> forward value (kept tensors and inputs); constants come from the graph
    injected: blob name -> (K, *shape) diff given by the user, used where no walked layer writes it
    shapes:   blob name -> shape (without K)
    keep:     blob names whose diffs to return (besides nothing else: the rest is freed as we go)
    observer: called as observer(node, top_diff, bottom_diff) after each layer (Caffe's debug_info)
    in_place: let kernels write bottom diffs over private top diffs (default: when no observer,
              which would read the top diffs after the layer, is given)
    Returns {blob name: (K, *shape) diff} for the names in ``keep`` that a diff reached.
    """
    in_place = observer is None if in_place is None else in_place
    written = {i for node in nodes for i in node.inputs if i}   # blobs some walked layer writes a diff to
    diffs = {name: d for name, d in injected.items() if name not in written}
    owned = set()                                              # accumulators we may add into in place
    keep = set(keep)
    for node in reversed(nodes):
        top_diff = [diffs.get(o) if o else None for o in node.outputs]
        if all(d is None for d in top_diff) or not graph.needs_backward(node):
            continue
        op = REGISTRY[node.op_type]
        bottom_data = [value_of(graph, data, i) for i in node.inputs]
        top_data = [value_of(graph, data, o) for o in node.outputs]
        attrs = graph.node_attrs(node)
        attrs.update(rule=rule, propagate_down=graph.propagate_down[node.name],
                     bottom_shapes=tuple(shapes.get(i) for i in node.inputs),
                     top_shapes=tuple(shapes.get(o) for o in node.outputs))
        # Caffe runs ReLU in place; a kernel here may too, writing its bottom diff over its top
        # diff, when nothing else can see that memory
        attrs["overwrite_top_diff"] = in_place and all(
            d is None or _private(name, d, diffs, injected, keep) for name, d in zip(node.outputs, top_diff))
        bottom_diff = op.backward(top_diff, bottom_data, top_data, attrs)
        if observer is not None:
            observer(node, top_diff, bottom_diff)
        for name in node.outputs:       # each top's diff has now been used by its only writer
            if name not in keep:
                diffs.pop(name, None)
        for name, d in zip(node.inputs, bottom_diff):
            if d is None or not name or name in graph.constants:
                continue
            if name not in diffs:
                diffs[name] = d
            elif name in owned:
                diffs[name] += d
            else:                           # never add into an array a kernel may share (a view)
                diffs[name] = diffs[name] + d
                owned.add(name)
    return {name: diffs[name] for name in keep if name in diffs}


def value_of(graph, data, name):
    if not name:
        return None
    if name in graph.constants:
        return graph.constants[name]
    return data.get(name)


def _private(name, diff, diffs, injected, keep):
    """Whether the walker alone holds ``diff``: not returned, not the caller's, no other live diff on it."""
    if name in keep or any(np.may_share_memory(diff, d) for d in injected.values()):
        return False
    return not any(other != name and np.may_share_memory(diff, d) for other, d in diffs.items())
