"""The GPU path: the forward in ONNX Runtime's CUDA provider with IOBinding, the backward in Numba's
CUDA target, the activations staying on the device in between.

    Net(..., device="cuda")                       forward: ORT CUDA, outputs bound to the device
        → GpuBackward.forward                     the tensors the backward reads stay there as
                                                  OrtValues, seen as Numba device arrays in place
        → GpuBackward.walk                        walker.walk's loop over kernels.cuda's registry:
                                                  diffs are device arrays from layer to layer

Only the user-visible results cross to the host: the outputs and blobs the Net hands back after a
forward, and the diffs ``keep`` names after a backward. What else copies, and when:

* the injected top diffs (host arrays the user gave) are uploaded once per backward;
* a layer whose op has no CUDA kernel runs its CPU kernel on host copies (``host_fallbacks``
  counts them; every op of the CPU registry has a CUDA kernel today);
* ``debug_info`` hands the observer host copies of each layer's diffs;
* graphs that only run one image at a time (Runtime.per_sample) run through Runtime.run on the
  host and their kept tensors are uploaded;
* with ``device="cpu", backward_device="cuda"`` the forward's kept tensors are uploaded (that
  combination is what lets the simulator test this path without a GPU);
* a blob whose data the Net has handed out as a numpy array (an output, a blob read through
  ``net.blobs``, every blob under keep="all" or debug_info) is read back from that array, which
  the user may have changed, and uploaded again for the backward that reads it.

The graph's constants reach the kernels as host arrays (the kernel contract) and are copied to the
device once (kernels.cuda.device.resident); ``forget`` drops the copies after net surgery.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from caffe_port.errors import DeviceError, ModelError
from caffe_port.kernels import REGISTRY

BACKWARD_DEVICES = (None, "cpu", "cuda")


def _device_module():
    from caffe_port.kernels.cuda import device
    return device


def numba_cuda_available() -> bool:
    """Numba's CUDA target imports and sees a device (or runs as the simulator)."""
    try:
        return _device_module().available()
    except Exception:           # numba-cuda missing or broken: no GPU backward
        return False


def attach(runtime, backward_device=None):
    """The GpuBackward for a Net whose runtime is ``runtime``, or None for the CPU walker.

    backward_device: None follows the runtime (the GPU when the forward runs on CUDA and Numba sees
    the device, else the CPU), "cpu" always the CPU walker, "cuda" the GPU or a DeviceError.
    """
    if backward_device not in BACKWARD_DEVICES:
        raise DeviceError(f"unknown backward_device {backward_device!r}; choose cpu or cuda")
    if backward_device == "cpu":
        return None
    on_cuda = runtime.device.startswith("cuda")
    if backward_device is None:
        return GpuBackward(runtime) if on_cuda and numba_cuda_available() else None
    if not numba_cuda_available():
        raise DeviceError("backward_device='cuda' was asked for but Numba's CUDA target sees no GPU "
                          "(pip install 'caffe_port[gpu]' on a machine with one); use backward_device='cpu'")
    return GpuBackward(runtime)


