"""The runtime: one ONNX Runtime session per set of fetched tensors, CUDA when there is a GPU.

The forward pass is ONNX Runtime's own; what the runtime adds is that the session's outputs are
the model outputs *plus* the intermediate tensors the backward reads (the graph says which), so
they come back from a single ``run``. Weights are not serialised into the session: they stay the
numpy arrays the graph holds and reach ONNX Runtime as external initializers, so a session for
another set of outputs costs a graph parse, not a copy of the weights.
"""
from __future__ import annotations

import ctypes
from collections import OrderedDict

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from caffe_port.errors import DeviceError, InputError, ModelError, ShapeError

DEVICES = ("auto", "cpu", "cuda")
MAX_SESSIONS = 4
INLINE_CONSTANT = 1024   # constants up to this many elements stay inside the session's graph
FORWARD_CHUNK_BYTES = 64 << 20   # a large batch runs a few images a call (Runtime._images_per_call)


def cuda_device_count() -> int:
    """CUDA devices the driver sees, asked of libcuda directly: no library-load noise when absent."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    try:
        if lib.cuInit(0) != 0:
            return 0
        count = ctypes.c_int(0)
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    except AttributeError:
        return 0


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers() and cuda_device_count() > 0


def resolve_device(device: str) -> str:
    """"auto" | "cpu" | "cuda" | "cuda:N" → the device to use ("cpu" or "cuda:N" … as given)."""
    kind, _, index = str(device).partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise DeviceError(f"unknown device {device!r}; choose one of auto, cpu, cuda, cuda:N")
    if kind == "auto":
        return "cuda" if cuda_available() else "cpu"
    if kind == "cuda":
        if not cuda_available():
            why = ("onnxruntime has no CUDA provider (install onnxruntime-gpu)"
                   if "CUDAExecutionProvider" not in ort.get_available_providers()
                   else "no CUDA device is visible to the driver")
            raise DeviceError(f"device {device!r} was asked for but {why}; use device='cpu'")
        if index and int(index) >= cuda_device_count():
            raise DeviceError(f"device {device!r}: only {cuda_device_count()} CUDA device(s) visible")
    return device


def device_index(device: str) -> int:
    return int(device.partition(":")[2] or 0)


class Runtime:
    def __init__(self, graph, device: str = "auto", threads: int | None = None):
        self.graph = graph
        self.device = resolve_device(device)
        self.threads = threads
        self._sessions: OrderedDict = OrderedDict()
        self.per_sample = False   # set when the graph hard-codes its batch size
        self._external = {}        # constant name -> OrtValue sharing the numpy array's memory

    # --- sessions --------------------------------------------------------------------------------

    def _session_model(self, outputs, start=0, end=None, inputs=None):
        g = self.graph
        model = onnx.ModelProto()
        model.ir_version = g.model.ir_version
        model.opset_import.extend(g.model.opset_import)
        graph = model.graph
        graph.name = g.model.graph.name or "caffe_port"
        nodes = g.node_protos[start:None if end is None else end + 1]
        graph.node.extend(nodes)
        if inputs is None:
            graph.input.extend(g.input_info[name] for name in g.inputs)
        else:   # a slice of the net: its boundary blobs are the inputs
            graph.input.extend(helper.make_tensor_value_info(name, g.elem_types.get(name, onnx.TensorProto.FLOAT),
                                                             None) for name in inputs)
        for name in outputs:
            elem = g.elem_types.get(name, onnx.TensorProto.FLOAT)
            graph.output.append(helper.make_tensor_value_info(name, elem, None))
        for name, value in self._constants_read(nodes).items():
            if value.size <= INLINE_CONSTANT:
                graph.initializer.append(onnx.numpy_helper.from_array(value, name))
            else:
                stub = onnx.TensorProto()
                stub.name = name
                stub.data_type = helper.np_dtype_to_tensor_dtype(value.dtype)
                stub.dims.extend(value.shape)
                stub.data_location = onnx.TensorProto.EXTERNAL
                entry = stub.external_data.add()
                entry.key, entry.value = "location", "caffe_port-in-memory"
                graph.initializer.append(stub)
        return model

    def _constants_read(self, nodes):
        """The graph's constants that ``nodes`` read: ONNX Runtime refuses an external initializer
        that its graph does not use (a slice of the net reads only its own layers' weights)."""
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
               for node in nodes for a in node.attribute):
            return dict(self.graph.constants)     # a subgraph may read any of them
        read = {name for node in nodes for name in node.input}
        return {name: value for name, value in self.graph.constants.items() if name in read}

    def session(self, outputs, start=0, end=None, inputs=None):
        key = (tuple(sorted(outputs)), start, end, tuple(inputs or ()))
        if key in self._sessions:
            self._sessions.move_to_end(key)
            return self._sessions[key]
        so = ort.SessionOptions()
        so.log_severity_level = 4      # its errors come back as exceptions: one ModelError line
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no memory pattern: it plans one block per input shape and keeps each for good (VGG16 at
        # batch 8 grew 330 MB over seven forwards with it, none without, at the same speed)
        so.enable_mem_pattern = False
        # no arena either: it kept the forward's transient tensors (NCHWc copies of each
        # activation) for good, 370 MB over VGG16's kept 414 at batch 8, under the backward that
        # follows; without it the large ones go back to the system when the forward is done
        so.enable_cpu_mem_arena = False
        if self.threads:
            so.intra_op_num_threads = int(self.threads)
        # idle ORT workers must not spin: the Numba backward needs the same cores right after
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        names, values = [], []
        nodes = self.graph.node_protos[start:None if end is None else end + 1]
        for name, value in self._constants_read(nodes).items():
            if value.size > INLINE_CONSTANT:
                if name not in self._external:
                    self._external[name] = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value))
                names.append(name)
                values.append(self._external[name])
        if names:
            so.add_external_initializers(names, values)
        providers = ["CPUExecutionProvider"]
        if self.device.startswith("cuda"):
            if hasattr(ort, "preload_dlls"):
                try:
                    ort.preload_dlls()
                except Exception:
                    pass
            providers = [("CUDAExecutionProvider", {"device_id": device_index(self.device)}),
                         "CPUExecutionProvider"]
        model = self._session_model(key[0], start, end, inputs)
        try:
            # on the CPU, ONNX Runtime's fallback would retry the same provider after printing
            # "EP Error …" on stdout (into a --json answer): off; the error is ours to report
            sess = ort.InferenceSession(model.SerializeToString(), so, providers=providers,
                                        enable_fallback=int(self.device.startswith("cuda")))
        except Exception as e:
            raise ModelError(f"ONNX Runtime cannot load this model: {_first_line(e)}") from None
        if self.device.startswith("cuda") and "CUDAExecutionProvider" not in sess.get_providers():
            raise DeviceError("ONNX Runtime could not start its CUDA provider (CUDA 12/13 and cuDNN 9 "
                              "libraries are needed: pip install 'onnxruntime-gpu[cuda,cudnn]')")
        self._sessions[key] = sess
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return sess

    def invalidate(self, names=()):
        """Weights changed (net surgery): drop sessions, and the shared buffers of ``names``."""
        self._sessions.clear()
        for name in names:
            self._external.pop(name, None)

    # --- running ---------------------------------------------------------------------------------

    def run(self, feeds: dict, fetch, start=0, end=None, *, on_device=False, out=None) -> dict:
        """{name: value} of the ``fetch`` tensors for these ``feeds``.

        start/end: node indices bounding a slice of the net (``feeds`` are then its boundary
            blobs); start 0 runs the whole graph, which ONNX Runtime prunes to what ``fetch`` needs.
        on_device: bind the outputs where ONNX Runtime computes them and return OrtValues (the
            CUDA backend keeps them on the GPU); otherwise numpy arrays.
        out: {name: C-contiguous host array of the tensor's shape} to write into (a Net's blob
            memory): bound as ONNX Runtime's outputs, so the forward writes there and nothing is
            copied; the returned value is that array. Where the tensor turns out to have another
            shape, a new array is returned instead.

        A graph exported with its batch size baked in (a Reshape to [1, -1] …) fails or folds the
        batch away at batch > 1: it is then run one image at a time, stacked on the host, and
        ``per_sample`` remembers that for later calls.
        """
        fetch = list(dict.fromkeys(fetch))
        out = {} if on_device else {name: a for name, a in (out or {}).items() if name in fetch}
        sliced = start != 0
        sess = self.session(fetch, start, end, list(feeds)) if sliced else self.session(fetch)
        batch = _batch_size(feeds)
        if not sliced and self.per_sample and batch > 1:
            return _written_into(out, self._run_per_sample(sess, feeds, fetch, batch))
        try:
            values = self._bound(sess, feeds, fetch) if on_device else self._host_run(sess, feeds, fetch, out)
        except Exception as e:
            if sliced or batch == 1:
                raise ModelError(f"ONNX Runtime failed: {_first_line(e)}") from None
            try:
                result = self._run_per_sample(sess, feeds, fetch, batch)
            except Exception:
                raise ModelError(f"ONNX Runtime failed: {_first_line(e)}") from None
            self.per_sample = True
            return _written_into(out, result)
        if not sliced and batch > 1 and self._batch_is_free(feeds) and any(
                len(_shape(v)) == 0 or _shape(v)[0] != batch
                for name, v in values.items() if name in self.graph.outputs and _batched(self.graph, name)):
            # the graph folds the batch away (a Reshape to [1, -1] …): one image at a time
            try:
                result = self._run_per_sample(sess, feeds, fetch, batch)
            except Exception as e:    # ONNX Runtime's exception types are its own
                raise ModelError(f"ONNX Runtime failed one image at a time: {_first_line(e)}") from None
            self.per_sample = True
            return _written_into(out, result)
        return values

    def _host_run(self, sess, feeds, fetch, out):
        """One run with numpy results; the ``out`` arrays bound as the outputs they name."""
        if out:
            try:
                step = self._images_per_call(feeds, fetch, out)
                if step is None:
                    return self._bound_into(sess, feeds, fetch, out)
                batch = _batch_size(feeds)
                for i in range(0, batch, step):
                    self._bound_into(sess, {k: v[i:i + step] for k, v in feeds.items()}, fetch,
                                     {k: v[i:i + step] for k, v in out.items()})
                return {name: out[name] for name in fetch}
            except Exception:
                pass    # a shape the caller did not foresee: let ONNX Runtime allocate below
        return _written_into(out, dict(zip(fetch, sess.run(fetch, feeds))))

    def _images_per_call(self, feeds, fetch, out):
        """How many images one call runs when a large batch is split, or None to run it whole.

        ONNX Runtime's transient tensors (the unfetched layer outputs, their NCHWc copies) grow
        with the images in a call: VGG16's forward at batch 8 took 440 MB above its kept blobs in
        one call, 160 MB two images at a time, 83 MB one at a time, all in 1.27–1.39 s. So a batch
        whose fetched tensors (all written into ``out``, each with the batch first) exceed
        FORWARD_CHUNK_BYTES an image runs in calls of as many images as fit, each written
        straight into its rows of ``out``. Only a graph whose batch is symbolic is split: its
        images are independent, so the rows are those of the whole batch."""
        batch = _batch_size(feeds)
        if batch < 2 or any(name not in out or out[name].ndim == 0 or out[name].shape[0] != batch
                            for name in fetch) or \
                any(getattr(v, "ndim", 0) == 0 or v.shape[0] != batch for v in feeds.values()) or \
                not self._batch_is_free(feeds):
            return None
        per_image = sum(out[name].nbytes for name in fetch) // batch
        step = max(1, FORWARD_CHUNK_BYTES // max(1, per_image))
        return step if step < batch else None

    def _bound_into(self, sess, feeds, fetch, out):
        """IOBinding with the ``out`` arrays as output memory (ONNX Runtime writes the forward's
        tensors straight into them); the other outputs come back as new arrays."""
        binding = sess.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in fetch:
            if name in out:
                array = out[name]
                binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
            else:
                binding.bind_output(name, "cpu")
        sess.run_with_iobinding(binding)
        return {name: out[name] if name in out else value.numpy()
                for name, value in zip(fetch, binding.get_outputs())}

    def _batch_is_free(self, feeds):
        """Every input's batch is symbolic: only then can it run one image at a time (a graph
        declaring batch 2 whose Concat on axis 0 gives 4 rows is not folding anything away)."""
        return all(self.graph.input_shape(name, batch=None)[:1] == (None,)
                   for name in feeds if name in self.graph.input_info)

    def _bound(self, sess, feeds, fetch):
        """One run with IOBinding: inputs from the host, outputs left where ONNX Runtime computed
        them (the GPU under the CUDA provider). Returns {name: OrtValue}."""
        binding = sess.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        kind = "cuda" if self.device.startswith("cuda") else "cpu"
        for name in fetch:
            binding.bind_output(name, kind, device_index(self.device) if kind == "cuda" else 0)
        sess.run_with_iobinding(binding)
        return dict(zip(fetch, binding.get_outputs()))

    def _run_per_sample(self, sess, feeds, fetch, batch):
        parts = [sess.run(fetch, {k: v[n:n + 1] for k, v in feeds.items()}) for n in range(batch)]
        return {name: np.concatenate([p[j] for p in parts], axis=0) for j, name in enumerate(fetch)}


def _written_into(out, values):
    """``values`` with each array that fits its ``out`` array copied there (and that returned)."""
    for name, value in values.items():
        target = out.get(name)
        if target is not None and target.shape == value.shape and target.dtype == value.dtype:
            np.copyto(target, value)
            values[name] = target
    return values


def _batched(graph, name):
    """Whether an output should carry the batch: not one the graph declares a scalar (a loss)."""
    declared = graph.static_shape(name)
    return declared is None or len(declared) > 0


def _shape(value):
    """The shape of a numpy array or an OrtValue."""
    return tuple(value.shape()) if callable(getattr(value, "shape", None)) else value.shape


def _batch_size(feeds):
    sizes = {v.shape[0] for v in feeds.values() if getattr(v, "ndim", 0) > 0}
    return max(sizes) if sizes else 1


def _first_line(e):
    text = str(e).strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:300]
    return type(e).__name__


def check_feed(graph, name, value):
    """Cast a feed to the input's dtype and check it against the declared fixed dimensions."""
    expected = graph.input_shape(name, batch=None)
    value = np.ascontiguousarray(value, dtype=graph.input_dtype(name))
    if value.ndim != len(expected) or any(e is not None and e != v for e, v in zip(expected, value.shape)):
        shown = "(" + ", ".join("N" if (k == 0 and e is None) else ("?" if e is None else str(e))
                                for k, e in enumerate(expected)) + ")"
        raise ShapeError(f"input {name!r} expects shape {shown}, got {tuple(value.shape)}")
    if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
        bad = int(np.count_nonzero(~np.isfinite(value)))
        raise InputError(f"input {name!r} holds {bad} NaN or infinite value(s) of {value.size}: "
                         "every map would be NaN")
    return value

