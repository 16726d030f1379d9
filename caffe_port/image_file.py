"""Image files as people have them: upright as every viewer shows them, and never decoded past
the memory there is.

``decode(source)`` reads a path or the bytes of a file and returns what OpenCV decodes
(BGR/BGRA/grey, 8- or 16-bit) after three decisions made from the file's header alone, before
any pixel is decoded (Pillow opens a file lazily: size, mode, frames and EXIF tags, no pixels):

* **orientation** (``upright=True``): a camera stores the sensor's pixels and an EXIF
  Orientation tag (1–8) saying how to turn them; viewers apply it, so the picture is turned
  here too and maps and overlays land on the picture the user sees. (PNG's eXIf chunk counts
  when it comes before the pixel data, as Pillow then reads it with the header.)
* **size**: an image of more than ``max_pixels`` (default ``MAX_PIXELS``, 8192², 67 MP) is
  reduced: a JPEG at decode time (libjpeg's DCT scaling, 1/2, 1/4 or 1/8: only the smaller
  image is ever in memory), any other format decoded whole and then area-averaged down, when
  that fits; a warning says so, since maps then come back in the reduced image's pixels.
* **memory**: the decoded image (and the copies the caller makes of it) must fit in the memory
  available (``caffe_port.memory``), else ``MemoryLimitError`` with the estimate; a header that
  claims 30,000 × 30,000 pixels is refused before anything is allocated for it.

A file Pillow cannot read the header of is left to OpenCV (its own formats: EXR, HDR, PFM …),
whose decoder checks sizes itself (at most 2³⁰ pixels).
"""
from __future__ import annotations

import io
import math
import os
import warnings

import cv2
import numpy as np
from PIL import Image

from caffe_port.errors import InputError
from caffe_port.memory import check_fits, gib

MAX_PIXELS = 8192 * 8192
FLOAT_RGB_BYTES = 3 * 4                     # one float32 RGB copy per pixel
ORIENTATION_TAG = 0x0112
REDUCTIONS = (2, 4, 8)                      # what libjpeg's DCT scaling offers, through OpenCV
# bytes per sample as OpenCV decodes each Pillow mode; anything else counts as 4 (float TIFF)
SAMPLE_BYTES = {"1": 1, "L": 1, "LA": 1, "P": 1, "PA": 1, "RGB": 1, "RGBA": 1, "RGBX": 1,
                "CMYK": 1, "YCbCr": 1, "LAB": 1, "HSV": 1, "I;16": 2, "I;16B": 2, "I;16L": 2,
                "I;16N": 2}


class Header:
    """What the file says about itself: format, size, samples and orientation."""

    def __init__(self, image):
        self.format = image.format
        self.width, self.height = image.size
        self.mode = image.mode
        # a 16-bit RGB(A) PNG opens as mode RGB(A): the decoder's raw mode ("RGB;16B") says the
        # depth; a tile's arguments are the raw mode or a tuple starting with it
        args = image.tile[0][3] if image.tile else None
        raw = args[0] if isinstance(args, tuple) and args else args
        wide = isinstance(raw, str) and "16" in raw
        self.sample_bytes = 2 if wide else SAMPLE_BYTES.get(self.mode, 4)
        self.orientation = _orientation(image)

    @property
    def pixels(self):
        return self.width * self.height

    def decoded_bytes(self, reduction, max_pixels, working_bytes):
        """Bytes OpenCV's array takes (at most 4 channels), plus ``working_bytes`` per pixel of
        the image it becomes (at most max_pixels) for the caller's copies."""
        pixels = math.ceil(self.width / reduction) * math.ceil(self.height / reduction)
        kept = pixels if max_pixels is None else min(pixels, max_pixels)
        return pixels * 4 * self.sample_bytes + kept * working_bytes


def _orientation(image):
    """EXIF Orientation 1–8 (1 when absent or out of range), read without decoding pixels."""
    try:
        if image.format == "PNG" and "exif" not in image.info:
            return 1                      # Pillow's getexif() would decode a PNG to look further
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:                     # a damaged EXIF block is no orientation, as viewers take it
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def read_header(data: bytes):
    """The file's Header, or None when Pillow does not know the format or cannot read it.

    Pillow's ``Image.open`` refuses to open an image above its own decompression-bomb limit
    (179 MP) without even saying its size; the size is what the decision here needs, so each
    registered format's opener is asked directly, as ``Image.open`` would ask it."""
    with warnings.catch_warnings():
        # Pillow warns about what it finds damaged; whether the file is an image is for OpenCV's
        # decoder to say, and the user reads that in one line
        warnings.simplefilter("ignore")
        return _first_header(data)


