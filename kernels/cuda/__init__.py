"""caffe_port.kernels.cuda: the backward kernels on a CUDA device (Numba's CUDA target), one file
per layer kind mirroring the CPU files of caffe_port.kernels.

There is no second op table: ``REGISTRY[op].cuda_backward()`` finds ``<name>_backward`` in the file
of this package named like the op's CPU file, and an op without one runs its CPU kernel on host
copies (caffe_port/cuda_backend.py). The contract is the CPU one (kernels/registry.py), with
device arrays:

* ``top_diff`` entries and every returned ``bottom_diff`` are Numba CUDA device arrays of shape
  ``(K, *shape)`` (or None), float32 unless the data are float64.
* ``bottom_data`` / ``top_data``: float runtime tensors as device arrays; the graph's constants
  (weights, biases, slopes, statistics) and integer tensors (shapes, axes, pads) as host numpy
  arrays, exactly as on the CPU — a kernel takes a device copy of a constant through
  ``device.resident``, which makes it once. Tensors the registry does not list as read are None.
* A returned diff may share memory with ``top_diff`` (a reshape, a pass-through, an unsummed
  broadcast): the walk never adds into a diff it did not allocate, and ``in_place`` is offered
  only where no other diff shares the memory.
* Attributes, errors and geometry come from the CPU kernel files' own functions, so both sides
  agree on every window, pad and axis.

Nothing is imported here: importing any of these files imports numba.cuda (set
NUMBA_ENABLE_CUDASIM=1 before that to simulate).
"""
