"""``caffe.io``: pycaffe's image loading, resizing, cropping, Transformer and proto conversions.

Semantics are Caffe's (its python/caffe/io.py), reimplemented over numpy and OpenCV so that no
scikit-image or scipy is needed at run time:

* ``load_image``: float32 RGB in [0, 1] (8-bit values / 255, 16-bit / 65535), grey repeated to
  3 channels when ``color``, alpha dropped, (H, W, 1) intensity when not ``color``
  (Y = 0.2125 R + 0.7154 G + 0.0721 B, scikit-image's weights).
* ``resize_image``: 1- and 3-channel images go the scikit-image way Caffe took (scale to [0, 1],
  resize with pixel centres at +0.5 and zeros outside the image, scale back); other channel
  counts go the ``scipy.ndimage.zoom`` way (corner pixels aligned). Orders 0 and 1 are computed
  here; orders 2-5 are handed to scikit-image / scipy when installed. No anti-aliasing filter:
  that is what Caffe computed with the scikit-image of its day (< 0.15, before
  ``anti_aliasing`` became the default).
* ``Transformer.preprocess``: float32 → resize to the blob's H × W → transpose → channel swap →
  ``*= raw_scale`` → ``-= mean`` → ``*= input_scale`` (Caffe's order); ``deprocess`` undoes it in
  reverse. Unlike Caffe, ``preprocess`` never writes into the caller's array.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from caffe_port import image_file
from caffe_port.errors import InputError, ShapeError
from caffe_port.pycaffe.proto import caffe_pb2

# scikit-image's float64 image, its channel-reordered copy and the float32 result, per RGB pixel
FLOAT64_COPIES = 2 * 3 * 8 + 3 * 4
GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])   # scikit-image's rgb2gray (ITU-R BT.709)


# --- image I/O ------------------------------------------------------------------------------------

def load_image(filename, color=True):
    """An image file (path, or a binary file-like object, read whole from its start as
    scikit-image's imread reads it) as float32 in [0, 1]: (H, W, 3) RGB when ``color``, else
    (H, W, 1) intensity."""
    data, where = _read_image_bytes(filename)
    try:
        # Caffe's pixels as stored (its scikit-image reader ignored EXIF orientation), and no
        # header trusted for an allocation before the memory for it is known to be there
        decoded = image_file.decode(data, where, upright=False,
                                    working_bytes=FLOAT64_COPIES) if data else None
    except InputError:
        decoded = None
    if decoded is None:
        raise InputError(f"cannot read image {where}: not an image format OpenCV can decode")
    img = _as_float(decoded, where)
    if img.ndim == 3:
        img = img[:, :, [2, 1, 0]] if img.shape[2] >= 3 else img[:, :, :1]  # BGR(A) → RGB
        if not color:
            img = img @ GREY_WEIGHTS if img.shape[2] == 3 else img[:, :, 0]
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    return img.astype(np.float32)


def _read_image_bytes(filename):
    if hasattr(filename, "read"):
        where = repr(getattr(filename, "name", type(filename).__name__))
        try:
            # imread reads the whole file: a BytesIO just written (positioned at its end) works
            if getattr(filename, "seekable", lambda: False)():
                filename.seek(0)
            data = filename.read()
        except OSError as e:
            raise InputError(f"cannot read image from {where}: {e}") from None
        if isinstance(data, str):
            raise InputError(f"cannot read image from {where}: it is open in text mode, open it "
                             "with 'rb'")
        return bytes(data), where
    try:
        path = os.fspath(filename)
    except TypeError:
        raise InputError(f"load_image takes a path or a binary file object, not a "
                         f"{type(filename).__name__}") from None
    try:
        with open(path, "rb") as f:
            return f.read(), path
    except FileNotFoundError:
        raise InputError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise InputError(f"image path is a directory, not a file: {path}") from None
    except OSError as e:
        raise InputError(f"cannot read image {path}: {e.strerror}") from None


def _as_float(img, where):
    """scikit-image's img_as_float: unsigned integers scaled by their maximum, floats kept."""
    if img.dtype == np.uint8:
        return img.astype(np.float64) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float64) / 65535.0
    if np.issubdtype(img.dtype, np.floating):
        return img.astype(np.float64)
    raise InputError(f"cannot read image {where}: unsupported pixel type {img.dtype}")


