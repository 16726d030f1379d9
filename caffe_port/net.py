"""``caffe_port.Net``: pycaffe's Net, over an ONNX graph.

    net = Net("model.onnx")                      # or bytes, an onnx.ModelProto, a deploy.prototxt
    net.forward(data=image_batch)                # ONNX Runtime, keeping what the backward needs
    net.blobs["fc8"].diff[0, 281] = 1            # inject a diff anywhere …
    grads = net.backward(start="fc8")            # … and walk back from that layer
    grads = net.backward(fc8=onehot, rule="guided")   # or give it directly

Blob names are ONNX tensor names; layer names are node names (a blob name also names the layer
that produces it). Diffs follow Caffe: a layer overwrites its bottoms' diffs, shared bottoms sum
their consumers' diffs, and a diff written into a blob that a walked layer also writes is
overwritten (so, as in Caffe, writing only ``fc8``'s diff and calling ``backward()`` through a
Softmax output gives zeros; ``backward(start='fc8')`` is the fix, and caffe_port warns once).

A diff of shape ``(K, *blob.shape)`` is a stack of K diffs that share the forward pass (K classes
of one image): one backward, K results.

Unlike Caffe, data diffs are computed without ``force_backward``, and weight diffs never are.
"""
from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Mapping

import numpy as np

from caffe_port import backend, layout
from caffe_port.errors import BlobError, CaffePortError, InputError, ShapeError
from caffe_port.graph import Graph
from caffe_port.kernels import REGISTRY
from caffe_port.kernels.jit import announce_compilation
from caffe_port.kernels.relu import RULES
from caffe_port.onnx_import import load_model
from caffe_port.runtime import Runtime, check_feed
from caffe_port.walker import walk

log = logging.getLogger("caffe_port.debug_info")
KEEP = ("backward", "all")
# which inputs of a layer are its learnable parameters, for net.params (others: float constants)
PARAM_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,),
                "BatchNormalization": (1, 2, 3, 4), "PRelu": (1,), "InstanceNormalization": (1, 2)}


class Blob:
    """A named blob with ``data`` (forward value) and ``diff`` (its gradient), as in pycaffe."""

    def __init__(self, net, name):
        self._net = net
        self.name = name

    @property
    def data(self) -> np.ndarray:
        return self._net._blob_data(self.name)

    @data.setter
    def data(self, value):
        self.data[...] = fit_array(value, self.data.shape, self.name, "data")

    @property
    def diff(self) -> np.ndarray:
        return self._net._blob_diff(self.name)

    @diff.setter
    def diff(self, value):
        self._net._set_diff(self.name, value)

    @property
    def shape(self):
        return tuple(self._net._blob_shape(self.name))

    @property
    def count(self):
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def num(self):
        return self.shape[0]

    @property
    def channels(self):
        return self.shape[1]

    @property
    def height(self):
        return self.shape[2]

    @property
    def width(self):
        return self.shape[3]

    def reshape(self, *shape):
        self._net._reshape_input(self.name, tuple(int(s) for s in shape))

    def __repr__(self):
        try:
            shape = self.shape
        except CaffePortError:
            shape = "?"
        return f"<Blob {self.name!r} {shape}>"


class ParamBlob(Blob):
    """A weight blob: its data is the array the backward kernels read; writing into it is net surgery."""

    def __init__(self, net, name):
        super().__init__(net, name)

    @property
    def data(self):
        return self._net._param_data(self.name)

    @data.setter
    def data(self, value):
        self.data[...] = fit_array(value, self.data.shape, self.name, "data")

    @property
    def diff(self):
        raise BlobError(f"caffe_port computes no weight diffs (param {self.name!r}); only blob diffs")

    @property
    def shape(self):
        return tuple(self._net.graph.constants[self.name].shape)


class _Blobs(Mapping):
    def __init__(self, net):
        self._net = net
        self._cache = {}

    def _names(self):
        return self._net._blob_names

    def __getitem__(self, name):
        if name not in self._net._blob_set:
            raise BlobError(f"unknown blob {name!r}" + suggest(name, self._names()))
        if name not in self._cache:
            self._cache[name] = Blob(self._net, name)
        return self._cache[name]

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())

    def __contains__(self, name):
        return name in self._net._blob_set


