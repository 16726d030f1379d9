"""A Caffe net (``deploy.prototxt`` + ``.caffemodel``) as one normalised ONNX ModelProto.

``caffe_to_onnx`` builds the net as Caffe's ``Net::Init`` would (format upgrades, the
phase/level/stage filter, blob bookkeeping, in-place layers, param blobs from the caffemodel or
Caffe's fillers), then has each layer written as ONNX nodes that compute what Caffe's
``Forward_cpu`` computes, in float32, at opset 13, by its converter in ``caffe_layers`` (Caffe's
layer factory: one function per layer type, found through ``LAYER_CONVERTERS``).

Names (what a pycaffe-shaped shell relies on):

* node ``<layer>`` is the layer's main computation; helper nodes and their tensors are named
  ``<layer>/<what>``;
* a tensor carries the Caffe blob name when it holds the blob's *final* value; when in-place
  layers (top == bottom) rewrite a blob, the earlier versions are ``<blob>@<writer layer>``
  (conv1 writes ``conv1@conv1``, the in-place relu1 then writes ``conv1``);
* Caffe param blob i of a layer is the initializer ``<layer>#<i>``, in Caffe's shape (what
  ``net.params[layer][i].data.shape`` shows); where a node needs another form it reads a derived
  initializer ``<layer>#<i>/<what>`` (e.g. a per-channel scale reshaped to (C, 1, 1)).

The metadata key ``caffe_port.caffe`` holds JSON: the net name, inputs and outputs (Caffe's
``net.inputs``/``net.outputs``), the data sources (DummyData tops: graph inputs the pycaffe
shell fills, with their filler), the layers (type, bottoms, tops, loss weight per top, params,
param shapes, nodes, derived initializers, lr_mult, propagate_down), the blobs (``data``: tensor of the final value,
``diff``: tensor whose diff Caffe shows after backward — the first version of an in-place chain,
since in-place backward overwrites the diff down the chain — and the declared shape),
force_backward, debug_info, phase and batch handling.

The batch (first input axis) is the symbolic dimension "N" unless a layer mixes it with other
axes (e.g. Reshape to an explicit first dim, Concat/Slice on axis 0); H×W stay as declared.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import onnx
from onnx import helper, numpy_helper

from caffe_port.errors import ModelError
from caffe_port.memory import check_fits, nbytes
from caffe_port.onnx_util import make_model

from . import caffe_io, caffe_proto
from .caffe_fillers import fill
from .caffe_layers import LAYER_CONVERTERS, LayerWriter

OPSET = 13
METADATA_KEY = "caffe_port.caffe"
BATCH_DIM = "N"

TRAINING_ONLY = {"Data", "ImageData", "HDF5Data", "HDF5Output", "MemoryData", "WindowData",
                 "AnnotatedData", "VideoData", "Python"}


# --- entry points ----------------------------------------------------------------------------

def caffe_to_onnx(prototxt, caffemodel=None, *, phase="TEST", level=0, stages=(),
                  fill_missing=False, rng=None) -> onnx.ModelProto:
    """Convert a Caffe net to ONNX.

    prototxt:     path of the net's ``.prototxt`` (or a ``caffe.NetParameter``).
    caffemodel:   path of the trained ``.caffemodel`` (or a ``NetParameter`` with blobs), or None.
    phase:        "TEST"/"TRAIN" (or caffe.TEST = 1 / caffe.TRAIN = 0); with ``level`` and
                  ``stages`` it selects layers by their include/exclude rules, as
                  ``caffe.Net(prototxt, weights, phase)`` does. Dropout is an identity and
                  BatchNorm uses its stored statistics in both phases (a warning says so when
                  Caffe would not).
    fill_missing: False (default): a layer with parameters that the caffemodel lacks (or every
                  such layer, when no caffemodel is given) raises ``ModelError``. True: such layers
                  start from Caffe's fillers as the prototxt names them (``caffe_fillers``; by
                  default constant 0 for weights and biases, 1 for Scale, 0.25 for PReLU), with a
                  warning.
    rng:          the numpy Generator random fillers draw from (default: a fresh, unseeded one,
                  as Caffe seeds itself when no random seed is set).

    Returns an ONNX ModelProto (opset 13) whose metadata describes the Caffe net (module doc).
    Raises ``ModelError`` for unreadable files, layer types that cannot be converted (all of them
    named at once), inconsistent shapes and weights that do not fit.
    """
    net, source = _load(prototxt, caffe_io.read_prototxt, "<prototxt>")
    weights = ParamSource.from_caffemodel(caffemodel, fill_missing, rng)
    converter = NetConverter(net, source, _net_state(net, phase, level, stages), weights)
    converter.run()
    return converter.model()


def caffe_param_shapes(prototxt, *, phase="TEST", level=0, stages=()) -> dict:
    """{layer name: [param blob shape, ...]} in Caffe's shapes, for the layers with parameters —
    what a ``.caffemodel`` for this prototxt must hold. Allocates no weights."""
    net, source = _load(prototxt, caffe_io.read_prototxt, "<prototxt>")
    converter = NetConverter(net, source, _net_state(net, phase, level, stages),
                             ParamSource(None, fill_missing=True, shapes_only=True))
    converter.run()
    return {layer["name"]: [tuple(s) for s in layer["param_shapes"]]
            for layer in converter.layers_meta if layer["param_shapes"]}


def net_parameter(prototxt, *, phase="TEST", level=0, stages=()):
    """The net as Caffe's Net::ToProto writes it, without blobs: its name and the layers
    Net::Init kept — upgraded to V2, filtered by the phase/level/stage rules, each layer's
    ``phase`` set to the net's and a loss layer's default loss weight written out."""
    net, source = _load(prototxt, caffe_io.read_prototxt, "<prototxt>")
    upgraded = caffe_io.upgrade_net(net, source)
    state = _net_state(net, phase, level, stages)
    result = caffe_proto.NetParameter()
    result.name = upgraded.name
    for layer in filter_layers(upgraded.layer, state, source):
        entry = result.layer.add()
        entry.CopyFrom(layer)
        if not entry.HasField("phase"):
            entry.phase = state.phase
        if entry.type.endswith("Loss") and not len(entry.loss_weight):
            entry.loss_weight.append(1.0)
    return result


def metadata(model: onnx.ModelProto) -> dict:
    """The ``caffe_port.caffe`` metadata of a converted model, as a dict."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise ModelError(f"model has no {METADATA_KEY!r} metadata: not converted from Caffe")