# --- resizing -------------------------------------------------------------------------------------

def resize_image(im, new_dims, interp_order=1):
    """Resize an (H, W, K) image to (new_dims[0], new_dims[1], K), float32.

    K in {1, 3}: x' = resize((x - min) / (max - min)) · (max - min) + min, where resize samples
    the input at ((i + 0.5) · H / H' - 0.5) with zeros outside it (scikit-image, mode='constant')
    and clips to [0, 1]; a constant image comes back filled with its value.
    Other K: samples at i · (H - 1) / (H' - 1), corners aligned (scipy.ndimage.zoom).
    """
    im = np.asarray(im)
    height, width = (int(d) for d in new_dims)
    order = int(interp_order)
    if not 0 <= order <= 5:
        raise InputError(f"interp_order must be 0 to 5 (spline order), not {interp_order!r}")
    if im.ndim != 3:
        raise ShapeError(f"resize_image takes an (H, W, K) image, got shape {im.shape}")
    if im.shape[-1] in (1, 3):
        im_min, im_max = im.min(), im.max()
        if not im_max > im_min:
            return np.full((height, width, im.shape[-1]), im_min, dtype=np.float32)
        im_std = (im - im_min) / (im_max - im_min)
        resized_std = _resize_half_pixel(im_std, height, width, order)
        resized = resized_std * (im_max - im_min) + im_min
    else:
        resized = _zoom_corners(im, height, width, order)
    return resized.astype(np.float32)


def _resize_half_pixel(im, height, width, order):
    if order > 1:
        try:
            from skimage.transform import resize
        except ImportError:
            raise InputError(f"resize_image with interp_order={order} needs scikit-image "
                             "(orders 0 and 1 do not)") from None
        return resize(im, (height, width), order=order, mode="constant", anti_aliasing=False)
    out = np.asarray(im, dtype=np.float64)
    for axis, size in ((0, height), (1, width)):
        coords = (np.arange(size) + 0.5) * (out.shape[axis] / size) - 0.5
        out = _sample(out, axis, coords, order, outside_is_zero=True)
    return np.clip(out, 0.0, 1.0)


def _zoom_corners(im, height, width, order):
    if order > 1:
        try:
            from scipy.ndimage import zoom
        except ImportError:
            raise InputError(f"resize_image with interp_order={order} on a {im.shape[-1]}-channel "
                             "image needs scipy (orders 0 and 1 do not)") from None
        scale = (height / im.shape[0], width / im.shape[1], 1.0)
        return zoom(im, scale, order=order)
    out = np.asarray(im, dtype=np.float64)
    for axis, size in ((0, height), (1, width)):
        step = (out.shape[axis] - 1) / (size - 1) if size > 1 else 0.0
        out = _sample(out, axis, np.arange(size) * step, order, outside_is_zero=False)
    return out


def _sample(values, axis, coords, order, outside_is_zero):
    """Interpolate ``values`` along ``axis`` at fractional ``coords``.

    order 0: the nearest sample, halves rounded away from zero (C's round());
    order 1: (1 - t) · v[floor(c)] + t · v[floor(c) + 1], t = c - floor(c).
    Samples beyond the edges read 0 when ``outside_is_zero``, else the edge value.
    """
    size = values.shape[axis]
    if outside_is_zero:
        pad = [(0, 0)] * values.ndim
        pad[axis] = (1, 1)
        padded, shift, top = np.pad(values, pad), 1, size + 1
    else:
        padded, shift, top = values, 0, size - 1
    if order == 0:
        nearest = np.sign(coords) * np.floor(np.abs(coords) + 0.5)
        index = np.clip(nearest.astype(np.int64) + shift, 0, top)
        return np.take(padded, index, axis=axis)
    lower = np.floor(coords)
    t = coords - lower
    below = np.clip(lower.astype(np.int64) + shift, 0, top)
    above = np.clip(below + 1, 0, top)
    shape = [1] * values.ndim
    shape[axis] = len(coords)
    t = t.reshape(shape)
    return (1 - t) * np.take(padded, below, axis=axis) + t * np.take(padded, above, axis=axis)


