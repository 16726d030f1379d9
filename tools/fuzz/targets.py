"""What each reader is asked to do with a fuzz case: what a user's command would do with the file.

A case is a directory holding the files of one input (``model.onnx``; ``deploy.prototxt`` and
perhaps ``weights.caffemodel``; ``mean.binaryproto``; ``weights.pth``; ``image.<ext>``). Each
target reads it through the public entry points, runs what a user runs next (a forward and a
backward for a model, the pre-processing for an image), and checks the result it gets: shapes
as declared, values as the reader promises. A check that fails raises ``WrongResult`` (a
traceback kind of finding); a ``CaffePortError`` is the clean refusal the CLI prints.

Each target imports its reader itself: a campaign over one reader loads only that reader's
modules, and its forks are cheaper for it.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

FREE_DIM = 5       # a symbolic input dimension other than the batch is fed at this size


class WrongResult(AssertionError):
    """The reader returned, but not what it promises."""


def expect(condition, what):
    if not condition:
        raise WrongResult(what)


def _run_net(model, weights=None):
    """Net(model) → forward on a seeded input → backward from the last layer: what every map
    command does. Returns the shapes seen."""
    from caffe_port import Net
    from caffe_port.memory import check_fits, nbytes
    net = Net(model, weights=weights, device="cpu", threads=1)
    feeds = {}
    rng = np.random.default_rng(0)
    for name in net.inputs:
        shape = [FREE_DIM if d is None else d for d in net.graph.input_shape(name, batch=1)]
        dtype = np.dtype(net.graph.input_dtype(name))
        # the feed is the caller's allocation: checked as a careful caller would
        check_fits(2 * nbytes(shape, dtype.itemsize), f"the feed for {name!r} {tuple(shape)}")
        feeds[name] = rng.standard_normal(shape, dtype=np.float32).astype(dtype) \
            if dtype.kind == "f" else np.ones(shape, dtype)
    outputs = net.forward(**feeds)
    for name, value in outputs.items():
        expect(tuple(value.shape) == tuple(net.blobs[name].shape),
               f"output {name!r}: forward gave {value.shape}, the blob says {net.blobs[name].shape}")
    grads = net.backward()
    for name, grad in grads.items():
        expect(grad.shape == feeds[name].shape,
               f"input {name!r}: diff of shape {grad.shape} for data of shape {feeds[name].shape}")
    return {"outputs": {k: list(v.shape) for k, v in outputs.items()}}


def onnx_model(case):
    return _run_net(os.path.join(case, "model.onnx"))


def prototxt(case):
    from caffe_port.models import caffe_net
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = caffe_net.caffe_to_onnx(os.path.join(case, "deploy.prototxt"), fill_missing=True)
    return _run_net(model)


def caffemodel(case):
    return _run_net(os.path.join(case, "deploy.prototxt"), os.path.join(case, "weights.caffemodel"))


def binaryproto(case):
    from caffe_port.cli.options import parse_mean
    from caffe_port.models.caffe_io import read_blobproto
    path = os.path.join(case, "mean.binaryproto")
    blob = read_blobproto(path)
    expect(blob.dtype == np.float32, f"blob dtype {blob.dtype}")
    mean = parse_mean(path)                         # --mean mean.binaryproto
    expect(len(mean) == 3, f"--mean gave {len(mean)} values")
    return {"shape": list(blob.shape)}


def pth(case):
    from caffe_port.models import pth_reader
    state = pth_reader.load_state_dict(os.path.join(case, "weights.pth"))
    for name, array in state.items():
        expect(isinstance(array, np.ndarray) and array.flags.c_contiguous,
               f"{name}: not a C-contiguous array")
    return {"tensors": len(state)}


def image(case):
    from caffe_port.preprocess import load_image, preset
    from caffe_port.pycaffe import io as caffe_io
    (name,) = [n for n in os.listdir(case) if n.startswith("image.")]
    path = os.path.join(case, name)
    photo = load_image(path)
    expect(photo.ndim == 3 and photo.shape[2] == 3, f"load_image gave shape {photo.shape}")
    upright = _viewer_size(path)
    if upright is not None:
        expect(photo.shape[:2] == upright, f"load_image gave {photo.shape[:2]}, a viewer shows "
                                           f"{upright} (EXIF orientation)")
    expect(photo.dtype == np.uint8 or bool(np.all(np.isfinite(photo))), "non-finite pixels")
    data = preset("torchvision").preprocess(photo)
    expect(data.shape == (1, 3, 224, 224) and bool(np.all(np.isfinite(data))),
           f"preprocess gave {data.shape}")
    pycaffe = caffe_io.load_image(path)             # caffe.io.load_image
    expect(pycaffe.ndim == 3 and pycaffe.shape[2] == 3, f"caffe.io.load_image gave {pycaffe.shape}")
    return {"shape": list(photo.shape)}


def _viewer_size(path):
    """(H, W) of a JPEG as Pillow's exif_transpose shows it (what viewers do), or None when
    Pillow cannot decode it whole (a damaged file: nothing to compare with) or load_image
    reduces it (above its max_pixels)."""
    from PIL import Image, ImageOps

    from caffe_port.image_file import MAX_PIXELS
    try:
        with Image.open(path) as opened:
            if opened.format != "JPEG" or opened.size[0] * opened.size[1] > MAX_PIXELS:
                return None
            upright = ImageOps.exif_transpose(opened)
            upright.load()
            return upright.size[1], upright.size[0]
    except Exception:          # Pillow's own complaints about a damaged file
        return None


TARGETS = {"onnx": onnx_model, "prototxt": prototxt, "caffemodel": caffemodel,
           "binaryproto": binaryproto, "pth": pth, "image": image}