def _load(thing, reader, default_source):
    if thing is None:
        return None, None
    if hasattr(thing, "DESCRIPTOR"):
        return thing, default_source
    return reader(thing), os.fspath(thing)


# --- Caffe's layer filter (Net::FilterNet, Net::StateMeetsRule) -------------------------------

def _net_state(net, phase, level, stages):
    state = caffe_proto.NetState()
    state.CopyFrom(net.state)
    if isinstance(phase, str):
        if phase.upper() not in ("TRAIN", "TEST"):
            raise ModelError(f"phase must be 'TRAIN' or 'TEST', got {phase!r}")
        state.phase = caffe_proto.NetState.DESCRIPTOR.fields_by_name["phase"].enum_type \
            .values_by_name[phase.upper()].number
    elif phase in (0, 1):
        state.phase = int(phase)
    else:
        raise ModelError(f"phase must be 'TRAIN' or 'TEST' (or caffe.TRAIN/caffe.TEST), got {phase!r}")
    state.level = int(level)
    state.stage.extend(stages)
    return state


def _phase_name(state) -> str:
    return caffe_proto.NetState.DESCRIPTOR.fields_by_name["phase"].enum_type \
        .values_by_number[state.phase].name


def state_meets_rule(state, rule) -> bool:
    """Caffe's Net::StateMeetsRule: phase, level bounds and stages must all agree."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stage for stage in rule.stage):
        return False
    return not any(stage in state.stage for stage in rule.not_stage)


def filter_layers(layers, state, source="<net>") -> list:
    """Caffe's Net::FilterNet: with include rules a layer stays if the state meets any of them;
    otherwise it stays unless the state meets one of its exclude rules."""
    kept = []
    for layer in layers:
        if len(layer.include) and len(layer.exclude):
            raise ModelError(f"{source}: layer {layer.name!r} has both include and exclude rules; "
                             "Caffe allows one kind only")
        if len(layer.include):
            keep = any(state_meets_rule(state, rule) for rule in layer.include)
        else:
            keep = not any(state_meets_rule(state, rule) for rule in layer.exclude)
        if keep:
            kept.append(layer)
    return kept


# --- weights -----------------------------------------------------------------------------------

class ParamSource:
    """Where param blobs come from: a caffemodel (matched by layer name and checked like Caffe's
    CopyTrainedLayersFrom), else Caffe's fillers when ``fill_missing``."""

    def __init__(self, stored, fill_missing, source=None, shapes_only=False, rng=None):
        self.stored = stored            # {layer name: [BlobProto]} or None (no caffemodel)
        self.fill_missing = fill_missing
        self.source = source
        self.shapes_only = shapes_only
        self.rng = rng if rng is not None else np.random.default_rng()
        self.filled = []                # layer names started from fillers

    @classmethod
    def from_caffemodel(cls, caffemodel, fill_missing, rng=None):
        net, source = _load(caffemodel, caffe_io.read_caffemodel, "<caffemodel>")
        if net is None:
            return cls(None, fill_missing, rng=rng)
        return cls(caffe_io.caffemodel_layers(net), fill_missing, source, rng=rng)

    def take(self, layer, specs) -> list:
        """Arrays for a layer's params. specs: [(Caffe shape, FillerParameter)]."""
        blobs = None if self.stored is None else self.stored.get(layer.name)
        if blobs is None:
            if not self.fill_missing:
                if self.stored is None:
                    where = "no caffemodel was given"
                elif not any(self.stored.values()):
                    where = (f"{self.source} holds no weights at all (empty or truncated? a "
                             "prototxt given as weights?)")
                else:
                    where = f"{self.source} has no layer named {layer.name!r}"
                raise ModelError(f"layer {layer.name!r} ({layer.type}) needs weights but {where} "
                                 "(pass fill_missing=True to start it from Caffe's fillers)")
            if self.shapes_only:
                return [np.broadcast_to(np.float32(0.0), shape) for shape, _ in specs]
            check_fits(sum(nbytes(shape) for shape, _ in specs),
                       f"{layer.source}: layer {layer.name!r} ({layer.type}): filling its "
                       f"weights of shape{'s' if len(specs) > 1 else ''} "
                       f"{', '.join(str(tuple(shape)) for shape, _ in specs)}",
                       "the prototxt's sizes are wrong, or too large for this machine")
            self.filled.append(layer.name)
            where = f"{layer.source}: layer {layer.name!r} ({layer.type})"
            return [fill(filler, shape, self.rng, where) for shape, filler in specs]
        if len(blobs) != len(specs):
            raise ModelError(f"{self.source}: layer {layer.name!r} ({layer.type}) holds "
                             f"{len(blobs)} param blobs, the prototxt's layer needs {len(specs)} "
                             "(Caffe: incompatible number of blobs)")
        arrays = []
        for i, (blob, (shape, _)) in enumerate(zip(blobs, specs)):
            if not caffe_io.legacy_shape_matches(shape, blob):
                raise ModelError(
                    f"{self.source}: cannot copy param {i} of layer {layer.name!r}: shape mismatch, "
                    f"the caffemodel has {caffe_io.blob_shape(blob)}, the prototxt needs "
                    f"{tuple(shape)} (rename the layer to start it from scratch)")
            array = caffe_io.blob_to_array(blob, f"{self.source}: layer {layer.name!r} param {i}")
            arrays.append(array.reshape(shape))
        return arrays

    def warn(self):
        if not self.filled:
            return
        where = "no caffemodel was given" if self.stored is None else f"not in {self.source}"
        message = (f"weights of {len(self.filled)} layer(s) ({', '.join(self.filled[:5])}"
                   f"{', …' if len(self.filled) > 5 else ''}) {where}: started from Caffe's "
                   "fillers")
        warnings.warn(message, stacklevel=3)


