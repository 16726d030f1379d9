"""Identity and Dropout (inference) backward on the device: bottom_diff = top_diff, the same
device memory (the GPU walker never adds into a diff it did not allocate itself). A Dropout whose
constant training_mode is True is refused, as on the CPU (kernels/identity.py)."""
from caffe_port.kernels.identity import refuse_training

from . import device


def _pass_through(top_diff, pd):
    return [top_diff[0] if pd[0] else None] + [None] * (len(pd) - 1)


def identity_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    return _pass_through(top_diff, propagate_down)


def dropout_backward(top_diff, bottom_data, top_data, attrs, *, propagate_down):
    refuse_training([None] + [device.to_host(b) if b is not None else None for b in bottom_data[1:]])
    return _pass_through(top_diff, propagate_down)