class GpuBackward:
    """Device-resident activations of the last forward, and the backward walk over them."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.graph = runtime.graph
        self.index = int(runtime.device.partition(":")[2] or 0) if runtime.device.startswith("cuda") else 0
        _device_module().select(self.index)
        self.device_data = {}           # blob -> Numba device array (or OrtValue until first read)
        self.host_fallbacks = Counter()  # op type -> layers run on the CPU kernel

    # --- forward ---------------------------------------------------------------------------------

    def forward(self, feeds, fetch, host=(), start=0, end=None):
        """Run the forward (nodes start..end, fed ``feeds``), keep every fetched tensor on the
        device, and return {name: numpy array} for the names in ``host``."""
        fetch = list(dict.fromkeys(fetch))
        runtime = self.runtime
        batch = max((v.shape[0] for v in feeds.values() if getattr(v, "ndim", 0) > 0), default=1)
        outputs = None
        if not (start == 0 and runtime.per_sample and batch > 1):
            try:
                outputs = self._bound_run(feeds, fetch, start, end)
            except Exception as e:
                if start != 0 or batch == 1:
                    raise ModelError(f"ONNX Runtime failed: {_first_line(e)}") from None
            if outputs is not None and start == 0 and batch > 1 and any(
                    len(v.shape()) == 0 or v.shape()[0] != batch
                    for name, v in outputs.items() if name in self.graph.outputs):
                runtime.per_sample = True        # the graph folds the batch away: one image at a time
                outputs = None
        if outputs is None:
            # one image at a time, stacked on the host by the runtime; the kept tensors go up once
            values = runtime.run(feeds, fetch) if start == 0 else runtime.run_range(start, end, feeds, fetch)
            if start == 0:
                self.device_data = {}
            self.device_data.update(values)
            return {name: values[name] for name in fetch if name in host}
        if start == 0:
            self.device_data = {}
        self.device_data.update(outputs)
        return {name: self.host_copy(name) for name in fetch if name in host}

    def _bound_run(self, feeds, fetch, start, end):
        """One session run with IOBinding: inputs from the host, outputs left where ORT computed
        them (the GPU under the CUDA provider). Returns {name: OrtValue}."""
        runtime = self.runtime
        sess = runtime.session(fetch) if start == 0 else runtime.session(fetch, start, end, list(feeds))
        binding = sess.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(value))
        kind = "cuda" if runtime.device.startswith("cuda") else "cpu"
        for name in fetch:
            binding.bind_output(name, kind, self.index)
        sess.run_with_iobinding(binding)
        return dict(zip(fetch, binding.get_outputs()))

    def shapes(self):
        """Shapes of the device-resident tensors."""
        return {name: tuple(_shape(v)) for name, v in self.device_data.items()}

    def host_copy(self, name):
        """A numpy copy of a device-resident tensor."""
        value = self.device_data[name]
        if isinstance(value, np.ndarray):
            return value
        if _is_ortvalue(value) and value.device_name().lower() == "cpu":
            return np.array(value.numpy())     # a copy, as from a GPU: the user may write into it
        return _device_module().to_host(self._on_device(name))

    def clear(self):
        self.device_data = {}

    def forget(self, constants):
        """Net surgery changed these constant arrays: drop their device copies."""
        _device_module().forget(constants)

    def _on_device(self, name):
        """The tensor as a Numba device array (wrapping an OrtValue in place, uploading a host array)."""
        value = self.device_data[name]
        device = _device_module()
        if not device.is_device_array(value):
            value = device.as_device(value)
            self.device_data[name] = value
        return value

    # --- backward --------------------------------------------------------------------------------

    def _value(self, name, data, cache):
        """What a kernel gets for tensor ``name``: constants and integer tensors as host arrays,
        float runtime tensors as device arrays (the device-resident one when there is one)."""
        graph = self.graph
        if not name:
            return None
        if name in graph.constants:
            return graph.constants[name]
        if name in cache:
            return cache[name]
        device = _device_module()
        if data.get(name) is not None:
            # a host copy the Net holds is the blob's value: it went to the user, who may have
            # written into it (Caffe's blobs are writable); it goes up again, once per walk
            value = device.as_device(data[name])
        elif name in self.device_data:
            value = self._on_device(name)
        else:
            return None
        if not graph.is_float(name) or not np.issubdtype(value.dtype, np.floating):
            value = device.to_host(value)        # shapes, axes, pads: read on the host
        cache[name] = value
        return value

    def walk(self, nodes, data, injected, shapes, rule="backprop", keep=(), observer=None):
        """walker.walk on the device: same arguments and result ({name: host numpy diff} for the
        names in ``keep`` that a diff reached); ``data`` is the Net's host values (inputs, outputs,
        blobs handed out), which win over the device-resident copies."""
        from caffe_port.kernels.cuda import registry
        device = _device_module()
        graph = self.graph
        written = {i for node in nodes for i in node.inputs if i}
        diffs = {name: device.upload(d, np.float32) for name, d in injected.items() if name not in written}
        owned = set()                   # accumulators this walk allocated: safe to add into in place
        keep = set(keep)
        cache = {}
        for node in reversed(nodes):
            top_diff = [diffs.get(o) if o else None for o in node.outputs]
            if all(d is None for d in top_diff) or not graph.needs_backward(node):
                continue
            op = REGISTRY[node.op_type]
            propagate_down = graph.propagate_down[node.name]
            reads = set(op.bottoms_read(propagate_down))
            bottom_data = [self._value(i, data, cache)
                           if (k in reads or i in graph.constants or not graph.is_float(i)) else None
                           for k, i in enumerate(node.inputs)]
            top_data = [self._value(o, data, cache) if j in op.tops else None for j, o in enumerate(node.outputs)]
            attrs = graph.node_attrs(node)
            attrs.update(rule=rule, propagate_down=propagate_down,
                         bottom_shapes=tuple(shapes.get(i) for i in node.inputs),
                         top_shapes=tuple(shapes.get(o) for o in node.outputs))
            backward = registry.backward(node.op_type)
            if backward is None:
                bottom_diff = self._on_host(op, top_diff, bottom_data, top_data, attrs)
                self.host_fallbacks[node.op_type] += 1
            else:
                bottom_diff = backward(top_diff, bottom_data, top_data, attrs)
            if observer is not None:
                observer(node, [None if d is None else device.to_host(d) for d in top_diff],
                         [None if d is None else device.to_host(d) for d in bottom_diff])
            for name in node.outputs:
                if name not in keep:
                    diffs.pop(name, None)
            for name, d in zip(node.inputs, bottom_diff):
                if d is None or not name or name in graph.constants:
                    continue
                if name not in diffs:
                    diffs[name] = d
                elif name in owned:
                    device.accumulate(diffs[name], d)
                else:                   # never add into memory a kernel may share (a reshaped top diff)
                    diffs[name] = device.add(diffs[name], d)
                    owned.add(name)
        return {name: device.to_host(diffs[name]) for name in keep if name in diffs}

    @staticmethod
    def _on_host(op, top_diff, bottom_data, top_data, attrs):
        """A layer without a CUDA kernel: its CPU kernel on host copies, the diffs uploaded again."""
        device = _device_module()
        host = [[None if v is None else device.to_host(v) for v in values]
                for values in (top_diff, bottom_data, top_data)]
        return [None if d is None else device.upload(np.asarray(d))
                for d in op.backward(host[0], host[1], host[2], attrs)]


def _is_ortvalue(value):
    return type(value).__name__ == "OrtValue"


def _shape(value):
    return value.shape() if _is_ortvalue(value) else value.shape


def _first_line(e):
    text = str(e).strip()
    return next((line.strip()[:300] for line in text.splitlines() if line.strip()), type(e).__name__)
