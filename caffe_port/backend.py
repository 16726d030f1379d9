"""Backends: where the forward's kept tensors and the backward's diffs live, and which kernel runs.

One walk (caffe_port/walker.py) serves every device, as Caffe's ``Net::Backward`` serves
``Backward_cpu`` and ``Backward_gpu``; what differs is a backend, the one object the Net holds:

    forward(feeds, fetch, host, start, end, out)
                                              run ONNX Runtime, keep the fetched tensors where they
                                              were computed, return host arrays for ``host``
                                              (written into the Net's ``out`` arrays where the
                                              backend can)
    buffer(name, shape, dtype)                host memory for a fetched tensor the Net does not
                                              hold, or None where the backend keeps it elsewhere
    has(name) / host_copy(name)               a kept tensor, and a numpy copy of it for the user
    values(data)                              the per-walk view: name -> array as the kernels take it
    diff_memory(graph, nodes, …)              memory for a walk's diffs, laid out before it runs
                                              ({} where the kernels allocate their own)
    backward(op_type, top_diff, …, controls)  run the op's backward kernel (or a faster route)
    upload / add / accumulate / to_host       diffs: in, summed, out
    shares_memory(a, b)                       whether a diff is private (in-place ReLU)
    forget(constants) / clear()               net surgery; a reshape

``CpuBackend`` keeps numpy arrays and runs the kernels of caffe_port.kernels, with the convolution
and fully connected input diffs through ONNX Runtime (caffe_port/ort_conv.py, ort_linear.py,
measured faster), and the walk's diffs in one buffer planned from the graph (caffe_port/diff_pool.py);
``CudaBackend``
(caffe_port/cuda_backend.py) keeps device arrays. A new backend is one class with these methods.
"""
from __future__ import annotations

import numpy as np

from caffe_port import diff_pool
from caffe_port.errors import DeviceError
from caffe_port.kernels import conv, gemm, matmul, registry
from caffe_port.ort_conv import ConvInputDiff
from caffe_port.ort_linear import LinearInputDiff

BACKWARD_DEVICES = (None, "cpu", "cuda")


class CpuBackend:
    """Host numpy arrays; the library kernels, and ONNX Runtime's for the conv and fc input diffs."""

    name = "cpu"

    def __init__(self, runtime):
        self.runtime = runtime
        self.graph = runtime.graph
        self.kept = {}                       # blob -> numpy array of the last forward
        self.conv_input_diff = ConvInputDiff()
        self.linear_input_diff = LinearInputDiff()
        self.plans = diff_pool.Plans()       # the walks' diff layouts, by shapes
        # kernel -> a faster route to the same result (tests/caffe_port/test_ort_conv.py, test_ort_linear.py)
        self.routes = {conv.conv_backward: self.conv_input_diff.backward,
                       gemm.gemm_backward: self.linear_input_diff.gemm_backward,
                       matmul.matmul_backward: self.linear_input_diff.matmul_backward}

    # --- forward ---------------------------------------------------------------------------------

    def forward(self, feeds, fetch, host=(), start=0, end=None, out=None):
        """``out``: host arrays (the Net's blob memory, and this backend's own from ``buffer``)
        that ONNX Runtime writes the fetched tensors into, from one pass to the next."""
        if start == 0:     # tensors no longer fetched go before the new ones arrive
            self.kept = {name: value for name, value in self.kept.items() if name in fetch}
        values = self.runtime.run(feeds, fetch, start, end, out=out)
        self.kept.update(values)
        return {name: values[name] for name in values if name in host}

    def buffer(self, name, shape, dtype):
        """The array kept for ``name`` last time, when it has this shape: the next forward writes
        into it instead of allocating (one array per kept tensor, as Caffe's blobs)."""
        value = self.kept.get(name)
        if value is not None and value.shape == tuple(shape) and value.dtype == dtype:
            return value
        self.kept.pop(name, None)   # another shape: let it go before the new one arrives
        return np.empty(shape, dtype)

    def has(self, name):
        return name in self.kept

    def host_copy(self, name):
        return self.kept[name]               # already on the host: the array itself

    def shapes(self):
        return {name: tuple(v.shape) for name, v in self.kept.items()}

    def clear(self):
        self.kept = {}

    def forget(self, constants):
        for weight in constants:             # the routes' sessions hold copies of the weights
            self.conv_input_diff.forget(weight)
            self.linear_input_diff.forget(weight)

    # --- backward --------------------------------------------------------------------------------

    def values(self, data):
        return _Values(self.graph, lambda name: data.get(name, self.kept.get(name)))

    def kernel(self, op_type):
        """The function that runs ``op_type``'s backward here: the library kernel or its route."""
        kernel = registry.REGISTRY[op_type].backward_kernel
        return self.routes.get(kernel, kernel)

    def diff_memory(self, graph, nodes, injected, shapes, keep, in_place):
        """node name -> [array or None per input]: where each layer of the walk writes its bottom
        diffs: one buffer for the walk, laid out from the graph (caffe_port/diff_pool.py)."""
        layout = self.plans.get(graph, nodes, injected, shapes, keep,
                                lambda op_type: registry.controls_of(self.kernel(op_type)), in_place)
        return diff_pool.memory(layout)

    def backward(self, op_type, top_diff, bottom_data, top_data, attrs, controls):
        return registry.call(self.kernel(op_type), top_diff, bottom_data, top_data, attrs, **controls)

    @staticmethod
    def upload(diff):
        return diff

    @staticmethod
    def add(a, b):
        return a + b

    @staticmethod
    def accumulate(acc, d):
        acc += d
        return acc

    @staticmethod
    def to_host(d):
        return d

    @staticmethod
    def shares_memory(a, b):
        return np.may_share_memory(a, b)


class _Values:
    """name -> the array a kernel gets: constants from the graph (host arrays, the kernel
    contract), runtime tensors from ``lookup``."""

    def __init__(self, graph, lookup):
        self.graph = graph
        self.lookup = lookup

    def get(self, name):
        if not name:
            return None
        if name in self.graph.constants:
            return self.graph.constants[name]
        return self.lookup(name)


def choose(runtime, backward_device=None):
    """The backend for a Net whose forward runs on ``runtime``.

    backward_device: None follows the runtime (CUDA when the forward runs there and Numba sees the
    device, else the CPU); "cpu" always the CPU; "cuda" the GPU or a DeviceError.
    """
    if backward_device not in BACKWARD_DEVICES:
        raise DeviceError(f"unknown backward_device {backward_device!r}; choose cpu or cuda")
    if backward_device == "cpu" or (backward_device is None and not runtime.device.startswith("cuda")):
        return CpuBackend(runtime)
    cuda_backend = _cuda_backend()
    if backward_device is None:
        return cuda_backend.CudaBackend(runtime) if cuda_backend else CpuBackend(runtime)
    if cuda_backend is None:
        raise DeviceError("backward_device='cuda' was asked for but Numba's CUDA target sees no GPU "
                          "(pip install 'caffe_port[gpu]' on a machine with one); use backward_device='cpu'")
    return cuda_backend.CudaBackend(runtime)


def _cuda_backend():
    """caffe_port.cuda_backend when Numba's CUDA target imports and sees a device (or runs as the
    simulator), else None. numba.cuda is imported only when a GPU is wanted."""
    try:
        from caffe_port import cuda_backend
    except Exception:           # numba-cuda missing or broken: no GPU backward
        return None
    return cuda_backend if cuda_backend.available() else None
