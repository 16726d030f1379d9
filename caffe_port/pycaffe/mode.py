"""Caffe's global state as pycaffe sets it: the mode (``caffe.set_mode_cpu()``,
``set_mode_gpu()``, ``set_device(i)``), the random generator (``caffe.set_random_seed``), and
the pycaffe shell's once-per-process warnings.

As in Caffe, the mode is global: every net runs its next forward or backward on the device the
mode names, whenever the net was made (a net made with ``device=`` keeps that device).
"""
from __future__ import annotations

import warnings

import numpy as np

from caffe_port.runtime import cuda_available

_mode = {"device": "cpu", "gpu_id": 0}   # Caffe starts in CPU mode
_random = {"generator": None}            # Caffe seeds itself when no seed is set
_warned_once = set()


def warn_once(key, message, stacklevel=3):
    """warnings.warn(message) the first time ``key`` is seen in this process."""
    if key not in _warned_once:
        _warned_once.add(key)
        warnings.warn(message, stacklevel=stacklevel + 1)


def set_mode_cpu():
    """Every net runs on the CPU from its next pass on."""
    _mode["device"] = "cpu"


def set_mode_gpu():
    """Every net runs on CUDA (ONNX Runtime's CUDA provider, the Numba CUDA backward) from its
    next pass on; without a usable GPU they keep running on the CPU, as this call warns."""
    _mode["device"] = "cuda"
    if not cuda_available():
        warn_once("no_gpu", "caffe.set_mode_gpu(): no usable CUDA device or ONNX Runtime CUDA "
                  "provider; nets run on the CPU", stacklevel=2)


def set_device(device_id):
    """Choose the GPU that GPU mode uses (CUDA device ``device_id``), for every net's next pass."""
    device_id = int(device_id)
    if device_id < 0:
        raise ValueError(f"caffe.set_device({device_id}): device ids start at 0")
    _mode["gpu_id"] = device_id


def engine_device():
    """The device the engines run on under the current mode ("cpu", "cuda" or "cuda:i")."""
    if _mode["device"] == "cpu" or not cuda_available():
        return "cpu"
    return f"cuda:{_mode['gpu_id']}" if _mode["gpu_id"] else "cuda"


def set_random_seed(seed):
    """Seed the generator Caffe's random fillers draw from (DummyData, params no caffemodel
    holds): nets made afterwards, and DummyData refills, repeat for the same seed."""
    _random["generator"] = np.random.default_rng(int(seed))


def random_generator():
    """The shell's generator (unseeded until ``set_random_seed``, as Caffe seeds itself)."""
    if _random["generator"] is None:
        _random["generator"] = np.random.default_rng()
    return _random["generator"]
