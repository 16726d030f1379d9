"""The backward walk: Caffe's Net::BackwardFromTo over an ONNX graph, one loop for every device.

Layers run from ``start`` down to ``end`` in reverse topological order. As in Caffe, each layer
reads the diffs of its tops and writes the diffs of its bottoms; a blob read by several walked
layers receives the sum of their diffs (Caffe's automatic Split layers), and a blob that no
walked layer reads keeps the diff it was given — that is where a diff is injected
(``net.blobs['fc8'].diff[...] = onehot; net.backward(start='fc8')``). A layer none of whose tops
carries a diff is skipped: its bottom diffs would be zero.

Every diff carries a leading K axis: K stacked diffs share one forward pass.

Where the arrays live, which kernel runs for an op and how two diffs add is the backend's
business (caffe_port/backend.py: host numpy arrays, or CUDA device arrays), as Caffe's
``Backward_cpu`` / ``Backward_gpu`` share one ``Net::Backward``; so is where a layer writes its
bottom diffs (the host backend lays the walk's diffs out in one buffer before it runs,
caffe_port/diff_pool.py, and hands each kernel its ``out`` memory).
"""
from __future__ import annotations

from caffe_port.kernels import REGISTRY


def walk(graph, nodes, backend, data, injected, shapes, rule="backprop", keep=(), observer=None,
         in_place=None):
    """Back-propagate through ``nodes`` (a topologically ordered slice of ``graph.nodes``).

    backend:  where arrays live and which kernels run (``caffe_port.backend``)
    data:     blob name -> host value the Net holds (inputs, outputs, blobs handed to the user:
              these win over the backend's copies, since the user may have written into them)
    injected: blob name -> (K, *shape) host diff given by the user, used where no walked layer writes it
    shapes:   blob name -> shape (without K)
    keep:     blob names whose diffs to return (the rest are freed as soon as they are used)
    observer: called as observer(node, top_diff, bottom_diff) with host arrays after each layer
              (Caffe's debug_info)
    in_place: let kernels that declare ``in_place`` write bottom diffs over private top diffs
              (default: when no observer, which reads the top diffs after the layer, is given)
    Returns {blob name: (K, *shape) host diff} for the names in ``keep`` that a diff reached.
    """
    in_place = observer is None if in_place is None else in_place
    values = backend.values(data)
    written = {i for node in nodes for i in node.inputs if i}   # blobs some walked layer writes a diff to
    diffs = {name: backend.upload(d) for name, d in injected.items() if name not in written}
    given = tuple(diffs.values())        # the caller's memory (the CPU backend does not copy it)
    owned = set()                        # accumulators this walk allocated: safe to add into
    keep = set(keep)
    # where each layer writes its bottom diffs: the backend's pool, laid out for this walk
    memory = backend.diff_memory(graph, nodes, injected, shapes, keep, in_place)
    for node in reversed(nodes):
        top_diff = [diffs.get(o) if o else None for o in node.outputs]
        if all(d is None for d in top_diff) or not graph.needs_backward(node):
            continue
        if not graph.has_kernel(node):       # off the score's path, so not refused at load
            raise graph.unsupported([node])
        op = REGISTRY[node.op_type]
        propagate_down = graph.propagate_down[node.name]
        reads = set(op.bottoms_read(propagate_down))
        bottom_data = [values.get(i) if k in reads or not graph.is_float(i) or i in graph.constants
                       else None for k, i in enumerate(node.inputs)]
        top_data = [values.get(o) if j in op.tops else None for j, o in enumerate(node.outputs)]
        controls = dict(rule=rule, propagate_down=propagate_down,
                        bottom_shapes=tuple(shapes.get(i) for i in node.inputs),
                        top_shapes=tuple(shapes.get(o) for o in node.outputs))
        out = memory.get(node.name)
        if out is not None and out[0] is not None and top_diff[0] is not None and \
                backend.shares_memory(out[0], top_diff[0]):
            # laid over its top diff by the plan (a convolution's input diff): only if no one
            # else holds that diff now, else into memory of the kernel's own
            over = _private(backend, node.outputs[0], top_diff[0], diffs, given, keep)
            controls["out_overlaps_top"] = over
            out = out if over else [None] + list(out[1:])
        if out is not None:
            controls["out"] = tuple(out)
        if "in_place" in op.controls:
            # Caffe runs ReLU in place; a kernel here may too, writing its bottom diff over its top
            # diff, when nothing else can see that memory (and the walk gave it none of its own)
            controls["in_place"] = in_place and out is None and all(
                d is None or _private(backend, name, d, diffs, given, keep)
                for name, d in zip(node.outputs, top_diff))
        bottom_diff = backend.backward(node.op_type, top_diff, bottom_data, top_data,
                                       graph.node_attrs(node), controls)
        if observer is not None:
            observer(node, [backend.to_host(d) for d in top_diff], [backend.to_host(d) for d in bottom_diff])
        for name in node.outputs:       # each top's diff has now been used by its only writer
            if name not in keep:
                diffs.pop(name, None)
        for k, (name, d) in enumerate(zip(node.inputs, bottom_diff)):
            if d is None or not name or name in graph.constants:
                continue
            if name not in diffs:
                diffs[name] = d
                if out is not None and _is(d, out[k]):   # the walk's own memory: safe to add into
                    owned.add(name)
            elif name in owned:
                backend.accumulate(diffs[name], d)
            else:                           # never add into memory a kernel may share (a view)
                diffs[name] = backend.add(diffs[name], d)
                owned.add(name)
    return {name: backend.to_host(diffs[name]) for name in keep if name in diffs}


def _is(diff, memory):
    """Whether ``diff`` is the array ``memory`` (the same bytes, the same shape)."""
    return memory is not None and diff.shape == memory.shape and \
        diff.__array_interface__["data"][0] == memory.__array_interface__["data"][0]


def _private(backend, name, diff, diffs, given, keep):
    """Whether the walk alone holds ``diff``: not returned, not the caller's, no other live diff on it."""
    if name in keep or any(backend.shares_memory(diff, d) for d in given):
        return False
    return not any(other != name and backend.shares_memory(diff, d) for other, d in diffs.items())