def _first_header(data):
    Image.init()
    prefix = data[:16]
    for name in Image.ID:
        factory, accept = Image.OPEN[name]
        try:
            verdict = accept is None or accept(prefix)
            if not verdict or isinstance(verdict, str):   # a string is Pillow's "no, because …"
                continue
            with factory(io.BytesIO(data), None) as image:
                return Header(image)
        except Exception:      # the plugins raise what their parsers raise; the next may know it
            continue
    return None


def _apply_orientation(image, orientation):
    """Turn sensor pixels upright for EXIF orientation 1–8 (Pillow's exif_transpose table:
    2 mirror, 3 rotate 180°, 4 flip, 5 transpose, 6 rotate 90° clockwise, 7 transverse,
    8 rotate 90° counter-clockwise)."""
    turned = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1],
              4: lambda a: a[::-1], 5: lambda a: a.swapaxes(0, 1),
              6: lambda a: np.rot90(a, -1), 7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
              8: lambda a: np.rot90(a, 1)}[orientation](image)
    return np.ascontiguousarray(turned)


def _reduction(header, max_pixels):
    """The JPEG decode reduction that brings the image under max_pixels (1: none needed)."""
    if max_pixels is None or header.pixels <= max_pixels:
        return 1
    if header.format not in ("JPEG", "MPO"):
        return 1
    for factor in REDUCTIONS:
        if math.ceil(header.width / factor) * math.ceil(header.height / factor) <= max_pixels:
            return factor
    return REDUCTIONS[-1]


def _decode_flags(header, reduction):
    if reduction == 1:
        return cv2.IMREAD_UNCHANGED
    grey = header is not None and header.mode == "L"
    flag = getattr(cv2, f"IMREAD_REDUCED_{'GRAYSCALE' if grey else 'COLOR'}_{reduction}")
    return flag | cv2.IMREAD_IGNORE_ORIENTATION          # orientation is applied here, once


def decode(source, name=None, *, upright=True, max_pixels=MAX_PIXELS,
           working_bytes=FLOAT_RGB_BYTES) -> np.ndarray:
    """A path or a file's bytes → the decoded image as OpenCV gives it (BGR(A) or grey), upright
    and within ``max_pixels`` and memory (module docstring). InputError when not an image.

    working_bytes: what the caller's conversions take per decoded pixel, counted in the memory
    check (default: one float32 RGB copy, what ``preprocess.as_rgb`` makes)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or "image"
    else:
        name = name or os.fspath(source)
        try:
            check_fits(os.path.getsize(source), f"{name}: reading the file")   # a 10 GB "photo"
            with open(source, "rb") as f:
                data = f.read()
        except OSError as e:
            raise InputError(f"{name}: cannot read the image file ({e.strerror})") from None
    if not data:
        raise InputError(f"{name}: not an image file (it is empty)")
    header = read_header(data)
    reduction = 1
    if header is not None:
        reduction = _reduction(header, max_pixels)
        size = f"{header.width}×{header.height} pixels"
        if header.pixels == 0:
            raise InputError(f"{name}: the image is empty ({size})")
        check_fits(header.decoded_bytes(reduction, max_pixels, working_bytes),
                   f"{name}: decoding its {size}" + (f" at 1/{reduction} scale" if reduction > 1 else ""),
                   "shrink the image first")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), _decode_flags(header, reduction))
    except cv2.error as e:     # e.g. an allocation for a size only OpenCV's own parser read
        raise InputError(f"{name}: OpenCV could not decode it "
                         f"({str(e).strip().splitlines()[-1][:160]})") from None
    if image is None:
        raise InputError(f"{name}: not an image file OpenCV can read")
    if reduction > 1:
        warnings.warn(f"{_more_than(name, header.width, header.height, max_pixels)}: decoded at "
                      f"1/{reduction} scale, {image.shape[1]}×{image.shape[0]}; maps come back in "
                      "those pixels", stacklevel=3)
    elif max_pixels is not None and image.shape[0] * image.shape[1] > max_pixels:
        image = _area_reduced(image, max_pixels, name)
    if upright and header is not None and header.orientation != 1:
        image = _apply_orientation(image, header.orientation)
    return image


def _area_reduced(image, max_pixels, name):
    """A decoded image above max_pixels, area-averaged down to fit (each new pixel the mean of
    its footprint)."""
    height, width = image.shape[:2]
    factor = math.sqrt(max_pixels / (height * width))
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    warnings.warn(f"{_more_than(name, width, height, max_pixels)}: reduced to {size[0]}×{size[1]} "
                  f"({gib(image.nbytes)} decoded); maps come back in those pixels", stacklevel=4)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _more_than(name, width, height, max_pixels):
    return f"{name}: {width}×{height} pixels is more than max_pixels ({max_pixels:,})"
