"""Blobs as pycaffe shows them: ``data`` and ``diff`` of a named array that a net owns.

One class serves ``caffe_port.Net`` (blobs are ONNX tensors) and ``caffe_port.pycaffe.Net``
(blobs are Caffe's, each perhaps a chain of tensor versions); a blob only names its owner's
storage, through a small protocol the owner implements:

    owner._blob_data(name)            the array of the blob's data (writable: Caffe's are)
    owner._blob_diff(name)            the array of its diff
    owner._set_diff(name, value)      ``blob.diff = value``
    owner._blob_shape(name)           its shape
    owner._reshape_input(name, shape) ``blob.reshape(*shape)`` (input blobs only)

and for a param blob (a layer's weights: writing into ``data`` is net surgery):

    owner._param_data(name), owner._param_shape(name)

``num``, ``channels``, ``height`` and ``width`` are Caffe's LegacyShape: axes a blob does not have
read as 1.
"""
from __future__ import annotations

import difflib

import numpy as np

from caffe_port.errors import BlobError, CaffePortError, ShapeError


class _Dimensions:
    @property
    def count(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def num(self):
        return legacy_dim(self.shape, 0)

    @property
    def channels(self):
        return legacy_dim(self.shape, 1)

    @property
    def height(self):
        return legacy_dim(self.shape, 2)

    @property
    def width(self):
        return legacy_dim(self.shape, 3)


class Blob(_Dimensions):
    """A named blob with ``data`` (forward value) and ``diff`` (its gradient), as in pycaffe."""

    def __init__(self, owner, name):
        self._owner = owner
        self.name = name

    @property
    def data(self) -> np.ndarray:
        return self._owner._blob_data(self.name)

    @data.setter
    def data(self, value):
        target = self.data
        target[...] = fit_array(value, target.shape, self.name, "data")

    @property
    def diff(self) -> np.ndarray:
        return self._owner._blob_diff(self.name)

    @diff.setter
    def diff(self, value):
        self._owner._set_diff(self.name, value)

    @property
    def shape(self):
        return tuple(self._owner._blob_shape(self.name))

    def reshape(self, *shape):
        """Reshape an input blob; ``net.reshape()`` or the next forward propagates the shape."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        self._owner._reshape_input(self.name, tuple(int(d) for d in shape))

    def __repr__(self):
        try:
            shape = self.shape
        except CaffePortError:
            shape = "?"
        return f"<Blob {self.name!r} {shape}>"


class ParamBlob(_Dimensions):
    """A layer's parameter (``net.params[layer][i]``): its data is the array the forward and the
    backward read, so writing into it is net surgery; caffe_port computes no weight diffs."""

    def __init__(self, owner, name, label=None):
        self._owner = owner
        self.name = name                 # the tensor holding it
        self.label = label or name       # how the user reaches it, for messages

    @property
    def data(self) -> np.ndarray:
        return self._owner._param_data(self.name)

    @data.setter
    def data(self, value):
        target = self.data
        target[...] = fit_array(value, target.shape, self.label, "data")

    @property
    def diff(self):
        raise BlobError(f"caffe_port computes no weight diffs ({self.label}); only blob diffs")

    @property
    def shape(self):
        return tuple(self._owner._param_shape(self.name))

    def reshape(self, *shape):
        raise BlobError(f"param blobs keep their layer's shape ({self.label}); change the model instead")

    def __repr__(self):
        return f"<ParamBlob {self.label} {self.shape}>"


def legacy_dim(shape, axis):
    """Caffe's Blob::LegacyShape: axes beyond the blob's read as 1."""
    return int(shape[axis]) if axis < len(shape) else 1


def fit_array(value, shape, name, what="array"):
    """Accept an array of the blob's shape, or of the same size (Caffe code reshapes freely), or
    one that broadcasts to it."""
    value = np.asarray(value, dtype=np.float32)
    if value.shape == tuple(shape):
        return value
    if value.size == int(np.prod(shape)):
        return value.reshape(shape)
    try:
        return np.broadcast_to(value, shape)
    except ValueError:
        raise ShapeError(f"a {what} of shape {value.shape} does not fit blob {name!r} of shape "
                         f"{tuple(shape)}") from None


def suggest(name, names):
    """' (did you mean …?)' with the closest names, or ''."""
    close = difflib.get_close_matches(str(name), [str(n) for n in names], n=3)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
