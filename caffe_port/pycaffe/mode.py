"""Caffe's global mode (``caffe.set_mode_cpu()``, ``set_mode_gpu()``, ``set_device(i)``) and the
pycaffe shell's once-per-process warnings."""
from __future__ import annotations

import warnings

from caffe_port.runtime import cuda_available

_mode = {"device": "cpu", "gpu_id": 0}   # Caffe starts in CPU mode
_warned_once = set()


def warn_once(key, message, stacklevel=3):
    """warnings.warn(message) the first time ``key`` is seen in this process."""
    if key not in _warned_once:
        _warned_once.add(key)
        warnings.warn(message, stacklevel=stacklevel + 1)


def set_mode_cpu():
    """Nets created from now on run on the CPU."""
    _mode["device"] = "cpu"


def set_mode_gpu():
    """Nets created from now on run on CUDA (ONNX Runtime's CUDA provider); without a usable GPU
    they run on the CPU, with a warning."""
    _mode["device"] = "cuda"


def set_device(device_id):
    """Choose the GPU. caffe_port's runtime uses the first visible CUDA device: to use another,
    start Python with CUDA_VISIBLE_DEVICES set to it."""
    _mode["gpu_id"] = int(device_id)
    if int(device_id) != 0:
        warn_once("set_device", f"caffe.set_device({int(device_id)}): caffe_port runs on the "
                  f"first visible CUDA device; set CUDA_VISIBLE_DEVICES={int(device_id)} before "
                  "starting Python to use that GPU", stacklevel=2)


def engine_device():
    """The device a new net's engine runs on under the current mode."""
    if _mode["device"] == "cpu":
        return "cpu"
    if cuda_available():
        return "cuda"
    warn_once("no_gpu", "caffe.set_mode_gpu(): no usable CUDA device or ONNX Runtime CUDA "
              "provider; running on the CPU", stacklevel=3)
    return "cpu"
