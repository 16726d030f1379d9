"""pycaffe's ``caffe.Net`` over caffe_port's engine, in Caffe's names and with Caffe's buffers.

The engine (``caffe_port.net.Net``) works on ONNX tensors; this shell shows the Caffe net the
importer describes in the model's ``caffe_port.caffe`` metadata (``models/caffe_net``):
Caffe layers (each one or more ONNX nodes, or none for Input), Caffe blobs (each a chain of
tensor versions when in-place layers rewrite it: ``conv1@conv1`` → ``conv1``) and Caffe's param
blobs (initializers ``<layer>#<i>`` in Caffe's shapes). A plain ONNX file is shown as one layer
per node and one blob per tensor.

A Caffe blob is one buffer that in-place layers share, and the shell keeps that behaviour:

* ``blob.data`` is one array for the blob's life (until a reshape): the engine's memory of the
  blob's last version (``conv1``, the ReLU output after a full forward). A forward that stops
  inside an in-place chain leaves the version it wrote there (after ``forward(end='conv1')`` the
  convolution's), and a forward that starts inside one reads it from there, as Caffe's layers
  read and write the one buffer;
* ``blob.diff`` is a persistent array. Before ``backward(start=L)`` it is read as the top diff of
  the highest walked layer that writes the blob (unless a walked layer writes the blob's diff
  itself, which overwrites it, as in Caffe); after it holds the diff of the lowest version a
  walked layer wrote — for an in-place chain, the diff of the first version.
"""
from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnx

from caffe_port.blob import Blob, ParamBlob, fit_array, suggest
from caffe_port.errors import BlobError, InputError, ModelError, ShapeError
from caffe_port.models import caffe_io
from caffe_port.models.caffe_fillers import fill, is_constant
from caffe_port.models.caffe_layers import LAYER_CONVERTERS
from caffe_port.models.caffe_net import caffe_to_onnx, net_parameter
from caffe_port.net import Net as Engine
from caffe_port.onnx_import import load_model
from caffe_port.pycaffe.mode import engine_device, random_generator, warn_once

METADATA_KEY = "caffe_port.caffe"


# --- Caffe structure (from the importer's metadata, or one layer per ONNX node) ------------------

class _Layer:
    """A Caffe layer as pycaffe shows it (``net.layers[i]``): ``type`` and its param ``blobs``."""

    def __init__(self, name, type_, bottoms, tops, nodes, params, derived):
        self.name = name
        self.type = type_
        self.bottoms = list(bottoms)
        self.tops = list(tops)
        self.nodes = list(nodes)        # engine node indices, in order
        self.param_names = list(params)  # initializer per Caffe param blob
        self.derived = dict(derived)     # derived initializer -> how (see _derived_value)
        self.blobs = []                  # ParamBlob objects, filled by the Net

    def __repr__(self):
        return f"<caffe_port.pycaffe layer {self.name!r} ({self.type})>"


def _structure_from_metadata(meta, graph):
    layers = [_Layer(m["name"], m["type"], m["bottoms"], m["tops"],
                     sorted(graph.by_name[n].index for n in m["nodes"]), m["params"],
                     m.get("derived", {}))
              for m in meta["layers"]]
    writers = OrderedDict()                       # blob -> [layer index] in order
    for k, layer in enumerate(layers):
        for top in layer.tops:
            writers.setdefault(top, []).append(k)
    # the importer's naming rule: the last writer's version carries the blob name
    versions = {blob: [(blob if k == ks[-1] else f"{blob}@{layers[k].name}", k) for k in ks]
                for blob, ks in writers.items()}
    inputs = list(meta["inputs"])
    for blob, tensor in zip(inputs, meta.get("input_tensors", inputs)):
        versions[blob][0] = (tensor, versions[blob][0][1])
    return layers, versions, inputs, list(meta["outputs"])


def _structure_from_graph(engine):
    graph = engine.graph
    params = {name: [p.name for p in blobs] for name, blobs in engine.params.items()}
    layers = [_Layer(node.name, node.op_type,
                     [i for i in node.inputs if i and i not in graph.constants],
                     [o for o in node.outputs if o], [node.index], params.get(node.name, []), {})
              for node in graph.nodes]
    versions = OrderedDict((name, [(name, -1)]) for name in graph.inputs)
    for k, layer in enumerate(layers):
        for top in layer.tops:
            versions[top] = [(top, k)]
    return layers, versions, list(graph.inputs), list(graph.outputs)


def _metadata(model):
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    return None


# --- blobs ----------------------------------------------------------------------------------------

class _Names(OrderedDict):
    """An OrderedDict whose missing keys raise BlobError with close matches."""

    def __init__(self, items, what):
        super().__init__(items)
        self._what = what

    def __missing__(self, key):
        raise BlobError(f"unknown {self._what} {key!r}" + suggest(key, list(self)))


# --- the net --------------------------------------------------------------------------------------

