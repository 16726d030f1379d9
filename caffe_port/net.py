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

Blob memory is Caffe's: ``net.blobs[name].data`` and ``.diff`` are arrays the Net owns, the same
arrays from one forward or backward to the next until a reshape; the forward writes into them
(ONNX Runtime's outputs bound to them), so a view taken of a blob sees the next pass's values.
With keep="backward" a blob the backward does not read is computed when first asked for, and
every later forward refreshes it. Stacked diffs are new arrays each backward.

Unlike Caffe, data diffs are computed without ``force_backward``, and weight diffs never are.
"""
from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from collections.abc import Mapping

import numba   # loaded already by the kernels; asked here which threading layer it chose
import numpy as np
from onnx import TensorProto, helper

from caffe_port import backend, layout
from caffe_port.blob import Blob, ParamBlob, fit_array, suggest
from caffe_port.debug_info import backward_observer, ensure_handler, forward_records
from caffe_port.errors import BlobError, CaffePortError, InputError, ModelError, ShapeError
from caffe_port.graph import Graph
from caffe_port.kernels.jit import announce_compilation
from caffe_port.kernels.relu import RULES
from caffe_port.memory import MemoryLimitError, available_memory, gib, nbytes
from caffe_port.onnx_import import load_model
from caffe_port.runtime import Runtime, check_feed
from caffe_port.walker import walk

# Numba's workqueue threading layer (what Numba falls back to without OpenMP or TBB) aborts the
# process when two threads run parallel kernels at once; with the others, walks run side by side
WORKQUEUE_WALKS = threading.Lock()

KEEP = ("backward", "all")
# which inputs of a layer are its learnable parameters, for net.params (others: float constants)
PARAM_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,),
                "BatchNormalization": (1, 2, 3, 4), "PRelu": (1,), "InstanceNormalization": (1, 2)}


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
                self._layers[node.name] = [ParamBlob(net, n, f"net.params[{node.name!r}][{i}]")
                                           for i, n in enumerate(names)]

    def __getitem__(self, layer):
        if layer not in self._layers:
            raise BlobError(f"layer {layer!r} has no parameters" if layer in self._net.graph.by_name
                            else f"unknown layer {layer!r}" + suggest(layer, list(self._layers)))
        return self._layers[layer]

    def __iter__(self):
        return iter(self._layers)

    def __len__(self):
        return len(self._layers)


def one_thread_at_a_time(method):
    """A Net holds one pass's blobs and diffs: a second thread entering forward() or backward()
    while another runs would mix two passes, so it is refused. Two Nets in two threads give
    the same results as each alone (tests/caffe_port/test_isolation.py)."""
    @functools.wraps(method)
    def exclusive(net, *args, **kwargs):
        if not net._in_use.acquire(blocking=False):
            raise CaffePortError(f"this Net is in use by another thread ({method.__name__}() "
                                 "refused): a Net is not thread-safe, give each thread its own Net")
        try:
            return method(net, *args, **kwargs)
        finally:
            net._in_use.release()
    return exclusive


def _kernel_guard():
    """The process-wide lock around a walk when Numba's layer is workqueue (or not chosen yet:
    the first parallel kernel chooses it), else nothing."""
    try:
        layer = numba.threading_layer()
    except ValueError:              # no parallel kernel has run in this process yet
        layer = "workqueue"
    return WORKQUEUE_WALKS if layer == "workqueue" else contextlib.nullcontext()


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
        self._data = {}              # blob -> its data memory (inputs, fetched, computed on demand)
        self._shown = set()          # blobs whose data arrays the user may hold: every forward refreshes them
        self._diffs = {}             # blob -> diff, as the user or the last backward left it
        self._diffs_shown = set()    # blobs whose diff arrays the user may hold: every backward keeps them
        self._unkept_diffs = set()   # blobs the last backward reached but did not keep
        self._last_results = set()   # diffs the last backward wrote (not the user's injections)
        self._feeds = None           # the inputs of the last forward, for recomputing blobs
        self._shapes = {}
        self._param_snapshots = {}   # param -> copy taken when handed out, to notice net surgery
        self._warned = set()
        self.debug_info = bool(debug_info)
        self._in_use = threading.RLock()    # re-entrant: a pass may read blobs through forward()
        self.trace = []              # debug_info records of the last forward and backward
        if self.debug_info:
            ensure_handler()
        self.blobs = _Blobs(self)
        self.params = _Params(self)
        check_finite_params(self.graph, self.params)
        declared = {name: self.graph.input_shape(name, batch=1) for name in self.inputs}
        if all(None not in shape for shape in declared.values()):
            # the input blobs are allocated here, as Caffe's Net::Init does: refused first when
            # a forward at the declared shapes could not fit (an input_dim of 100000)
            self._update_shapes(declared)
            self._check_memory(stack=0)
        for name, shape in declared.items():
            if None not in shape:
                self._data[name] = np.zeros(shape, dtype=self.graph.input_dtype(name))

    def set_device(self, device, backward_device=None):
        """Run the next passes on ``device`` (as Caffe's global mode moves every net): a new
        runtime and backend for the same graph. The blobs' memory, their diffs and the params
        stay; tensors the last forward kept where it ran are recomputed when a backward reads
        them."""
        runtime = Runtime(self.graph, device, self.threads)
        self.runtime, self.device = runtime, runtime.device
        self.backend = backend.choose(runtime, backward_device)

    # --- forward ---------------------------------------------------------------------------------

    @one_thread_at_a_time
    def forward(self, blobs=None, start=None, end=None, **inputs):
        """Run the forward pass; returns {output: data} (plus the blobs named in ``blobs``).

        inputs: arrays for the input blobs (default: their current ``data``).
        start/end: layer (or blob) names bounding the part of the net to run, as in pycaffe.
        """
        for name, value in inputs.items():
            if name not in self.inputs:
                raise BlobError(f"{name!r} is not an input of this net (inputs: {', '.join(self.inputs)})")
            self._write(name, check_feed(self.graph, name, value))
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
        # what this forward returns the user holds from now on: later forwards refresh it
        self._shown.update(set(self.outputs) | set(extra) | tops_at_end)
        shown = (self._shown |
                 (self._blob_set if self.keep == "all" or self.debug_info else set()))
        fetch = [b for b in self._blob_names if b in (shown | self._kept) and b in in_range]
        if start_idx == 0:
            self._feeds = feeds
            run_feeds = feeds
        else:
            boundary = self._boundary_inputs(start_idx, end_idx)
            run_feeds = {b: self._blob_data(b) for b in boundary}
        # the backend keeps what the backward reads where it was computed; what is shown comes
        # back, written into the blobs' own memory where the backend can
        values = self.backend.forward(run_feeds, fetch, host=shown, start=start_idx, end=end_idx,
                                      out=self._memory_for(fetch, shown))
        for name, value in values.items():
            self._write(name, value)
        if self.runtime.per_sample:
            # images ran one at a time and were stacked: every blob is N of its batch-1 self
            n = next(iter(feeds.values())).shape[0]
            one = self.graph.shapes({k: (1,) + tuple(v.shape[1:]) for k, v in feeds.items()})
            self._shapes = {k: (None if v is None else ((v[0] * n,) + tuple(v[1:]) if v else v))
                            for k, v in one.items()}
        self._shapes.update(self.backend.shapes())   # the truth beats inference
        self._unkept_diffs.clear()
        if self.debug_info:
            self.trace = forward_records(self.graph, self.graph.nodes[start_idx:end_idx + 1], self._data)
        if end is None:
            result = {o: self._data[o] for o in self.outputs if o in self._data}
        else:
            result = {o: self._data[o] for o in self.graph.nodes[end_idx].outputs if o in self._data}
        for b in extra:
            result[b] = self._blob_data(b)
        return result

    def _memory_for(self, fetch, shown):
        """Where the forward writes each fetched tensor of a known shape: the blob's own array
        (one of that shape is kept, or made) for what is shown, the backend's for the rest."""
        out = {}
        for name in fetch:
            shape = self._shapes.get(name)
            if shape is None:
                continue
            dtype = helper.tensor_dtype_to_np_dtype(self.graph.elem_types.get(name, TensorProto.FLOAT))
            if name in shown:
                current = self._data.get(name)
                if current is None or current.shape != tuple(shape) or current.dtype != dtype:
                    # a reshape: the old memory goes before the new arrives, as Caffe reallocates
                    self._data.pop(name, None)
                    current = np.empty(shape, dtype)
                out[name] = current
            else:
                memory = self.backend.buffer(name, tuple(shape), dtype)
                if memory is not None:
                    out[name] = memory
        return out

    def _write(self, name, value):
        """Make ``value`` the blob's data: written into its array when that has the shape (views
        the user holds see it), else the blob's new memory."""
        current = self._data.get(name)
        if current is value:
            return
        if current is not None and current.shape == value.shape and current.dtype == value.dtype:
            np.copyto(current, value)
        else:
            self._data[name] = np.array(value) if name in self.inputs else value

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

    @one_thread_at_a_time
    def backward(self, diffs=None, start=None, end=None, rule="backprop", *, also=(), **top_diffs):
        """Walk back from ``start`` (default: the last layer, or the layer producing the blobs given
        as keyword diffs) to ``end``; returns {input blob: diff} plus the blobs named in ``diffs``.
        Before any forward it reads the blobs' zeros, as Caffe's freshly allocated blobs.

        top_diffs: blob name -> diff of shape blob.shape, or (K, *blob.shape) for K stacked diffs.
        rule: "backprop" (gradients), "deconvnet" or "guided" (the ReLU rules of §4 / Springenberg).
        also: names of layers above ``start`` to walk as well, from the diffs their tops hold
            (the pycaffe shell's rendering of Caffe's split layers: a blob's diff sums every
            consumer's, those outside the walk included).
        """
        if rule not in RULES:
            raise InputError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
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
        if also:
            extra = {self.graph.resolve_node(name).index for name in also} - set(range(end_idx, start_idx + 1))
            nodes = nodes + [self.graph.nodes[i] for i in sorted(extra)]

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

        keep = set(self.inputs) | set(diffs) | self._diffs_shown | \
            (self._blob_set if self.keep == "all" else set())
        self._check_memory(stack=k)
        self._ensure_kept(nodes)
        observer = None
        if self.debug_info:
            self.trace = [r for r in self.trace if r["phase"] == "forward"]
            observer = backward_observer(self.trace, rule)
        with _kernel_guard():
            result = walk(self.graph, nodes, self.backend, self._data, injected, self._shapes,
                          rule=rule, keep=keep, observer=observer)
        reached = {i for node in nodes for i in node.inputs if i and i not in self.graph.constants}
        for name in reached:
            d = result.get(name)
            if stacked:
                if d is None and name in keep:
                    d = np.zeros((k,) + tuple(self._shapes[name]), dtype=np.float32)
                self._diffs[name] = d
                if d is None:
                    del self._diffs[name]
            elif name in keep:
                # the blob's diff memory takes the result (views the user holds see it)
                self._store_diff(name, 0 if d is None else d[0])
            else:
                self._diffs.pop(name, None)
        self._unkept_diffs = reached - keep
        self._last_results = {n for n in reached if n in self._diffs}
        return {name: self._diffs[name] for name in list(self.inputs) + diffs if name in self._diffs}

    def _store_diff(self, name, value):
        """Write ``value`` into the blob's diff array (made for its shape when it has none, or a
        stacked one)."""
        shape = tuple(self._blob_shape(name))
        current = self._diffs.get(name)
        if current is None or current.shape != shape:
            current = self._diffs[name] = np.empty(shape, np.float32)
        current[...] = value

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
            self._shown.add(name)
            return self._data[name]
        # the user holds it from now on: every later forward refreshes it
        self._shown.add(name)
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
        self._diffs_shown.clear()
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
        if self._diffs[name].shape == tuple(self._blob_shape(name)):
            self._diffs_shown.add(name)     # held by the user: every later backward keeps it
        return self._diffs[name]

    def _set_diff(self, name, value):
        shape = tuple(self._blob_shape(name))
        value = np.asarray(value, dtype=np.float32)
        if value.ndim == len(shape) + 1 and value.shape[1:] == shape:
            self._diffs[name] = np.array(value)                      # a stack of K diffs
        else:
            self._store_diff(name, fit_array(value, shape, name, "diff"))
        self._unkept_diffs.discard(name)
        self._last_results.discard(name)

    # --- memory ----------------------------------------------------------------------------------

    def memory_estimate(self, stack=1):
        """Bytes a pass needs beyond the loaded model, from the graph's shapes: the kept blobs,
        plus (forward) ORT's two largest live tensors, or (backward, ``stack`` = K diffs) a top
        diff, a bottom diff and an accumulator of the largest blob per stacked diff."""
        sizes = {name: nbytes(shape) for name, shape in self._shapes.items()
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
            inputs = ", ".join(f"{name} {tuple(self._shapes[name])}" for name in self.inputs
                               if self._shapes.get(name) is not None)
            raise MemoryLimitError(f"a {what} at input {inputs} needs about {gib(need)} (kept blobs "
                                   f"and diffs) but only {gib(have)} of memory is available: use a "
                                   f"smaller batch or input{' or fewer stacked classes' if stack > 1 else ''}")

    # --- params (net surgery) --------------------------------------------------------------------

    def _param_shape(self, name):
        return self.graph.constants[name].shape

    def _param_data(self, name):
        value = self.graph.constants[name]
        if name not in self._param_snapshots:
            self._param_snapshots[name] = value.copy()
        return value

    def set_params(self, values, watch=False):
        """Net surgery by the Net's owner: {constant name: array of its shape}, taken as the
        param's memory (the param's own array rewritten, or another's to share, as Caffe's
        ShareTrainedLayersWith shares a blob); sessions and routes built from the old values
        are dropped. ``watch``: later writes into the array by others are noticed, as for a
        param handed out (at the cost of a copy to compare with)."""
        old = []
        for name, array in values.items():
            current = self.graph.constants[name]
            if array.shape != current.shape or array.dtype != current.dtype:
                raise ShapeError(f"param {name!r} is {current.dtype}{current.shape}; got "
                                 f"{array.dtype}{array.shape}")
            old.append(current)
            self.graph.constants[name] = array
            if watch or name in self._param_snapshots:
                self._param_snapshots[name] = array.copy()
        self.runtime.invalidate(list(values))
        self.backend.forget(old + list(values.values()))

    def _check_params(self):
        changed = [n for n, snap in self._param_snapshots.items()
                   if not np.array_equal(snap, self.graph.constants[n])]
        if changed:
            self.runtime.invalidate(changed)
            self.backend.forget([self.graph.constants[n] for n in changed])
            for n in changed:
                self._param_snapshots[n] = self.graph.constants[n].copy()

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


def check_finite_params(graph, params):
    """Weights holding NaN or ±inf make every map NaN: refused at load, naming the first."""
    for layer, blobs in params.items():
        for i, blob in enumerate(blobs):
            values = graph.constants[blob.name]
            if not np.all(np.isfinite(values)):
                bad = int(np.count_nonzero(~np.isfinite(values)))
                raise ModelError(f"layer {layer!r}: param {i} ({blob.name!r}) holds {bad} NaN or "
                                 f"infinite value(s) of {values.size}; the weights are damaged")
