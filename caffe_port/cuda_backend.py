"""The CUDA backend: the forward in ONNX Runtime's CUDA provider with IOBinding, the backward in
Numba's CUDA target, the activations staying on the device in between.

    Net(..., device="cuda")                     forward: ORT CUDA, outputs bound to the device
        → CudaBackend.forward                   the tensors the backward reads stay there as
                                                OrtValues, seen as Numba device arrays in place
        → walker.walk(…, CudaBackend, …)        the one walk; diffs are device arrays from layer
                                                to layer, kernels from caffe_port.kernels.cuda

Only the user-visible results cross to the host: the outputs and blobs the Net hands back after a
forward, and the diffs ``keep`` names after a backward. What else copies, and when:

* the injected top diffs (host arrays the user gave) are uploaded once per backward;
* a layer whose op has no CUDA kernel runs its CPU kernel on host copies (``host_fallbacks``
  counts them);
* ``debug_info`` hands the observer host copies of each layer's diffs;
* graphs that only run one image at a time (Runtime.per_sample) run on the host and their kept
  tensors are uploaded when a kernel reads them;
* with ``device="cpu", backward_device="cuda"`` the forward's kept tensors are uploaded (that
  combination is what lets the simulator test this backend without a GPU);
* a blob whose data the Net has handed out as a numpy array (an output, a blob read through
  ``net.blobs``, every blob under keep="all" or debug_info) is read back from that array, which
  the user may have changed, and uploaded again for the backward that reads it.

The graph's constants reach the kernels as host arrays (the kernel contract) and are copied to the
device once (kernels.cuda.device.resident); ``forget`` drops the copies after net surgery.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from caffe_port.kernels import registry
from caffe_port.kernels.cuda import device


def available() -> bool:
    """Numba's CUDA target sees a device (or runs as the simulator)."""
    return device.available()


class CudaBackend:
    """Device-resident activations of the last forward, and device diffs in the walk."""

    name = "cuda"

    def __init__(self, runtime):
        self.runtime = runtime
        self.graph = runtime.graph
        self.index = int(runtime.device.partition(":")[2] or 0) if runtime.device.startswith("cuda") else 0
        device.select(self.index)
        self.kept = {}                    # blob -> Numba device array (or OrtValue until first read)
        self.host_fallbacks = Counter()   # op type -> layers run on the CPU kernel

    # --- forward ---------------------------------------------------------------------------------

    def forward(self, feeds, fetch, host=(), start=0, end=None, out=None):
        """The outputs stay on the device; ``out`` (the Net's host blob memory) is not bound: the
        Net copies the returned host arrays into it."""
        if start == 0:     # let the last pass's tensors go first: holding both would double the peak
            self.kept = {}
        values = self.runtime.run(feeds, fetch, start, end, on_device=True)
        self.kept.update(values)
        return {name: self.host_copy(name) for name in values if name in host}

    @staticmethod
    def buffer(name, shape, dtype):
        """Kept tensors live in device memory ONNX Runtime allocates: no host array."""
        return None

    def has(self, name):
        return name in self.kept

    def host_copy(self, name):
        """A numpy copy of a kept tensor (the user may write into it)."""
        value = self.kept[name]
        if isinstance(value, np.ndarray):   # a per-sample forward ran on the host
            return value
        if _is_ortvalue(value) and value.device_name().lower() == "cpu":
            return np.array(value.numpy())
        return device.to_host(self._on_device(name))

    def shapes(self):
        return {name: tuple(_shape(v)) for name, v in self.kept.items()}

    def clear(self):
        self.kept = {}

    def forget(self, constants):
        """Net surgery changed these constant arrays: drop their device copies."""
        device.forget(constants)

    def _on_device(self, name):
        """The kept tensor as a Numba device array (wrapping an OrtValue in place, uploading a host array)."""
        value = self.kept[name]
        if not device.is_device_array(value):
            value = device.as_device(value)
            self.kept[name] = value
        return value

    # --- backward --------------------------------------------------------------------------------

    def values(self, data):
        return _DeviceValues(self, data)

    @staticmethod
    def diff_memory(graph, nodes, injected, shapes, keep, in_place):
        """The device kernels allocate their diffs (Numba's memory manager pools them)."""
        return {}

    def backward(self, op_type, top_diff, bottom_data, top_data, attrs, controls):
        op = registry.REGISTRY[op_type]
        kernel = op.cuda_backward()
        if kernel is not None:
            return registry.call(kernel, top_diff, bottom_data, top_data, attrs, **controls)
        # no CUDA kernel for this op: its CPU kernel on host copies, the diffs uploaded again
        self.host_fallbacks[op_type] += 1
        host = [[None if v is None else device.to_host(v) for v in values]
                for values in (top_diff, bottom_data, top_data)]
        return [None if d is None else device.upload(np.asarray(d))
                for d in op.backward(host[0], host[1], host[2], attrs, **controls)]

    @staticmethod
    def upload(diff):
        return device.upload(diff, np.float32)

    @staticmethod
    def add(a, b):
        return device.add(a, b)

    @staticmethod
    def accumulate(acc, d):
        return device.accumulate(acc, d)

    @staticmethod
    def to_host(d):
        return None if d is None else device.to_host(d)

    @staticmethod
    def shares_memory(a, b):
        return device.shares_memory(a, b)


class _DeviceValues:
    """name -> what a kernel gets: constants and integer tensors as host arrays, float runtime
    tensors as device arrays (the kept one, or the Net's host copy uploaded: it went to the user,
    who may have written into it; once per walk)."""

    def __init__(self, backend, data):
        self.backend = backend
        self.graph = backend.graph
        self.data = data
        self.cache = {}

    def get(self, name):
        graph = self.graph
        if not name:
            return None
        if name in graph.constants:
            return graph.constants[name]
        if name in self.cache:
            return self.cache[name]
        if self.data.get(name) is not None:
            value = device.as_device(self.data[name])
        elif self.backend.has(name):
            value = self.backend._on_device(name)
        else:
            return None
        if not graph.is_float(name) or not np.issubdtype(value.dtype, np.floating):
            value = device.to_host(value)        # shapes, axes, pads: read on the host
        self.cache[name] = value
        return value


def _is_ortvalue(value):
    return type(value).__name__ == "OrtValue"


def _shape(value):
    return value.shape() if _is_ortvalue(value) else value.shape