class _Params(Mapping):
    def __init__(self, net):
        self._net = net
        self._layers = {}
        graph = net.graph
        for node in graph.nodes:
            positions = PARAM_INPUTS.get(node.op_type)
            names = [name for k, name in enumerate(node.inputs)
                     if name in graph.constants and np.issubdtype(graph.constants[name].dtype, np.floating)
                     and (k in positions if positions is not None else (k > 0 and graph.constants[name].size > 1))]
            if names:
                self._layers[node.name] = [ParamBlob(net, n) for n in names]

    def __getitem__(self, layer):
        if layer not in self._layers:
            raise BlobError(f"layer {layer!r} has no parameters" if layer in self._net.graph.by_name
                            else f"unknown layer {layer!r}" + suggest(layer, list(self._layers)))
        return self._layers[layer]

    def __iter__(self):
        return iter(self._layers)

    def __len__(self):
        return len(self._layers)


class Net:
    """A network: ONNX Runtime forward, Numba backward, pycaffe's blobs/params/forward/backward.

    model:   path to .onnx / .prototxt, bytes, an onnx.ModelProto, or "efficientnet-lite0"
    weights: the .caffemodel when ``model`` is a Caffe prototxt; for an ONNX model whose tensors
             are stored outside it (``model.onnx.data``), their folder (default: the .onnx file's,
             or the current one for bytes and a ModelProto)
    device:  "auto" (CUDA when ONNX Runtime sees a GPU), "cpu", "cuda" or "cuda:N"
    keep:    "backward" keeps only the blobs the backward reads (others are recomputed on access);
             "all" keeps every blob's data and diff, as Caffe does
    threads: ONNX Runtime and Numba thread count (default: all cores)
    backward_device: None (the GPU when the forward runs on CUDA and Numba sees the device, else the
             CPU), "cpu", or "cuda" (the Numba CUDA kernels on device-resident activations; see
             caffe_port/backend.py and cuda_backend.py)
    debug_info: log, per layer and in Caffe's words, the mean |data| of each top in forward and the
             mean |diff| of each bottom in backward (plus the pass fraction of ReLU-family layers);
             the same records are in ``net.trace``
    """

    def __init__(self, model, weights=None, device="auto", *, keep="backward", threads=None,
                 debug_info=False, backward_device=None):
        if keep not in KEEP:
            raise InputError(f"keep must be one of {', '.join(KEEP)}, not {keep!r}")
        self.graph = Graph(load_model(model, weights))
        self.graph.check_supported()
        announce_compilation()
        self.runtime = Runtime(self.graph, device, threads)
        self.device = self.runtime.device
        self.backend = backend.choose(self.runtime, backward_device)
        self.threads = threads
        self.keep = keep
        self.inputs = list(self.graph.inputs)
        self.outputs = list(self.graph.outputs)
        self._blob_names = self.graph.blob_names()
        self._blob_set = set(self._blob_names)
        self._kept = self.graph.kept_tensors()
        self._data = {}              # blob -> forward value (inputs, fetched, recomputed on demand)
        self._diffs = {}             # blob -> diff, as the user or the last backward left it
        self._unkept_diffs = set()   # blobs the last backward reached but did not keep
        self._last_results = set()   # diffs the last backward wrote (not the user's injections)
        self._feeds = None           # the inputs of the last forward, for recomputing blobs
        self._shapes = {}
        self._param_snapshots = {}   # param -> copy taken when handed out, to notice net surgery
        self._warned = set()
        self.debug_info = bool(debug_info)
        self.trace = []              # debug_info records of the last forward and backward
        if self.debug_info:
            _ensure_debug_handler()
        self.blobs = _Blobs(self)
        self.params = _Params(self)
        for name in self.inputs:
            shape = self.graph.input_shape(name, batch=1)
            if None not in shape:
                self._data[name] = np.zeros(shape, dtype=self.graph.input_dtype(name))
        self._update_shapes()

    # --- forward ---------------------------------------------------------------------------------

    def forward(self, blobs=None, start=None, end=None, **inputs):
        """Run the forward pass; returns {output: data} (plus the blobs named in ``blobs``).

        inputs: arrays for the input blobs (default: their current ``data``).
        start/end: layer (or blob) names bounding the part of the net to run, as in pycaffe.
        """
        for name, value in inputs.items():
            if name not in self.inputs:
                raise BlobError(f"{name!r} is not an input of this net (inputs: {', '.join(self.inputs)})")
            self._data[name] = check_feed(self.graph, name, value)
        feeds = {}
        for name in self.inputs:
            if name not in self._data:
                raise ShapeError(f"input {name!r} has no data yet: pass {name}=array to forward()")
            feeds[name] = check_feed(self.graph, name, self._data[name])
        self._check_params()
        self._update_shapes({k: v.shape for k, v in feeds.items()})
        self._check_memory(stack=0)
        extra = [b for b in (blobs or []) if self._known(b)]
        start_idx = self.graph.resolve_node(start).index if start is not None else 0
        end_idx = self.graph.resolve_node(end).index if end is not None else len(self.graph.nodes) - 1
        if start_idx > end_idx:
            raise InputError(f"forward start {start!r} comes after end {end!r}")
        in_range = {o for node in self.graph.nodes[start_idx:end_idx + 1] for o in node.outputs if o}
        tops_at_end = set(self.graph.nodes[end_idx].outputs) if end is not None else set()
        shown = (set(self.outputs) | set(extra) | tops_at_end |
                 (self._blob_set if self.keep == "all" or self.debug_info else set()))
        fetch = [b for b in self._blob_names if b in (shown | self._kept) and b in in_range]
        if start_idx == 0:
            # let the last pass's tensors go before the new ones arrive: holding both would double
            # the peak, and ONNX Runtime's arena, which owns them, would grow to fit both for good
            self._data, self._feeds = dict(feeds), feeds
            # the backend keeps what the backward reads where it was computed; what is shown comes back
            values = self.backend.forward(feeds, fetch, host=shown)
        else:
            boundary = self._boundary_inputs(start_idx, end_idx)
            sub_feeds = {b: self._blob_data(b) for b in boundary}
            values = self.backend.forward(sub_feeds, fetch, host=shown, start=start_idx, end=end_idx)
            for name in fetch:           # host copies of the recomputed blobs are stale now
                self._data.pop(name, None)
        self._data.update(values)
        if self.runtime.per_sample:
            # images ran one at a time and were stacked: every blob is N of its batch-1 self
            n = next(iter(feeds.values())).shape[0]
            one = self.graph.shapes({k: (1,) + tuple(v.shape[1:]) for k, v in feeds.items()})
            self._shapes = {k: (None if v is None else ((v[0] * n,) + tuple(v[1:]) if v else v))
                            for k, v in one.items()}
        self._shapes.update(self.backend.shapes())   # the truth beats inference
        self._unkept_diffs.clear()
        if self.debug_info:
            self._trace_forward(self.graph.nodes[start_idx:end_idx + 1])
        if end is None:
            result = {o: self._data[o] for o in self.outputs if o in self._data}
        else:
            result = {o: self._data[o] for o in self.graph.nodes[end_idx].outputs if o in self._data}
        for b in extra:
            result[b] = self._blob_data(b)
        return result

    def _boundary_inputs(self, start_idx, end_idx):
        produced = set()
        needed = []
        for node in self.graph.nodes[start_idx:end_idx + 1]:
            for i in node.inputs:
                if i and i not in produced and i not in self.graph.constants and i not in needed:
                    needed.append(i)
            produced.update(node.outputs)
        return needed

    # --- backward --------------------------------------------------------------------------------

    def backward(self, diffs=None, start=None, end=None, rule="backprop", **top_diffs):
        """Walk back from ``start`` (default: the last layer, or the layer producing the blobs given
        as keyword diffs) to ``end``; returns {input blob: diff} plus the blobs named in ``diffs``.

        top_diffs: blob name -> diff of shape blob.shape, or (K, *blob.shape) for K stacked diffs.
        rule: "backprop" (gradients), "deconvnet" or "guided" (the ReLU rules of §4 / Springenberg).
        """
        if rule not in RULES:
            raise InputError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
        if self._feeds is None:
            raise CaffePortError("backward() needs a forward() first")
        diffs = list(diffs or [])
        for name in diffs:
            self._known(name)
        for name, value in top_diffs.items():
            self._known(name)
            self._set_diff(name, value)
        if start is not None:
            start_idx = self.graph.resolve_node(start).index
        elif top_diffs and any(n in self.graph.producer for n in top_diffs):
            start_idx = max(self.graph.producer[n].index for n in top_diffs if n in self.graph.producer)
        else:
            start_idx = len(self.graph.nodes) - 1
        end_idx = self.graph.resolve_node(end).index if end is not None else 0
        nodes = self.graph.nodes[end_idx:start_idx + 1]

        # the diffs that matter: tops of walked layers that no walked layer writes (Caffe reads them
        # from the blobs as they are); anything else stored is overwritten or out of reach
        written = {i for node in nodes for i in node.inputs if i}
        self._warn_overwritten(written, top_diffs, start)
        tops = {o for node in nodes for o in node.outputs if o and o not in written}
        injected = {name: d for name, d in self._diffs.items()
                    if name in tops and d is not None and np.any(d)}
        stacked = any(self._is_stacked(name, d) for name, d in injected.items())
        k = max((d.shape[0] for name, d in injected.items() if self._is_stacked(name, d)), default=1)
        injected = {name: self._as_stack(name, d, k) for name, d in injected.items()}

        keep = set(self.inputs) | set(diffs) | (self._blob_set if self.keep == "all" else set())
        self._check_memory(stack=k)
        self._ensure_kept(nodes)
        observer = None
        if self.debug_info:
            self.trace = [r for r in self.trace if r["phase"] == "forward"]
            observer = self._trace_backward(rule)
        result = walk(self.graph, nodes, self.backend, self._data, injected, self._shapes, rule=rule,
                      keep=keep, observer=observer)
        reached = {i for node in nodes for i in node.inputs if i and i not in self.graph.constants}
        for name in reached:
            d = result.get(name)
            if d is None and name in keep:
                d = np.zeros((k,) + tuple(self._shapes[name]), dtype=np.float32)
            if d is not None:
                self._diffs[name] = d if stacked else d[0]
            else:
                self._diffs.pop(name, None)
        self._unkept_diffs = reached - keep
        self._last_results = {n for n in reached if n in self._diffs}
        return {name: self._diffs[name] for name in list(self.inputs) + diffs if name in self._diffs}

    def _ensure_kept(self, nodes):
        """Every tensor the walked layers read is at hand: recompute any the backend lost (a
        forward over part of the net keeps only that part's)."""
        walked = {name for node in nodes for name in node.inputs + node.outputs if name}
        for name in self._kept & walked:
            if name not in self._data and not self.backend.has(name):
                self._blob_data(name)

    def _warn_overwritten(self, written, top_diffs, start):
        if top_diffs or start is not None:
            return
        lost = [n for n, d in self._diffs.items() if n in written and n not in self.inputs
                and n not in self._last_results and d is not None and np.any(d)]
        if lost and "overwritten" not in self._warned:
            self._warned.add("overwritten")
            warnings.warn(f"the diff written into {lost[0]!r} is overwritten by the layers above it "
                          f"(as in Caffe, backward() starts at the last layer); to back-propagate from "
                          f"it, call backward(start={self.graph.producer[lost[0]].name!r})",
                          stacklevel=3)

    def _is_stacked(self, name, d):
        return d.ndim == len(self._shapes[name]) + 1

    def _as_stack(self, name, d, k):
        if not self._is_stacked(name, d):
            d = d[None]
        if d.shape[0] != k:
            d = np.broadcast_to(d, (k,) + d.shape[1:])
        return np.ascontiguousarray(d, dtype=np.float32)

    # --- blobs -----------------------------------------------------------------------------------

    def _known(self, name):
        if name not in self._blob_set:
            raise BlobError(f"unknown blob {name!r}" + suggest(name, self._blob_names))
        return True

    def _update_shapes(self, input_shapes=None):
        if input_shapes is None:
            input_shapes = {k: self._data[k].shape for k in self.inputs if k in self._data}
            if len(input_shapes) != len(self.inputs):
                return
        self._shapes = self.graph.shapes(input_shapes)

    def _blob_shape(self, name):
        self._known(name)
        if name in self._data:
            return self._data[name].shape
        shape = self._shapes.get(name)
        if shape is None:
            return self._blob_data(name).shape
        return shape

    def _blob_data(self, name):
        self._known(name)
        if name in self._data:
            return self._data[name]
        if name in self.inputs:
            raise ShapeError(f"input {name!r} has symbolic dimensions: reshape it or pass it to forward()")
        if self._feeds is None:
            # before any forward, like a freshly allocated Caffe blob
            shape = self._shapes.get(name)
            if shape is None:
                raise ShapeError(f"the shape of blob {name!r} is not known before a forward pass")
            self._data[name] = np.zeros(shape, dtype=np.float32)
            return self._data[name]
        if self.backend.has(name):
            self._data[name] = self.backend.host_copy(name)    # kept by the last forward
            return self._data[name]
        # not kept by the last forward: recompute it from the same inputs
        self._data[name] = self.runtime.run(self._feeds, [name])[name]
        self._shapes[name] = tuple(self._data[name].shape)
        return self._data[name]

    def _reshape_input(self, name, shape):
        if name not in self.inputs:
            raise BlobError(f"only input blobs can be reshaped, and {name!r} is not one")
        self._data[name] = check_feed(self.graph, name, np.zeros(shape, dtype=self.graph.input_dtype(name)))
        # as Caffe reallocates: every other blob's data and diff belong to the old shape
        self._data = {k: v for k, v in self._data.items() if k in self.inputs}
        self.backend.clear()
        self._diffs.clear()
        self._unkept_diffs.clear()
        self._feeds = None
        self._update_shapes()

    def reshape(self):
        """Propagate the input blobs' shapes (after ``net.blobs['data'].reshape(...)``)."""
        self._update_shapes()

    def _blob_diff(self, name):
        self._known(name)
        if name in self._unkept_diffs:
            raise BlobError(f"the diff of {name!r} was not kept by the last backward: pass "
                            f"diffs=[{name!r}] to backward(), or create the Net with keep='all'")
        if self._diffs.get(name) is None:
            self._diffs[name] = np.zeros(self._blob_shape(name), dtype=np.float32)
        return self._diffs[name]

    def _set_diff(self, name, value):
        shape = tuple(self._blob_shape(name))
        value = np.asarray(value, dtype=np.float32)
        if value.ndim == len(shape) + 1 and value.shape[1:] == shape:
            self._diffs[name] = np.array(value)                      # a stack of K diffs
        else:
            self._diffs[name] = np.array(fit_array(value, shape, name, "diff"))
        self._unkept_diffs.discard(name)
        self._last_results.discard(name)

    # --- memory ----------------------------------------------------------------------------------

    def memory_estimate(self, stack=1):
        """Bytes a pass needs beyond the loaded model, from the graph's shapes: the kept blobs,
        plus (forward) ORT's two largest live tensors, or (backward, ``stack`` = K diffs) a top
        diff, a bottom diff and an accumulator of the largest blob per stacked diff."""
        sizes = {name: 4 * int(np.prod(shape)) for name, shape in self._shapes.items()
                 if shape is not None and name in self.graph.differentiable}
        if not sizes:
            return 0
        kept = sum(sizes.get(name, 0) for name in self._kept)
        largest = max(sizes.values())
        transient = 2 * largest if stack == 0 else 3 * stack * largest
        return kept + transient

    def _check_memory(self, stack):
        need = self.memory_estimate(stack)
        have = available_memory()
        if have is not None and need > have:
            what = "forward" if stack == 0 else f"backward of {stack} stacked diff(s)"
            raise CaffePortError(f"this {what} needs about {need / 2**30:.1f} GiB (kept blobs and "
                                 f"diffs) but only {have / 2**30:.1f} GiB of memory is available: use "
                                 f"a smaller batch{' or fewer stacked classes' if stack > 1 else ''}")

    # --- params (net surgery) --------------------------------------------------------------------

    def _param_data(self, name):
        value = self.graph.constants[name]
        if name not in self._param_snapshots:
            self._param_snapshots[name] = value.copy()
        return value

    def _check_params(self):
        changed = [n for n, snap in self._param_snapshots.items()
                   if not np.array_equal(snap, self.graph.constants[n])]
        if changed:
            self.runtime.invalidate(changed)
            self.backend.forget([self.graph.constants[n] for n in changed])
            for n in changed:
                self._param_snapshots[n] = self.graph.constants[n].copy()

    # --- debug_info ------------------------------------------------------------------------------

    def _trace_forward(self, nodes):
        self.trace = []
        for node in nodes:
            for top in node.outputs:
                if top and top in self._data and self.graph.is_float(top):
                    value = float(np.mean(np.abs(self._data[top]))) if self._data[top].size else 0.0
                    self.trace.append({"phase": "forward", "layer": node.name, "type": node.op_type,
                                       "blob": top, "what": "data", "mean_abs": value})
                    log.info("    [Forward] Layer %s, top blob %s data: %g", node.name, top, value)

    def _trace_backward(self, rule):
        def observe(node, top_diff, bottom_diff):
            relu = REGISTRY[node.op_type].relu_family
            for name, d in zip(node.inputs, bottom_diff):
                if d is None or not name:
                    continue
                value = float(np.mean(np.abs(d))) if d.size else 0.0
                record = {"phase": "backward", "layer": node.name, "type": node.op_type, "blob": name,
                          "what": "diff", "mean_abs": value, "rule": rule}
                if relu:
                    arriving = int(np.count_nonzero(top_diff[0]))
                    record["pass_fraction"] = (int(np.count_nonzero(d)) / arriving) if arriving else 0.0
                self.trace.append(record)
                log.info("    [Backward] Layer %s, bottom blob %s diff: %g", node.name, name, value)
        return observe

    # --- conveniences ----------------------------------------------------------------------------

    @property
    def layers(self):
        return list(self.graph.nodes)

    @property
    def score_blob(self) -> str:
        """The pre-softmax class scores (Caffe's fc8) the methods differentiate by default: the
        input of the Softmax producing an output, else the first output. With ``inputs`` and
        ``outputs`` it is what the pycaffe recipe needs:
        ``net.blobs[net.score_blob].diff[0, c] = 1; net.backward(start=net.score_blob)``."""
        return self.graph.score_blob()

    @property
    def input_layout(self):
        """"NCHW" or "NHWC": the layout of the image input (the only 4-D input), as found from the
        graph (caffe_port.layout); None without one image input or where it cannot be told."""
        images = [n for n in self.inputs if len(self.graph.input_shape(n)) == 4]
        try:
            return layout.input_layout(self.graph, images[0]).layout if len(images) == 1 else None
        except InputError:
            return None

    def __repr__(self):
        return (f"<caffe_port.Net {len(self.graph.nodes)} layers, inputs {self.inputs}, "
                f"outputs {self.outputs}, device {self.device}>")


def available_memory():
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _ensure_debug_handler():
    """debug_info prints to stderr as Caffe's glog does, unless the application set up logging."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    if log.level == logging.NOTSET or log.level > logging.INFO:
        log.setLevel(logging.INFO)


def fit_array(value, shape, name, what="array"):
    """Accept an array of the blob's shape, or of the same size (Caffe code reshapes freely)."""
    value = np.asarray(value, dtype=np.float32)
    if value.shape == tuple(shape):
        return value
    if value.size == int(np.prod(shape)):
        return value.reshape(shape)
    try:
        return np.broadcast_to(value, shape)
    except ValueError:
        raise ShapeError(f"a {what} of shape {value.shape} does not fit blob {name!r} of shape "
                         f"{tuple(shape)}") from None


def suggest(name, names):
    import difflib
    close = difflib.get_close_matches(str(name), [str(n) for n in names], n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