class Net:
    """``caffe.Net``: a Caffe (or ONNX) network with pycaffe's interface.

    Net(prototxt, phase) / Net(prototxt, caffemodel, phase) / Net(prototxt, phase, weights=...)
    / Net(model.onnx). ``phase`` (caffe.TEST = 1 or caffe.TRAIN = 0), ``level`` and ``stages``
    select layers by their include/exclude rules, as in Caffe; Dropout and BatchNorm keep
    their inference semantics in TRAIN (warned once). Params the caffemodel lacks start from
    the prototxt's fillers, drawn from ``caffe.set_random_seed``'s generator. The net runs where
    the global mode (caffe.set_mode_*) says at each pass; ``device`` ("cpu", "cuda", "auto"), a
    caffe_port addition, pins it instead.
    """

    def __init__(self, network_file, *args, weights=None, phase=None, level=0, stages=None,
                 device=None):
        weights, phase, level, stages = _parse_args(args, weights, phase, level, stages)
        model = _load(network_file, weights, phase, level, stages)
        meta = _metadata(model)
        # a prototxt can be converted again when an input changes shape (see Blob.reshape)
        from_prototxt = isinstance(network_file, (str, os.PathLike)) and meta is not None \
            and not os.fspath(network_file).lower().endswith(".onnx")
        # the prototxt as read now (Caffe keeps its NetParameter; the file may go away)
        self._source = ((caffe_io.read_prototxt(network_file), _phase_value(phase), level, stages)
                        if from_prototxt else None)
        self._pinned_device = device
        self._engine = Engine(model, device=device or engine_device(), keep="all")
        del model
        if meta is not None:
            layers, versions, inputs, outputs = _structure_from_metadata(meta, self._engine.graph)
        else:
            layers, versions, inputs, outputs = _structure_from_graph(self._engine)
        self._meta = meta
        self._layers = layers
        self._versions = versions
        self.inputs = inputs
        self.outputs = outputs
        self._input_tensor = {b: versions[b][0][0] for b in inputs}
        self._layer_index = {layer.name: k for k, layer in enumerate(layers)}
        self._diff_buffers = {}
        self._from_backward = set()     # blobs whose diff the last backward wrote
        self._derived_snapshots = {}    # layer -> copies of its params, to refresh derived ones
        self._handed_out = set()        # param tensors whose arrays the user may hold
        self._forward_all_inputs = None
        self._pending = None            # after an input reshape, until the next forward
        self._warned = set()
        self.blobs = _Names(((b, Blob(self, b)) for b in versions), "blob")
        self._collect_params(network_file)
        self.params = _Names(((layer.name, layer.blobs) for layer in layers if layer.blobs),
                             "layer with parameters")
        self.layer_dict = _Names(((layer.name, layer) for layer in layers), "layer")
        self.top_names = OrderedDict((layer.name, list(layer.tops)) for layer in layers)
        self.bottom_names = OrderedDict((layer.name, list(layer.bottoms)) for layer in layers)
        self.blob_loss_weights = _loss_weights(meta, layers, versions)
        self._sources = _sources(meta, versions)
        if meta is not None:
            # Caffe allocates the declared shapes (batch included)
            for blob in inputs:
                shape = meta["blobs"][blob]["shape"]
                if tuple(self.blobs[blob].shape) != tuple(shape):
                    self.blobs[blob].reshape(*shape)
        # DummyData fills its tops at set-up; a loss top's diff is its loss weight
        # (Layer::SetLossWeights), what backward() starts from
        self._fill_sources(refill_only=False)
        for blob, weight in self.blob_loss_weights.items():
            if weight:
                self._diff_buffer(blob)[...] = weight

    # -- pycaffe's read-only views --

    @property
    def layers(self):
        return list(self._layers)

    @property
    def _layer_names(self):
        return [layer.name for layer in self._layers]

    @property
    def _blob_names(self):
        return list(self.blobs)

    @property
    def _blobs(self):
        return list(self.blobs.values())

    @property
    def force_backward(self):
        return bool(self._meta and self._meta.get("force_backward"))

    def __repr__(self):
        return (f"<caffe_port.pycaffe.Net {len(self._layers)} layers, inputs {self.inputs}, "
                f"outputs {self.outputs}>")

    # -- forward --------------------------------------------------------------------------------

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Run layers ``start``..``end`` (inclusive; default all) with the input arrays given
        (default: the inputs' current data). Returns {blob: data} for the net's outputs, or for
        the tops of ``end``, plus the blobs named in ``blobs``."""
        blobs = list(blobs or [])
        for name in blobs:
            self.blobs[name]
        feeds = {}
        for name, value in kwargs.items():
            if name not in self.inputs:
                raise BlobError(f"{name!r} is not an input of this net (inputs: "
                                f"{', '.join(self.inputs)})" + suggest(name, self.inputs))
            value = np.array(value, dtype=np.float32)
            if value.shape != self.blobs[name].shape:
                self.blobs[name].reshape(*value.shape)
            feeds[self._input_tensor[name]] = value
        first = self._layer_at(start, 0)
        last = self._layer_at(end, len(self._layers) - 1)
        if first > last:
            raise InputError(f"forward start {start!r} comes after end {end!r}")
        self._sync_params()
        self._follow_mode()
        self._fill_sources(refill_only=True, first=first, last=last)
        nodes = [i for layer in self._layers[first:last + 1] for i in layer.nodes]
        if nodes:
            graph_nodes = self._engine.graph.nodes
            if min(nodes) > 0:
                self._share_into_chains(first)
            self._engine.forward(start=graph_nodes[min(nodes)].name if min(nodes) > 0 else None,
                                 end=graph_nodes[max(nodes)].name, **feeds)
        else:
            for tensor, value in feeds.items():
                self._engine.blobs[tensor].reshape(*value.shape)
                self._engine.blobs[tensor].data[...] = value
        self._pending = None
        self._share_from_chains(first, last)
        names = list(self._layers[last].tops) if end is not None else list(self.outputs)
        return {name: self.blobs[name].data for name in names + blobs}

    def _fill_sources(self, refill_only, first=0, last=None):
        """DummyData's rule: every top filled at set-up; a top whose filler is not constant
        refilled by each forward that runs its layer."""
        last = len(self._layers) - 1 if last is None else last
        generator = random_generator()
        for blob, (tensor, filler, layer_index) in self._sources.items():
            if refill_only and (is_constant(filler) or not first <= layer_index <= last):
                continue
            target = self._engine.blobs[tensor].data
            where = f"layer {self._layers[layer_index].name!r} (DummyData)"
            target[...] = fill(filler, target.shape, generator, where)

    def _follow_mode(self):
        """Caffe's mode is global: a net moves to the device caffe.set_mode_* last named."""
        wanted = self._pinned_device or engine_device()
        if self._pinned_device is None and wanted != self._engine.device:
            self._engine.set_device(wanted)

    def _share_into_chains(self, first):
        """Before a forward from layer ``first``: the version of an in-place blob that layer
        reads takes the blob's buffer (what the last forward or the user left in it)."""
        for blob, chain in self._versions.items():
            before = [tensor for tensor, k in chain if k < first]
            if len(chain) > 1 and before and before[-1] != chain[-1][0]:
                self._engine.blobs[before[-1]].data[...] = self._blob_data(blob)

    def _share_from_chains(self, first, last):
        """After a forward of layers ``first``..``last``: an in-place blob whose last writer did
        not run holds the version that did, in its one buffer."""
        for blob, chain in self._versions.items():
            written = [tensor for tensor, k in chain if first <= k <= last]
            if len(chain) > 1 and written and written[-1] != chain[-1][0]:
                self._blob_data(blob)[...] = self._engine.blobs[written[-1]].data

    def forward_all(self, blobs=None, **kwargs):
        """Forward N inputs in batches of the net's batch size (the last batch padded with
        zeros, its padding dropped). Returns {blob: (N, ...) array} for outputs + ``blobs``."""
        outs = list(dict.fromkeys(list(self.outputs) + list(blobs or [])))
        collected = {name: [] for name in outs}
        arrays = self._batch_inputs(kwargs, "forward_all")
        self._forward_all_inputs = arrays
        for batch, _ in self._batches(arrays):
            result = self.forward(blobs=blobs, **batch)
            for name in outs:
                collected[name].append(np.array(result[name]))
        return self._stack(collected, arrays)

    # -- backward -------------------------------------------------------------------------------

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Back-propagate through layers ``start``..``end`` (default: from the last layer, or
        from the last layer writing a blob given in ``kwargs``, down to the first).

        kwargs: blob name -> top diff (the blob's shape, or any shape of its size). Returns
        {blob: diff} for the inputs (or the bottoms of ``end``) plus the blobs in ``diffs``.
        """
        diffs = list(diffs or [])
        for name in diffs:
            self.blobs[name]
        for name, value in kwargs.items():
            self.blobs[name].diff = value
        if start is not None:
            top = self._layer_at(start, None)
        else:
            writers = [self._versions[name][-1][1] for name in kwargs]
            top = max(writers) if writers and max(writers) >= 0 else len(self._layers) - 1
        bottom = self._layer_at(end, 0)
        if bottom > top:
            raise InputError(f"backward start {start!r} comes before end {end!r}")
        self._sync_params()
        self._follow_mode()
        nodes = [i for layer in self._layers[bottom:top + 1] for i in layer.nodes]
        if nodes:
            self._walk(min(nodes), max(nodes), bottom, top, warn=start is None and not kwargs)
        names = list(self._layers[bottom].bottoms) if end is not None else list(self.inputs)
        return {name: self.blobs[name].diff for name in list(dict.fromkeys(names + diffs))}

    def _walk(self, lo, hi, bottom, top, warn):
        engine = self._engine
        graph = engine.graph
        walked = graph.nodes[lo:hi + 1]
        consumed = {i for node in walked for i in node.inputs if i}
        dangling = [o for node in walked for o in node.outputs if o and o not in consumed]
        inject, lost = {}, []
        for blob in list(self._diff_buffers):
            buffer = self._diff_buffer(blob)       # a reshaped blob starts from zeros
            if not np.any(buffer):
                continue
            # the buffer is the top diff of the highest walked layer that writes this blob
            reached = [tensor for tensor, k in self._versions[blob] if bottom <= k <= top]
            if not reached:
                continue
            if reached[-1] in consumed:
                if blob not in self._from_backward and blob not in self.inputs:
                    lost.append(blob)
            else:
                inject[reached[-1]] = buffer
        if warn and lost:
            self._warn_overwritten(lost[0], top)
        top_diffs = {}
        for tensor in dangling:
            if tensor in inject:
                top_diffs[tensor] = inject[tensor]
            elif graph.is_float(tensor) and np.any(engine.blobs[tensor].diff):
                top_diffs[tensor] = np.zeros(engine.blobs[tensor].shape, np.float32)  # stale
        above, untouched = self._split_layers(lo, hi, bottom)
        engine.backward(start=graph.nodes[hi].name, end=graph.nodes[lo].name, also=above,
                        **top_diffs)
        self._from_backward.clear()
        for blob, chain in self._versions.items():
            written = [tensor for tensor, _ in chain if tensor in consumed]
            if written and written[0] not in untouched:
                buffer = self._diff_buffer(blob)
                buffer[...] = fit_array(engine.blobs[written[0]].diff, buffer.shape, blob)
                self._from_backward.add(blob)

    def _split_layers(self, lo, hi, bottom):
        """Caffe's split layers, for a walk of engine nodes lo..hi (Caffe layers from
        ``bottom``): a blob read by several layers gets, from the split after its writer, the
        sum of every reader's diff — the readers above the walk give what they gave before, so
        they are walked too (from the diffs their tops hold) — and when its writer is not
        walked, the split is not either and the blob's diff stays as it was. Returns (names of
        the engine nodes above the walk to walk as well, tensors whose diff is not the blob's)."""
        graph = self._engine.graph
        writer = {tensor: k for chain in self._versions.values() for tensor, k in chain}
        above, untouched = set(), set()
        for tensor in {i for node in graph.nodes[lo:hi + 1] for i in node.inputs if i}:
            readers = graph.consumers.get(tensor, [])
            if tensor in graph.constants or all(lo <= r.index <= hi for r in readers):
                continue
            producer = graph.producer.get(tensor)
            written_here = (lo <= producer.index <= hi if producer is not None
                            else writer.get(tensor, -1) >= bottom)
            if written_here:
                above.update(r.name for r in readers if r.index > hi)
            else:
                untouched.add(tensor)
        return sorted(above), untouched

    def _warn_overwritten(self, blob, top):
        if "overwritten" in self._warned:
            return
        self._warned.add("overwritten")
        writer = self._layers[self._versions[blob][-1][1]].name
        last = self._layers[top].name
        warnings.warn(f"the diff written into {blob!r} is overwritten by the layers above it (as "
                      f"in Caffe, backward() starts at the last layer, {last!r}); to "
                      f"back-propagate from it, call net.backward(start={writer!r})", stacklevel=4)

    def backward_all(self, diffs=None, start=None, end=None, **kwargs):
        """Backward N top diffs in batches of the net's batch size. Each batch is first run
        forward from its inputs: those given here, else the ones the last ``forward_all`` took.
        Returns {blob: (N, ...) diff} for the inputs plus ``diffs``."""
        inputs = {k: v for k, v in kwargs.items() if k in self.inputs}
        tops = {k: v for k, v in kwargs.items() if k not in self.inputs}
        if not inputs:
            if self._forward_all_inputs is None:
                raise InputError("backward_all needs the inputs: pass them too, or call "
                                 "forward_all first")
            inputs = self._forward_all_inputs
        _, all_diffs = self._forward_backward_batches(None, diffs, start, end, inputs, tops)
        return all_diffs

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """forward_all and backward in the same batches: kwargs hold inputs and top diffs.
        Returns ({blob: data} for outputs + ``blobs``, {blob: diff} for inputs + ``diffs``)."""
        inputs = {k: v for k, v in kwargs.items() if k in self.inputs}
        tops = {k: v for k, v in kwargs.items() if k not in self.inputs}
        return self._forward_backward_batches(blobs, diffs, None, None, inputs, tops)

    def _forward_backward_batches(self, blobs, diffs, start, end, inputs, tops):
        outs = list(dict.fromkeys(list(self.outputs) + list(blobs or [])))
        grads = list(dict.fromkeys((list(self._layers[self._layer_at(end, 0)].bottoms)
                                    if end is not None else list(self.inputs)) + list(diffs or [])))
        arrays = self._batch_inputs({**inputs, **tops}, "forward_backward_all")
        collected_outs = {name: [] for name in outs}
        collected_diffs = {name: [] for name in grads}
        for batch, _ in self._batches(arrays):
            result = self.forward(blobs=blobs, **{k: batch[k] for k in inputs})
            top_batch = {k: batch[k] for k in tops}
            grad = self.backward(diffs=diffs, start=start, end=end, **top_batch)
            for name in outs:
                collected_outs[name].append(np.array(result[name]))
            for name in grads:
                collected_diffs[name].append(np.array(grad[name]))
        return self._stack(collected_outs, arrays), self._stack(collected_diffs, arrays)

    # -- batching (pycaffe's _batch) --

    def _batch_inputs(self, kwargs, what):
        if not kwargs:
            raise InputError(f"{what} needs arrays: pass them as keyword arguments "
                             f"(inputs: {', '.join(self.inputs)})")
        arrays = {name: np.asarray(value) for name, value in kwargs.items()}
        for name in arrays:
            self.blobs[name]
        sizes = {len(v) for v in arrays.values()}
        if len(sizes) != 1:
            raise ShapeError(f"{what}: the arrays hold different numbers of items "
                             f"({', '.join(f'{k}: {len(v)}' for k, v in arrays.items())})")
        return arrays

    def _batches(self, arrays):
        """Batches of the first blob's batch size; the last one padded with zeros."""
        batch_size = self.blobs[next(iter(self.blobs))].shape[0]
        total = len(next(iter(arrays.values())))
        for begin in range(0, total, batch_size):
            batch = {}
            for name, value in arrays.items():
                part = value[begin:begin + batch_size]
                if len(part) < batch_size:
                    pad = np.zeros((batch_size - len(part),) + value.shape[1:], dtype=part.dtype)
                    part = np.concatenate([part, pad])
                batch[name] = part
            yield batch, min(batch_size, total - begin)

    @staticmethod
    def _stack(collected, arrays):
        total = len(next(iter(arrays.values())))
        return {name: np.concatenate(parts)[:total] if parts else np.zeros((0,))
                for name, parts in collected.items()}

    # -- shapes --

    def reshape(self):
        """Propagate the input blobs' shapes through the net (after ``blobs[...].reshape``)."""
        self._engine.reshape()

    def _reshaped(self):
        """An input changed shape: until the next forward, the other blobs show the shapes it
        implies (zeros, as freshly reshaped Caffe blobs), not the last forward's arrays."""
        shapes = self._engine.graph.shapes({self._input_tensor[b]: self.blobs[b].shape
                                            for b in self.inputs})
        self._pending = ({b: shapes.get(chain[-1][0]) for b, chain in self._versions.items()
                          if b not in self.inputs}, {})

    def _pending_blob(self, blob):
        if self._pending is None or blob in self.inputs:
            return None
        shapes, arrays = self._pending
        if shapes.get(blob) is None:
            return None
        if blob not in arrays:
            arrays[blob] = np.zeros(shapes[blob], dtype=np.float32)
        return arrays[blob]

    # -- diffs --

    # -- the blob protocol (caffe_port/blob.py) --

    def _blob_data(self, blob):
        pending = self._pending_blob(blob)
        if pending is not None:
            return pending
        return self._engine.blobs[self._versions[blob][-1][0]].data

    def _blob_shape(self, blob):
        pending = self._pending_blob(blob)
        if pending is not None:
            return pending.shape
        return tuple(self._engine.blobs[self._versions[blob][-1][0]].shape)

    def _blob_diff(self, blob):
        return self._diff_buffer(blob)

    def _set_diff(self, blob, value):
        buffer = self._diff_buffer(blob)
        buffer[...] = fit_array(value, buffer.shape, blob)
        self._from_backward.discard(blob)

    def _reshape_input(self, blob, shape):
        if blob not in self.inputs:
            raise BlobError(f"only input blobs can be reshaped here, and {blob!r} is not one "
                            f"(inputs: {', '.join(self.inputs)})")
        try:
            self._engine.blobs[self._input_tensor[blob]].reshape(*shape)
        except ShapeError:
            # the converted graph fixes what Caffe would recompute (pooling pads, H × W):
            # convert the prototxt again for the new shape, as Caffe's Reshape recomputes layers
            if self._source is None:
                raise
            self._reconvert({blob: shape})
        self._reshaped()

    def _diff_buffer(self, blob):
        shape = self.blobs[blob].shape
        buffer = self._diff_buffers.get(blob)
        if buffer is None or buffer.shape != shape:
            buffer = self._diff_buffers[blob] = np.zeros(shape, dtype=np.float32)
        return buffer

    # -- layer lookup --

    def _layer_at(self, name, default):
        if name is None:
            return default
        if name in self._layer_index:
            return self._layer_index[name]
        raise BlobError(f"unknown layer {name!r}" + suggest(name, list(self._layer_index)))

    # -- params (net surgery) -------------------------------------------------------------------

    def _collect_params(self, network_file):
        constants = self._engine.graph.constants
        for k, layer in enumerate(self._layers):
            for i, tensor in enumerate(layer.param_names):
                if tensor is None:
                    continue
                if tensor not in constants:
                    raise BlobError(f"param {i} of layer {layer.name!r} ({tensor!r}) is missing "
                                    f"from the converted model of {network_file}")
                layer.blobs.append(ParamBlob(self, tensor, f"net.params[{layer.name!r}][{i}]"))
            if layer.derived:
                self._derived_snapshots[layer.name] = [constants[t].copy()
                                                       for t in layer.param_names if t]

    def _param_data(self, tensor):
        self._handed_out.add(tensor)
        return self._engine._param_data(tensor)

    def _param_shape(self, tensor):
        return self._engine.graph.constants[tensor].shape

    def _sync_params(self):
        """Recompute the initializers derived from params that net surgery changed."""
        constants = self._engine.graph.constants
        for name, snapshot in self._derived_snapshots.items():
            layer = self._layers[self._layer_index[name]]
            params = [constants[t] for t in layer.param_names if t]
            if snapshot is not None and all(np.array_equal(a, b) for a, b in zip(params, snapshot)):
                continue
            for derived in layer.derived:
                value = _derived_value(layer, derived, params)
                if value is None:
                    warn_once(("derived", layer.type, derived),
                               f"net surgery on layer {layer.name!r} ({layer.type}) does not reach "
                               f"{derived!r}: caffe_port does not know how it is derived")
                    continue
                target = self._param_data(derived)    # the engine notices and rebuilds
                target[...] = np.reshape(value, target.shape)
            self._derived_snapshots[name] = [p.copy() for p in params]


    # -- net surgery that lasts: Caffe's files of params ------------------------------------------

    def save(self, filename):
        """Write the net's params as a binary caffemodel (Net::ToProto: NetParameter V2 with
        the net's layers, each with its param blobs in Caffe's order and shapes). As pycaffe,
        an existing file is overwritten."""
        if self._source is None:
            raise InputError("net.save writes Caffe's layers, and this net was made from an ONNX "
                             "file: save the model with onnx.save instead")
        prototxt, phase, level, stages = self._source
        net_param = net_parameter(prototxt, phase=phase, level=level, stages=stages)
        for entry in net_param.layer:
            if entry.name in self._layer_index:
                for blob in self._layers[self._layer_index[entry.name]].blobs:
                    entry.blobs.append(caffe_io.array_to_blob(blob.data))
        _writing(filename, caffe_io.write_caffemodel, net_param)

    def copy_from(self, filename):
        """Net::CopyTrainedLayersFrom: the params of each layer the file (a caffemodel, or HDF5
        when the name ends in .h5) names, copied into this net's layer of that name; layers the
        file lacks keep theirs, layers this net lacks are ignored."""
        if os.fspath(filename).endswith(".h5"):
            return self.load_hdf5(filename)
        stored = caffe_io.caffemodel_layers(caffe_io.read_caffemodel(filename))
        arrays = {}
        for name, blobs in stored.items():
            layer = self._trained_layer(name, len(blobs), filename)
            for i, (blob, param) in enumerate(zip(blobs, layer.blobs if layer else [])):
                if not caffe_io.legacy_shape_matches(param.shape, blob):
                    raise ModelError(f"{filename}: cannot copy param {i} of layer {name!r}: "
                                     f"shape mismatch, the file has {caffe_io.blob_shape(blob)}, "
                                     f"the net needs {param.shape}")
                arrays[param.name] = caffe_io.blob_to_array(blob, f"{filename}: {name}").reshape(
                    param.shape)
        self._write_params(arrays)

    def share_with(self, other):
        """Net::ShareTrainedLayersWith: each layer of ``other`` with the name of one of this
        net's layers lends it its param arrays (the same memory: surgery on either net reaches
        both)."""
        if not isinstance(other, Net):
            raise InputError(f"net.share_with takes another caffe.Net, not {type(other).__name__}")
        shared = {}
        for name, layer in other.layer_dict.items():
            target = self._trained_layer(name, len(layer.blobs), "the other net")
            for i, (source, param) in enumerate(zip(layer.blobs, target.blobs if target else [])):
                if source.shape != param.shape:
                    raise ModelError(f"cannot share param {i} weights from layer {name!r}: shape "
                                     f"mismatch, the other net's is {source.shape}, this net's "
                                     f"{param.shape}")
                # handed out by the other net: its next forward notices writes through this one
                shared[param.name] = other._param_data(source.name)
        self._engine.set_params(shared, watch=True)
        self._handed_out.update(shared)

    def save_hdf5(self, filename):
        """Net::ToHDF5: group ``data``, in it one group per layer with its params as datasets
        "0", "1", … (a '/' in a layer name nests groups, as HDF5 reads it). Needs h5py."""
        h5py = _h5py("save_hdf5")

        def write(path):
            with h5py.File(path, "w") as f:
                data = f.create_group("data")
                for layer in self._layers:
                    group = data.require_group(layer.name)
                    for i, blob in enumerate(layer.blobs):
                        group.create_dataset(str(i), data=np.asarray(blob.data, np.float32))
        _writing(filename, lambda _, path: write(path), None)

    def load_hdf5(self, filename):
        """Net::CopyTrainedLayersFromHDF5: the params of each layer group under ``data``,
        copied into this net's layer of that name (others ignored), shapes as they are."""
        h5py = _h5py("load_hdf5")
        try:
            f = h5py.File(os.fspath(filename), "r")
        except OSError as e:
            raise ModelError(f"cannot read HDF5 weights {os.fspath(filename)}: {e}") from None
        with f:
            if "data" not in f:
                raise ModelError(f"{os.fspath(filename)}: no 'data' group (not a Caffe HDF5 "
                                 "snapshot)")
            groups = {}

            def collect(name, item):     # a layer's group: nested where its name has a '/'
                if isinstance(item, h5py.Group):
                    groups[name] = item   # (returning nothing: visititems stops at a value)
            f["data"].visititems(collect)
            arrays = {}
            for name, group in groups.items():
                datasets = [key for key in group if isinstance(group[key], h5py.Dataset)]
                layer = self._trained_layer(name, len(datasets), filename, at_most=True)
                for i, param in enumerate(layer.blobs if layer else []):
                    if str(i) not in group:
                        raise ModelError(f"{filename}: incompatible number of blobs for layer "
                                         f"{name!r} (no dataset '{i}')")
                    value = np.asarray(group[str(i)], np.float32)
                    if value.shape != param.shape:
                        raise ModelError(f"{filename}: cannot load param {i} of layer {name!r}: "
                                         f"shape mismatch, the file has {value.shape}, the net "
                                         f"needs {param.shape}")
                    arrays[param.name] = value
        self._write_params(arrays)

    def _trained_layer(self, name, count, source, at_most=False):
        """This net's layer ``name`` for ``count`` stored blobs (None when it has no such
        layer: Caffe ignores it), checked as Caffe checks the blob count."""
        if name not in self._layer_index:
            return None
        layer = self._layers[self._layer_index[name]]
        if count > len(layer.blobs) or (count < len(layer.blobs) and not at_most):
            raise ModelError(f"{source}: incompatible number of blobs for layer {name!r}: "
                             f"{count} stored, the layer has {len(layer.blobs)}")
        return layer

    def _write_params(self, arrays):
        """Copy {param tensor: array} into the params' own arrays (what the user holds sees it)
        and have the engine rebuild what it derived from them."""
        constants = self._engine.graph.constants
        for tensor, value in arrays.items():
            constants[tensor][...] = value
        self._engine.set_params({tensor: constants[tensor] for tensor in arrays})

    def _reconvert(self, new_shapes):
        """Convert the prototxt again with the inputs in ``new_shapes`` (others as they are) and
        move this net's param arrays (surgery included) into the new engine."""
        prototxt, phase, level, stages = self._source
        shapes = {b: tuple(new_shapes.get(b, self.blobs[b].shape)) for b in self.inputs}
        net_param = caffe_io.upgrade_net(prototxt)
        for layer in net_param.layer:
            if layer.type == "Input":
                del layer.input_param.shape[:]
                for top in layer.top:
                    layer.input_param.shape.add().dim.extend(shapes[top])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # fillers: the params come from this net below
            model = caffe_to_onnx(net_param, None, phase=phase, level=level, stages=stages,
                                  fill_missing=True)
        engine = Engine(model, device=self._engine.device, keep="all")
        old, new = self._engine.graph.constants, engine.graph.constants
        for layer in self._layers:
            for i, tensor in enumerate(layer.param_names):
                if tensor is None:
                    continue
                if new[tensor].shape != old[tensor].shape:
                    raise ShapeError(
                        f"reshaping to {', '.join(f'{b} {s}' for b, s in shapes.items())} changes "
                        f"param {i} of layer {layer.name!r} from {old[tensor].shape} to "
                        f"{new[tensor].shape}; Caffe refuses such a reshape too")
        for tensor in (t for layer in self._layers for t in layer.param_names if t):
            new[tensor] = old[tensor]      # the same arrays: what the user holds stays live
        meta = _metadata(model)
        del model
        layers, _, _, _ = _structure_from_metadata(meta, engine.graph)
        for mine, fresh in zip(self._layers, layers):
            mine.nodes = fresh.nodes
        self._engine, self._meta = engine, meta
        for tensor in self._handed_out:
            self._param_data(tensor)       # the new engine watches them for surgery
        self._derived_snapshots = {name: None for name in self._derived_snapshots}
        for blob in self.inputs:
            engine.blobs[self._input_tensor[blob]].reshape(*shapes[blob])


def _derived_value(layer, derived, params):
    """A derived initializer ``<layer>#<i>/<what>`` from the layer's current param blobs:
    ``reshape`` (param i with trailing 1s), BatchNorm ``mean``/``var`` (blob i · f,
    f = 1 / blob 2, or 0 when blob 2 is 0). None for a derivation not known here."""
    head, _, what = derived.rpartition("/")
    _, _, index = head.rpartition("#")
    if not index.isdigit() or int(index) >= len(params):
        return None
    source = params[int(index)]
    if what == "reshape":
        return source
    if layer.type == "BatchNorm" and what in ("mean", "var") and len(params) == 3:
        scale = params[2].reshape(-1)[0]
        factor = np.float32(0.0) if scale == 0 else np.float32(1.0) / np.float32(scale)
        return (source * factor).astype(np.float32)
    return None


def layer_type_list():
    """Caffe's LayerRegistry type list: here, the layer types caffe.Net can build."""
    return sorted(LAYER_CONVERTERS)


# --- construction helpers -------------------------------------------------------------------------

def _parse_args(args, weights, phase, level, stages):
    """pycaffe's overloads: (phase), (weights, phase), (phase, level, stages, weights)."""
    rest = list(args)
    if rest and isinstance(rest[0], (str, bytes, os.PathLike)):
        if weights is not None:
            raise InputError("weights were given twice (positionally and as weights=)")
        weights = rest.pop(0)
    if rest:
        if phase is not None:
            raise InputError("phase was given twice (positionally and as phase=)")
        phase = rest.pop(0)
    if rest:
        level = rest.pop(0)
    if rest:
        stages = rest.pop(0)
    if rest and weights is None:
        weights = rest.pop(0)
    if rest:
        raise InputError(f"caffe.Net takes (network_file, [weights,] phase[, level, stages, "
                         f"weights]); got {len(args) + 1} positional arguments")
    if isinstance(weights, bytes):
        weights = weights.decode()
    return weights, phase, level, list(stages or [])


def _phase_value(phase):
    if phase is None:
        return 1
    if isinstance(phase, str) and phase.upper() in ("TRAIN", "TEST"):
        return 0 if phase.upper() == "TRAIN" else 1
    if isinstance(phase, (bool, np.bool_)) or not isinstance(phase, (int, np.integer)) \
            or int(phase) not in (0, 1):
        raise InputError(f"phase must be caffe.TEST (1) or caffe.TRAIN (0), not {phase!r}")
    return int(phase)


def _writing(filename, write, value):
    """Run ``write(value, path)``, a failure to write being one line that names the file."""
    path = os.fspath(filename)
    try:
        write(value, path)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None


def _h5py(what):
    try:
        import h5py     # optional: only the HDF5 snapshots need it
    except ImportError:
        raise InputError(f"net.{what} needs h5py: pip install 'caffe_port[hdf5]'") from None
    return h5py


def _loss_weights(meta, layers, versions):
    """Caffe's net.blob_loss_weights: each blob's loss weight, as its last writer gives it for
    that top (1 for a loss layer's first top by default), 0 elsewhere."""
    weights = OrderedDict((blob, 0.0) for blob in versions)
    if meta is not None:
        for layer, entry in zip(layers, meta["layers"]):
            for top, weight in zip(layer.tops, entry.get("loss_weight", [])):
                weights[top] = float(weight)
    return weights


def _sources(meta, versions):
    """{blob: (tensor, FillerParameter, index of its DummyData layer)} for the data sources."""
    sources = OrderedDict()
    for source in (meta or {}).get("sources", []):
        filler = caffe_io.parse_prototxt(source["filler"], "<filler>", "FillerParameter")
        tensor, layer_index = versions[source["blob"]][0]
        sources[source["blob"]] = (tensor, filler, layer_index)
    return sources


def _load(network_file, weights, phase, level, stages):
    phase = _phase_value(phase)
    if isinstance(network_file, onnx.ModelProto):
        return network_file
    if isinstance(network_file, bytes):
        network_file = network_file.decode()
    path = Path(os.fspath(network_file))
    if path.suffix.lower() == ".onnx":
        if weights is not None:
            raise InputError(f"{path}: an ONNX file carries its weights; no caffemodel goes "
                             "with it")
        return load_model(path)
    if phase == 0:
        warn_once("train", "caffe.TRAIN selects the TRAIN phase's layers; caffe_port keeps "
                   "inference semantics in them (Dropout is the identity, BatchNorm uses its "
                   "stored statistics)", stacklevel=3)
    # Caffe starts layers the caffemodel lacks (or all, without one) from their fillers; the
    # converter's own per-layer notes on TRAIN semantics are the warning above
    with warnings.catch_warnings():
        if phase == 0:
            warnings.filterwarnings("ignore", message=".*(in phase TRAIN|batch statistics)")
        if weights is None:   # a net without weights starts from its fillers, silently as in Caffe
            warnings.filterwarnings("ignore", message=".*no caffemodel was given")
        return caffe_to_onnx(path, weights, phase=phase, level=int(level), stages=tuple(stages),
                             fill_missing=True, rng=random_generator())