def oversample(images, crop_dims):
    """The 10 crops of each (H, W, K) image, float32 (10·N, h, w, K), in Caffe's order:
    top-left, top-right, bottom-left, bottom-right, centre, then the same five mirrored
    (flipped left-right). The centre crop starts at ((H - h) // 2, (W - w) // 2)."""
    images = [np.asarray(im) for im in images] if not isinstance(images, np.ndarray) else images
    if len(images) == 0:
        raise InputError("oversample needs at least one image")
    img_h, img_w, channels = images[0].shape
    crop_h, crop_w = (int(d) for d in crop_dims)
    if crop_h > img_h or crop_w > img_w:
        raise ShapeError(f"crop {crop_h}x{crop_w} is larger than the {img_h}x{img_w} images")
    corners = [(0, 0), (0, img_w - crop_w), (img_h - crop_h, 0), (img_h - crop_h, img_w - crop_w),
               ((img_h - crop_h) // 2, (img_w - crop_w) // 2)]
    crops = np.empty((10 * len(images), crop_h, crop_w, channels), dtype=np.float32)
    for n, im in enumerate(images):
        for k, (top, left) in enumerate(corners):
            crop = im[top:top + crop_h, left:left + crop_w, :]
            crops[10 * n + k] = crop
            crops[10 * n + 5 + k] = crop[:, ::-1, :]
    return crops


# --- Transformer ----------------------------------------------------------------------------------

class Transformer:
    """Prepares (H, W, K) images for input blobs of the shapes given: ``{blob: (N, C, H, W)}``."""

    def __init__(self, inputs):
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def _check_input(self, in_):
        if in_ not in self.inputs:
            raise InputError(f"{in_!r} is not one of the Transformer's inputs: "
                             f"{', '.join(map(repr, self.inputs))}")

    def preprocess(self, in_, data):
        """(H', W', K) image → (K, H, W) float32 blob data:
        resize to the blob's (H, W), transpose, swap channels, ·raw_scale, −mean, ·input_scale."""
        self._check_input(in_)
        caffe_in = np.array(data, dtype=np.float32)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if in_ in self.transpose:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            caffe_in = caffe_in[list(self.channel_swap[in_]), :, :]
        # in place, as Caffe: a float64 mean or scale is applied in float64, stored in float32
        if self.raw_scale.get(in_) is not None:
            caffe_in *= self.raw_scale[in_]
        if self.mean.get(in_) is not None:
            caffe_in -= self.mean[in_]
        if self.input_scale.get(in_) is not None:
            caffe_in *= self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_, data):
        """Blob data → image: squeeze, /input_scale, +mean, /raw_scale, unswap, untranspose."""
        self._check_input(in_)
        decaf_in = np.array(data).squeeze()
        if self.input_scale.get(in_) is not None:
            decaf_in /= self.input_scale[in_]
        if self.mean.get(in_) is not None:
            decaf_in += self.mean[in_]
        if self.raw_scale.get(in_) is not None:
            decaf_in /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            decaf_in = decaf_in[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            decaf_in = decaf_in.transpose(np.argsort(self.transpose[in_]))
        return decaf_in

    def set_transpose(self, in_, order):
        """Axis order taking the image to the blob's (K, H, W), e.g. (2, 0, 1) for H × W × K."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ShapeError(f"transpose order {tuple(order)} for {in_!r} needs "
                             f"{len(self.inputs[in_]) - 1} axes")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_, order):
        """Channel order after the transpose, e.g. (2, 1, 0) for RGB → BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ShapeError(f"channel swap {tuple(order)} for {in_!r} needs "
                             f"{self.inputs[in_][1]} channels")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_, scale):
        """Multiply before the mean is subtracted (255 for models trained on [0, 255] pixels)."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """Subtract a per-channel mean (C,) or a mean image (C, H, W) / (H, W).

        A mean image of another size is resized as Caffe does: scaled to [0, 1], resized
        (``resize_image``, bilinear) to the blob's H × W, scaled back.
        """
        self._check_input(in_)
        mean = np.asarray(mean)
        channels, blob_hw = self.inputs[in_][1], self.inputs[in_][2:]
        if mean.ndim == 1:
            if mean.shape[0] != channels:
                raise ShapeError(f"a mean of {mean.shape[0]} channels does not fit {in_!r} with "
                                 f"{channels} channels")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if mean.ndim == 2:
                mean = mean[np.newaxis]
            if mean.ndim != 3:
                raise ShapeError(f"a mean must be (C,), (H, W) or (C, H, W), got shape "
                                 f"{mean.shape}")
            if mean.shape != self.inputs[in_][1:]:
                if mean.shape[0] != channels:
                    raise ShapeError(f"a mean image of {mean.shape[0]} channels does not fit "
                                     f"{in_!r} with {channels} channels")
                m_min, m_max = mean.min(), mean.max()
                if m_max > m_min:
                    normal = (mean - m_min) / (m_max - m_min)
                    mean = resize_image(normal.transpose((1, 2, 0)), blob_hw).transpose((2, 0, 1)) \
                        * (m_max - m_min) + m_min
                else:   # Caffe would divide by zero here
                    mean = np.full((channels,) + blob_hw, m_min, dtype=mean.dtype)
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Multiply after the mean is subtracted."""
        self._check_input(in_)
        self.input_scale[in_] = scale


# --- BlobProto / Datum conversion -----------------------------------------------------------------

def blobproto_to_array(blob, return_diff=False):
    """A BlobProto's data (or diff) as a float64 array in its shape: the legacy 4-D
    (num, channels, height, width) when any of those is set, else ``shape.dim``."""
    values = blob.diff if return_diff else blob.data
    if not return_diff and len(values) == 0 and len(blob.double_data):
        values = blob.double_data
    array = np.array(values, dtype=np.float64)
    legacy = ("num", "channels", "height", "width")
    if any(blob.HasField(name) for name in legacy):
        shape = tuple(int(getattr(blob, name)) for name in legacy)
    else:
        shape = tuple(int(d) for d in blob.shape.dim)
    if array.size != int(np.prod(shape, dtype=np.int64)):
        raise ShapeError(f"the blob holds {array.size} values but its shape {shape} needs "
                         f"{int(np.prod(shape, dtype=np.int64))}")
    return array.reshape(shape)


def array_to_blobproto(arr, diff=None):
    """A BlobProto with ``shape.dim`` = arr.shape, data = arr (and diff = diff) as floats."""
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.astype(np.float32).ravel().tolist())
    if diff is not None:
        blob.diff.extend(np.asarray(diff).astype(np.float32).ravel().tolist())
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    """Serialised BlobProtoVector of the arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data):
    """The arrays of a serialised BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A Datum of a (C, H, W) array: uint8 arrays as bytes in ``data``, others as float_data."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ShapeError(f"a Datum holds a (C, H, W) array, got shape {arr.shape}")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(np.float32).ravel().tolist())
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum):
    """A Datum's (C, H, W) array: uint8 from ``data``, else float64 from ``float_data``
    (the label is ``datum.label``). An encoded Datum (a JPEG/PNG file) is refused: decode it with
    ``load_image(io.BytesIO(datum.data))``."""
    if getattr(datum, "encoded", False):
        raise InputError("this Datum holds an encoded image file: decode it with "
                         "caffe.io.load_image(io.BytesIO(datum.data))")
    shape = (int(datum.channels), int(datum.height), int(datum.width))
    if len(datum.data):
        array = np.frombuffer(bytes(datum.data), dtype=np.uint8)
    else:
        array = np.array(datum.float_data, dtype=np.float64)
    if array.size != int(np.prod(shape)):
        raise ShapeError(f"the Datum holds {array.size} values but its shape {shape} needs "
                         f"{int(np.prod(shape))}")
    return array.reshape(shape).copy()
