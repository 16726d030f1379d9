"""caffe_port.kernels: the reverse-mode layer library, one file per layer kind.

The contract every kernel file follows (Caffe's vocabulary, cs231n's pairing):

    <name>_forward(bottom_data, attrs) -> top_data
    <name>_backward(top_diff, bottom_data, top_data, attrs) -> bottom_diff

* ``bottom_data``: list, one entry per ONNX input of the node, in order (Caffe's ``bottom``).
  Each is a numpy array of shape ``(N, ...)``, or ``None`` where the runtime did not keep that
  tensor because the backward does not read it (the registry says which ones it reads).
  Constant inputs (weights, biases, shapes, clip bounds) are always given.
* ``top_data``: list, one entry per ONNX output (Caffe's ``top``), ``None`` where not kept.
* ``top_diff``: list, one entry per output: an array of shape ``(K, *top_shape)``, or ``None``
  where no diff reaches that output (treat as zeros). The leading ``K`` axis stacks K diffs
  that share one forward pass (K classes of one image): masks, switches and activations are
  computed once and applied to all K.
* returns ``bottom_diff``: list, one entry per input: ``(K, *bottom_shape)`` arrays, or ``None``
  for inputs that take no diff (``attrs["propagate_down"][i]`` is False: weights, shapes).
* ``attrs``: the node's ONNX attributes by name (ints, floats, lists, strings, numpy arrays),
  plus ``opset`` (the default-domain opset of the model), ``rule`` ("backprop", "deconvnet",
  "guided"; only the ReLU family reads it), ``propagate_down`` (list of bool per input),
  ``bottom_shapes`` and ``top_shapes`` (tuples, without the K axis).

Forward functions exist for checking (float64 finite differences, ONNX Runtime parity) and for
teaching; the real forward pass runs in ONNX Runtime.
"""
from .registry import REGISTRY, Op, lookup

__all__ = ["REGISTRY", "Op", "lookup"]