# --- the net being converted --------------------------------------------------------------------

class NetConverter:
    """Caffe's Net::Init over ONNX: the filtered layers, the blob bookkeeping (which tensor holds
    each blob's current and first version, its Caffe shape), the graph being built, and the
    loop that hands each layer to its converter in ``LAYER_CONVERTERS``; ``model()`` assembles
    the ModelProto and its metadata."""

    def __init__(self, net, source, state, weights):
        self.source = source
        self.net_param = caffe_io.upgrade_net(net, source)
        self.state = state
        self.weights = weights
        self.nodes, self.initializers = [], {}
        self.current, self.first, self.shapes = {}, {}, {}
        self.inputs = []                    # (caffe blob, tensor name, declared shape)
        self.sources = []                   # (caffe blob, tensor, shape, filler): DummyData tops
        self.layers_meta = []
        self.batch_fixed_by = None
        self.layers = filter_layers(self.net_param.layer, state, source)
        self._check_types()
        self.writers = self._plan_blobs()
        # names helpers must avoid: blobs, their versions, and layers (= main node names)
        self.names = set(self.writers) | {self.version_name(b, w)
                                          for b, ws in self.writers.items() for w in ws}
        self.names |= {layer.name for layer in self.layers}

    # -- planning --

    def _check_types(self):
        if not self.layers:
            raise ModelError(f"{self.source}: no layers (in phase {_phase_name(self.state)})")
        names = [layer.name for layer in self.layers]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ModelError(f"{self.source}: layer name {twice[0]!r} is used more than once; "
                             "weights and params are found by layer name")
        unsupported = [layer for layer in self.layers if layer.type not in LAYER_CONVERTERS]
        if not unsupported:
            return
        listed = ", ".join(f"{layer.name!r} ({layer.type or 'no type'})" for layer in unsupported[:6])
        more = f" and {len(unsupported) - 6} more" if len(unsupported) > 6 else ""
        training = [layer for layer in unsupported
                    if layer.type in TRAINING_ONLY or layer.type.endswith("Loss")]
        hint = ("; data, loss and accuracy layers belong to training: use the deploy prototxt "
                "(inputs declared by an Input layer or input/input_shape)" if training else
                f"; supported types: {', '.join(sorted(LAYER_CONVERTERS))}")
        raise ModelError(f"{self.source}: cannot convert layer{'s' if len(unsupported) > 1 else ''} "
                         f"{listed}{more}{hint}")

    def _plan_blobs(self) -> dict:
        """{blob: [writer layers in order]}, checking Caffe's AppendBottom/AppendTop rules:
        bottoms must exist; a top may be rewritten only in place (top i == bottom i)."""
        writers = {}
        for layer in self.layers:
            for i, blob in enumerate(layer.bottom):
                if blob not in writers:
                    hint = (f" (a {layer.type} layer's labels come from a data layer or an "
                            f"input: declare input: {blob!r} with its shape)"
                            if i == 1 and (layer.type.endswith("Loss") or layer.type == "Accuracy")
                            else "")
                    raise ModelError(f"{self.source}: layer {layer.name!r}: unknown bottom blob "
                                     f"{blob!r} (bottom {i}); no earlier layer produces it{hint}")
            for i, blob in enumerate(layer.top):
                in_place = i < len(layer.bottom) and layer.bottom[i] == blob
                if blob in writers and not in_place:
                    raise ModelError(f"{self.source}: top blob {blob!r} of layer {layer.name!r} "
                                     f"is produced by multiple sources (also by "
                                     f"{writers[blob][-1]!r}) and not in place")
                if list(layer.top).count(blob) > 1:
                    raise ModelError(f"{self.source}: layer {layer.name!r} names top {blob!r} twice")
                writers.setdefault(blob, []).append(layer.name)
        return writers

    def version_name(self, blob, layer_name):
        """The tensor that layer ``layer_name`` writes for ``blob``: the blob name for its last
        writer, ``<blob>@<layer>`` for earlier (later rewritten in place) versions."""
        return blob if self.writers[blob][-1] == layer_name else f"{blob}@{layer_name}"

    def unique(self, name):
        candidate, k = name, 1
        while candidate in self.names:
            candidate, k = f"{name}~{k}", k + 1
        self.names.add(candidate)
        return candidate

    def add_initializer(self, name, array):
        name = self.unique(name)
        self.initializers[name] = array
        return name

    # -- conversion --

    def run(self):
        self.blob_order = []
        available = []
        phase_name = _phase_name(self.state)
        for param in self.layers:
            layer = LayerWriter(self, param)
            top_shapes = LAYER_CONVERTERS[param.type](layer)
            if len(top_shapes) != len(layer.tops):
                layer.fail(f"produces {len(top_shapes)} blobs but names {len(layer.tops)} tops")
            for blob, tensor, shape in zip(param.top, layer.tops, top_shapes):
                if any(d <= 0 for d in shape):
                    layer.fail(f"top {blob!r} would have shape {tuple(shape)}")
                if blob not in self.first:
                    self.first[blob] = tensor
                    self.blob_order.append(blob)
                self.current[blob] = tensor
                self.shapes[blob] = tuple(int(d) for d in shape)
            available = [b for b in available if b not in param.bottom]
            available += [t for t in param.top if t not in available]
            if phase_name == "TRAIN" and param.type == "Dropout":
                warnings.warn(f"{self.source}: layer {param.name!r}: Caffe drops units at random "
                              "in phase TRAIN; converted as the TEST-phase identity", stacklevel=3)
            self.layers_meta.append({
                "name": param.name, "type": param.type,
                "loss_weight": self._loss_weights(param),
                "bottoms": list(param.bottom), "tops": list(param.top),
                "params": layer.params, "param_shapes": layer.param_shapes,
                "nodes": layer.nodes, "derived": layer.derived,
                "lr_mult": [param.param[i].lr_mult if i < len(param.param) else 1.0
                            for i in range(len(layer.params))],
                "propagate_down": list(param.propagate_down),
            })
        self.outputs = sorted(set(available))   # Caffe keeps available blobs in a std::set
        self.weights.warn()

    def _loss_weights(self, param):
        """Caffe's loss weight of each top: as given (once per top), else 1 for a loss layer's
        first top (LossLayer::LayerSetUp) and 0 elsewhere."""
        weights = list(param.loss_weight)
        if weights and len(weights) != len(param.top):
            raise ModelError(f"{self.source}: layer {param.name!r}: loss_weight must be "
                             f"unspecified or given once per top blob ({len(param.top)}), got "
                             f"{len(weights)}")
        if not weights:
            weights = [1.0 if param.type.endswith("Loss") and i == 0 else 0.0
                       for i in range(len(param.top))]
        return [float(w) for w in weights]

    def _batch(self):
        """The declared batch and whether it becomes the symbolic "N"."""
        if not self.inputs:
            return None, False
        declared = self.inputs[0][2][0] if self.inputs[0][2] else None
        return declared, declared is not None and self.batch_fixed_by is None

    def model(self) -> onnx.ModelProto:
        declared, symbolic = self._batch()

        def value_info(tensor, shape, batch_axis):
            # with a symbolic batch every converted layer keeps axis 0 as the batch (the ones
            # that mix it into other axes fix the batch instead)
            dims = list(shape)
            if batch_axis and dims:
                dims[0] = BATCH_DIM
            return helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, dims)

        graph_inputs = [value_info(tensor, shape, symbolic and shape and shape[0] == declared)
                        for _, tensor, shape in self.inputs]
        graph_inputs += [value_info(tensor, shape, False) for _, tensor, shape, _ in self.sources]
        graph_outputs = [value_info(self.current[b], self.shapes[b], symbolic)
                         for b in self.outputs]
        initializers = [numpy_helper.from_array(np.asarray(array, order="C"), name)
                        for name, array in self.initializers.items()]
        graph = helper.make_graph(self.nodes, self.net_param.name or "caffe_net", graph_inputs,
                                  graph_outputs, initializer=initializers)
        # the producer name converted files have always carried (the module was caffe_import)
        model = make_model(graph, OPSET, producer="caffe_port.caffe_import")
        model.doc_string = f"Converted from Caffe net {self.net_param.name!r} ({self.source})"
        meta = {
            "name": self.net_param.name,
            "phase": _phase_name(self.state),
            "inputs": [blob for blob, _, _ in self.inputs],
            "input_tensors": [tensor for _, tensor, _ in self.inputs],
            "outputs": self.outputs,
            "sources": [{"blob": blob, "tensor": tensor, "shape": list(shape),
                         "filler": caffe_io.prototxt_text(filler)}
                        for blob, tensor, shape, filler in self.sources],
            "layers": self.layers_meta,
            "blobs": {blob: {"data": self.current[blob], "diff": self.first[blob],
                             "shape": list(self.shapes[blob])} for blob in self.blob_order},
            "force_backward": bool(self.net_param.force_backward),
            "debug_info": bool(self.net_param.debug_info),
            "batch": {"declared": declared, "symbolic": symbolic,
                      "dim_param": BATCH_DIM if symbolic else None,
                      "fixed_by": self.batch_fixed_by},
        }
        model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
        return model


