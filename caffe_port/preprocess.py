"""Per-model pre-processing presets, and the way back from network pixels to the photograph's.

A ``Preset`` turns an RGB photograph into the network's ``data`` blob in four steps, each one
optional:

    1. resize       ``resize=S`` scales the shorter side to S (the longer one to
                    max(S, round(side · S / shorter))); ``resize=(H, W)`` resizes to exactly H×W
                    (Caffe's ``caffe.io.resize_image`` to 256×256)
    2. centre crop  ``crop=(h, w)`` (or ``crop=s``): rows ⌊(H − h)/2⌋ …, columns ⌊(W − w)/2⌋ …
    3. channels     the image is RGB; ``channel_order="BGR"`` reverses it (Caffe's channel swap);
                    ``channels=1`` makes it grey (ITU-R BT.601 luma, OpenCV's weights) and
                    ``channels=4`` appends an opaque alpha channel (255), for nets that want them
    4. normalise    data[c] = (pixel[c] · scale − mean[c]) / std[c], with pixel in 0…255 and
                    mean/std given in the network's channel order and in scaled units

so that ``preprocess(image)`` is (1, C, h, w) float32 (C = 3 unless ``channels`` says otherwise),
channels first whatever the net's own input layout: ``caffe_port.layout.InputLayout.to_net``
turns it into an NHWC net's input, and the methods do so themselves. ``deprocess`` inverts step 4 and 3 (the
class model images live in the network's space; their mean is added back here), and
``to_original`` inverts steps 2 and 1 for a *map*: a value at network resolution becomes a value
at every pixel of the original photograph, zero where the crop did not look.

Resizing follows OpenCV's pixel-centre convention, x_resized + ½ = (x_original + ½) · W_r / W_0,
which ``to_original`` inverts exactly. A uint8 image is resized as uint8 (as the reference
EfficientNet-Lite0 code and the pycaffe scripts that read images with OpenCV do); any other image
is resized in float32.

Images this module accepts (``as_rgb``), each turned into an H×W×3 RGB array with values 0…255:
    * H×W×3 RGB, uint8 or float;
    * grey H×W or H×W×1: the grey channel is replicated into R, G and B (a network trained on
      colour photographs then sees a colourless photograph, which is what a grey image is);
    * H×W×4 RGBA or H×W×2 grey+alpha: the alpha channel is dropped (not composited);
    * uint16 (16-bit PNG/TIFF): scaled by 255/65535; bool: True → 255;
    * float: taken as 0…1 when its maximum is at most 1 (``caffe.io.load_image``, scikit-image),
      else as 0…255;
    * huge images: when the longer side exceeds ``max_side`` (2048) and the preset resizes, the
      resize uses OpenCV's area interpolation instead of the preset's: each output pixel is the
      average of its footprint in the photograph, where a bilinear or bicubic resize by a factor
      of 10 or more would sample a few scattered pixels (aliasing, moiré). The geometry — and so
      ``to_original`` — is the same as with any other interpolation.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import cv2
import numpy as np

from caffe_port import image_file
from caffe_port.errors import InputError, ModelError, ShapeError
from caffe_port.models import efficientnet_lite

INTERPOLATIONS = ("nearest", "linear", "cubic", "area", "lanczos")
MAX_SIDE = 2048
CHANNELS = (1, 3, 4)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)     # ITU-R BT.601, as cv2.COLOR_RGB2GRAY


def _cv2_flag(interpolation):
    return {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
            "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}[interpolation]


# --- images --------------------------------------------------------------------------------------

def load_image(path, max_pixels=image_file.MAX_PIXELS) -> np.ndarray:
    """Read an image file with OpenCV (8- or 16-bit, grey, colour or with alpha) → ``as_rgb``,
    upright as its EXIF orientation says and reduced above ``max_pixels`` (``image_file``)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: image file not found")
    image = image_file.decode(path, max_pixels=max_pixels)
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[..., ::-1]                      # OpenCV reads BGR
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[..., [2, 1, 0, 3]]              # BGRA
    return as_rgb(image, name=path)


def as_rgb(image, name="image") -> np.ndarray:
    """Any of the image kinds in the module docstring → H×W×3 RGB, values 0…255.

    uint8 stays uint8; everything else becomes float32. A path is read with ``load_image``.
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    image = np.asarray(image)
    if image.dtype == object or not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise InputError(f"{name}: not a numeric image array (dtype {image.dtype})")
    if image.ndim == 3 and image.shape[2] in (1, 2):
        image = image[..., 0]                         # grey (+ alpha)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]                        # RGBA: alpha dropped
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"{name}: expected an H×W grey, H×W×3 RGB or H×W×4 RGBA image, "
                         f"got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"{name}: the image is empty (shape {image.shape})")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == bool:
        return image.astype(np.uint8) * np.uint8(255)
    if image.dtype == np.uint16:
        return image.astype(np.float32) * np.float32(255.0 / 65535.0)
    if np.issubdtype(image.dtype, np.integer):
        if image.min() < 0 or image.max() > 255:
            raise InputError(f"{name}: integer image values must lie in 0…255 (uint16 is scaled), "
                             f"got {image.min()}…{image.max()}")
        return image.astype(np.uint8)
    image = image.astype(np.float32)
    if not np.all(np.isfinite(image)):
        raise InputError(f"{name}: the image contains NaN or infinite values")
    if image.min() < 0 or image.max() > 255:
        raise InputError(f"{name}: float image values must lie in 0…1 or 0…255, "
                         f"got {image.min():g}…{image.max():g}")
    return image * np.float32(255.0) if image.max() <= 1.0 else image


def _pair(value, what):
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise InputError(f"{what} must be a positive int or (height, width), got {value!r}")
    return value


@dataclass(frozen=True)
class Geometry:
    """Where the network's pixels came from in one photograph: original (H0, W0) → resized
    (Hr, Wr) → the crop at rows top…top+h, columns left…left+w, optionally mirrored."""
    original: tuple
    resized: tuple
    top: int
    left: int
    size: tuple
    mirrored: bool = False

    def source_coordinates(self):
        """For every original pixel, its (x, y) coordinate in the crop (float32 H0×W0 arrays)."""
        (h0, w0), (hr, wr), (_, w) = self.original, self.resized, self.size
        xs = (np.arange(w0, dtype=np.float64) + 0.5) * (wr / w0) - 0.5 - self.left
        ys = (np.arange(h0, dtype=np.float64) + 0.5) * (hr / h0) - 0.5 - self.top
        if self.mirrored:
            xs = (w - 1) - xs
        map_x = np.broadcast_to(xs[None, :], (h0, w0)).astype(np.float32)
        map_y = np.broadcast_to(ys[:, None], (h0, w0)).astype(np.float32)
        return map_x, map_y

    def covered(self):
        """Boolean H0×W0: the original pixels whose centre falls inside the crop."""
        map_x, map_y = self.source_coordinates()
        h, w = self.size
        return (map_x >= -0.5) & (map_x <= w - 0.5) & (map_y >= -0.5) & (map_y <= h - 0.5)

    def to_original(self, maps, interpolation="linear"):
        """(..., h, w) maps on the crop → (..., H0, W0) on the photograph, zero outside the crop.

        Each original pixel takes the crop's value at its own centre (bilinear by default), the
        inverse of the resize-and-crop; pixels whose centre the crop does not contain get 0.
        """
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim < 2 or tuple(maps.shape[-2:]) != tuple(self.size):
            raise ShapeError(f"a map of shape {maps.shape} does not fit the network's "
                             f"{self.size[0]}×{self.size[1]} input (expected (..., "
                             f"{self.size[0]}, {self.size[1]}))")
        map_x, map_y = self.source_coordinates()
        inside = self.covered()
        flat = maps.reshape((-1,) + maps.shape[-2:])
        out = np.zeros((flat.shape[0],) + tuple(self.original), dtype=np.float32)
        for k, m in enumerate(flat):
            out[k] = cv2.remap(np.ascontiguousarray(m), map_x, map_y, _cv2_flag(interpolation),
                               borderMode=cv2.BORDER_REPLICATE)
        out *= inside
        return out.reshape(maps.shape[:-2] + tuple(self.original))


@dataclass(frozen=True)
class Preset:
    """How a model wants its images. See the module docstring for the four steps.

    name:          a label for messages
    resize:        int (shorter side), (H, W) (exact), or None
    crop:          int or (h, w) centre crop, or None
    channel_order: "RGB" or "BGR", the network's
    scale, mean, std: data[c] = (pixel[c] · scale − mean[c]) / std[c], network channel order
    interpolation: "nearest", "linear", "cubic", "area" or "lanczos" (OpenCV's)
    max_side:      images longer than this are resized by area averaging
    channels:      3 (the photograph's RGB), 1 (grey) or 4 (RGB + opaque alpha)
    """
    name: str = "none"
    resize: object = None
    crop: object = None
    channel_order: str = "RGB"
    scale: float = 1.0
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    interpolation: str = "linear"
    max_side: int = MAX_SIDE
    channels: int = 3

    def __post_init__(self):
        if self.channel_order not in ("RGB", "BGR"):
            raise InputError(f"preset {self.name!r}: channel_order must be 'RGB' or 'BGR', "
                             f"not {self.channel_order!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"preset {self.name!r}: interpolation must be one of "
                             f"{', '.join(INTERPOLATIONS)}, not {self.interpolation!r}")
        if self.resize is not None and not isinstance(self.resize, (int, np.integer)):
            object.__setattr__(self, "resize", _pair(self.resize, "resize"))
        elif self.resize is not None and int(self.resize) < 1:
            raise InputError(f"preset {self.name!r}: resize must be positive, got {self.resize}")
        object.__setattr__(self, "crop", _pair(self.crop, "crop"))
        if self.channels not in CHANNELS:
            raise InputError(f"preset {self.name!r}: channels must be 1, 3 or 4, not {self.channels!r}")
        for what in ("mean", "std"):
            value = np.asarray(getattr(self, what), dtype=np.float64).reshape(-1)
            if value.size == 3 and self.channels == 1:       # a colour statistic for a grey net: its mean
                value = np.full(1, value.mean())
            elif value.size == 3 and self.channels == 4:     # the alpha channel stays as scaled
                value = np.append(value, 0.0 if what == "mean" else 1.0)
            try:
                value = np.broadcast_to(value, (self.channels,))
            except ValueError:
                raise InputError(f"preset {self.name!r}: {what} has {value.size} values for "
                                 f"{self.channels} channels") from None
            object.__setattr__(self, what, tuple(float(v) for v in value))
        if min(abs(s) for s in self.std) == 0 or self.scale == 0:
            raise InputError(f"preset {self.name!r}: scale and std must be non-zero")

    def replace(self, **changes) -> "Preset":
        """A copy with some fields changed, e.g. ``preset("caffe").replace(crop=224)``."""
        return dataclasses.replace(self, **changes)

    def fitted(self, crop) -> "Preset":
        """This preset for a net whose input is ``crop`` (h, w): the crop becomes the net's, and a
        shorter-side resize keeps its ratio to the preset's own crop — torchvision's 256 for 224
        is 342 for inception_v3's 299, its own transform. An exact (H, W) resize (Caffe's
        256×256) is kept unless the crop does not fit in it; it then grows by the same rule."""
        crop = _pair(crop, "crop")
        resize = self.resize
        if resize is not None and self.crop is not None and self.crop != crop:
            own = max(self.crop)
            shorter = min(resize) if isinstance(resize, tuple) else int(resize)
            grown = max(max(crop), round(shorter * max(crop) / own))
            if not isinstance(resize, tuple):
                resize = grown
            elif min(resize) < max(crop):
                resize = (grown, grown)
        return self.replace(crop=crop, resize=resize)

    def describe(self) -> str:
        """The preset in a few words, for a note on what was assumed."""
        def values(v):
            return "(" + ", ".join(f"{x:g}" for x in v) + ")"
        scale = "" if self.scale == 1 else (f", /{1 / self.scale:g}" if abs(1 / self.scale - round(1 / self.scale)) < 1e-9
                                            else f", ×{self.scale:g}")
        words = [("grey" if self.channels == 1 else self.channel_order + ("A" if self.channels == 4 else ""))
                 + scale]
        if any(self.mean):
            words.append(f"mean {values(self.mean)}")
        if any(v != 1 for v in self.std):
            words.append(f"std {values(self.std)}")
        if self.resize is not None:
            words.append("resize " + (f"{self.resize[0]}×{self.resize[1]}" if isinstance(self.resize, tuple)
                                      else f"shorter side {self.resize}"))
        if self.crop is not None:
            words.append(f"crop {self.crop[0]}×{self.crop[1]}")
        return ", ".join(words)

    # --- geometry --------------------------------------------------------------------------------

    def _resized_size(self, height, width):
        if self.resize is None:
            return height, width
        if isinstance(self.resize, tuple):
            return self.resize
        shorter = int(self.resize)
        factor = shorter / min(height, width)
        return max(shorter, round(height * factor)), max(shorter, round(width * factor))

    def geometry(self, original_size, crop_index=None) -> Geometry:
        """The resize and crop applied to an image of ``original_size`` = (H0, W0) (or the image).

        crop_index: None for the centre crop; 0–9 for the ``oversample`` crops.
        """
        h0, w0 = _size_of(original_size)
        hr, wr = self._resized_size(h0, w0)
        h, w = self.crop if self.crop is not None else (hr, wr)
        if h > hr or w > wr:
            raise InputError(f"preset {self.name!r}: crop {h}×{w} is larger than the resized "
                             f"image {hr}×{wr}; resize the shorter side to at least {max(h, w)} "
                             f"(--resize {max(h, w)}, or resize= in Python)")
        if crop_index is None:
            return Geometry((h0, w0), (hr, wr), (hr - h) // 2, (wr - w) // 2, (h, w))
        boxes = _oversample_boxes(hr, wr, h, w)
        if not 0 <= crop_index < len(boxes):
            raise InputError(f"crop_index must be 0…9, got {crop_index}")
        top, left, mirrored = boxes[crop_index]
        return Geometry((h0, w0), (hr, wr), top, left, (h, w), mirrored)

    def to_original(self, maps, original_size, crop_index=None, interpolation="linear"):
        """Maps at network resolution (..., h, w) → the original photograph's pixels
        (..., H0, W0): crop and resize undone, zero outside the crop."""
        return self.geometry(original_size, crop_index).to_original(maps, interpolation)

    # --- images → data ---------------------------------------------------------------------------

    def _resized(self, image):
        h0, w0 = image.shape[:2]
        hr, wr = self._resized_size(h0, w0)
        if (hr, wr) == (h0, w0):
            return image
        huge = max(h0, w0) > self.max_side
        return cv2.resize(image, (wr, hr), interpolation=cv2.INTER_AREA if huge else _cv2_flag(self.interpolation))

    def _normalise(self, crops):
        """(M, h, w, 3) RGB pixels → (M, C, h, w) float32 data."""
        x = crops.astype(np.float32)
        if self.channels == 1:
            x = x @ LUMA[:, None]
        elif self.channel_order == "BGR":
            x = x[..., ::-1]
        if self.channels == 4:
            x = np.concatenate([x, np.full(x.shape[:-1] + (1,), 255, np.float32)], axis=-1)
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        x = (x * np.float32(self.scale) - mean) / std
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def preprocess(self, image) -> np.ndarray:
        """An image (any kind ``as_rgb`` takes) → the (1, 3, h, w) float32 data blob."""
        image = as_rgb(image)
        resized = self._resized(image)
        g = self.geometry(image.shape[:2])
        crop = resized[g.top:g.top + g.size[0], g.left:g.left + g.size[1]]
        return self._normalise(crop[None])

    def oversample(self, image) -> np.ndarray:
        """Caffe's 10-crop oversampling → (10, 3, h, w): the four corner crops (top-left,
        top-right, bottom-left, bottom-right) and the centre crop, then the same five mirrored
        left–right. ``to_original(..., crop_index=k)`` and ``merge_oversampled`` map back."""
        image = as_rgb(image)
        resized = self._resized(image)
        crops = []
        for k in range(10):
            g = self.geometry(image.shape[:2], k)
            crop = resized[g.top:g.top + g.size[0], g.left:g.left + g.size[1]]
            crops.append(crop[:, ::-1] if g.mirrored else crop)
        return self._normalise(np.stack(crops))

    def merge_oversampled(self, maps, original_size, interpolation="linear"):
        """Ten maps (10, ..., h, w) from ``oversample`` crops → their mean on the photograph
        (..., H0, W0), each pixel averaged over the crops that contain it (0 where none does)."""
        maps = np.asarray(maps, dtype=np.float32)
        if maps.shape[0] != 10:
            raise ShapeError(f"merge_oversampled expects 10 maps (one per crop), got {maps.shape[0]}")
        total, count = None, None
        for k in range(10):
            g = self.geometry(original_size, k)
            back = g.to_original(maps[k], interpolation)
            total = back if total is None else total + back
            count = g.covered().astype(np.float32) if count is None else count + g.covered()
        return total / np.maximum(count, 1)

    # --- data → images ---------------------------------------------------------------------------

    def pixel_range(self):
        """(low, high), each (3,) in network channel order: the data values of pixels 0 and 255."""
        mean, std = np.asarray(self.mean), np.asarray(self.std)
        low, high = (0.0 * self.scale - mean) / std, (255.0 * self.scale - mean) / std
        return np.minimum(low, high).astype(np.float32), np.maximum(low, high).astype(np.float32)

    def deprocess(self, data) -> np.ndarray:
        """(1, C, h, w) or (C, h, w) data → (h, w, 3) uint8 RGB: pixel = (data · std + mean) / scale,
        channels back to RGB (grey repeated, alpha dropped), clipped to 0…255 and rounded."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim == 4 and data.shape[0] == 1:
            data = data[0]
        if data.ndim != 3 or data.shape[0] != self.channels:
            raise ShapeError(f"deprocess expects (1, {self.channels}, h, w) or ({self.channels}, h, w) "
                             f"data, got {data.shape}")
        x = data.transpose(1, 2, 0) * np.asarray(self.std) + np.asarray(self.mean)
        x = x / self.scale
        if self.channels == 1:
            x = np.repeat(x, 3, axis=2)
        x = x[..., :3]
        if self.channel_order == "BGR" and self.channels != 1:
            x = x[..., ::-1]
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _size_of(original):
    if hasattr(original, "shape"):
        shape = tuple(original.shape)
        if len(shape) < 2:
            raise InputError(f"expected an image or (height, width), got an array of shape {shape}")
        return int(shape[0]), int(shape[1])
    size = tuple(int(v) for v in original)
    if len(size) != 2 or min(size) < 1:
        raise InputError(f"original size must be (height, width), got {original!r}")
    return size


def _oversample_boxes(hr, wr, h, w):
    """Caffe's ten crops of an hr×wr image: (top, left, mirrored)."""
    five = [(0, 0), (0, wr - w), (hr - h, 0), (hr - h, wr - w), ((hr - h) // 2, (wr - w) // 2)]
    return [(t, l, False) for t, l in five] + [(t, l, True) for t, l in five]


# --- the presets -----------------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (104.0, 117.0, 123.0)


def _efficientnet_lite0():
    p = efficientnet_lite.PREPROCESS
    interpolation = str(p.get("interpolation", "linear")).lower()
    interpolation = next((name for name, word in (("cubic", "cubic"), ("area", "area"),
                                                  ("nearest", "nearest"), ("lanczos", "lanczos"),
                                                  ("linear", "linear")) if word in interpolation),
                         "linear")
    low, high = p.get("input_range", (0, 255))
    return Preset("efficientnet-lite0", resize=int(p["resize_shorter_side"]), crop=int(p["center_crop"]),
                  channel_order=p["color_order"], scale=255.0 / (high - low),
                  mean=tuple(p["mean"]), std=tuple(p["std"]), interpolation=interpolation)


PRESETS = {
    # BVLC reference CaffeNet / AlexNet / VGG deploys: caffe.io.resize_image to 256×256, centre
    # crop (227 for CaffeNet/AlexNet, 224 for VGG/GoogLeNet: .replace(crop=224)), BGR, 0–255, the
    # ILSVRC-2012 mean pixel
    "caffe": lambda: Preset("caffe", resize=(256, 256), crop=227, channel_order="BGR", scale=1.0,
                            mean=CAFFE_MEAN_BGR, std=(1.0, 1.0, 1.0), interpolation="linear"),
    # torchvision's ImageNet models: Resize(256) of the shorter side, CenterCrop(224), RGB /255,
    # ImageNet mean/std (bilinear without PIL's antialias; differences are a fraction of a level)
    "torchvision": lambda: Preset("torchvision", resize=256, crop=224, channel_order="RGB",
                                  scale=1.0 / 255.0, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                  interpolation="linear"),
    "efficientnet-lite0": _efficientnet_lite0,
    # the image as it is: RGB pixel values 0–255, no resize or crop
    "none": lambda: Preset("none"),
}


# --- what an ONNX file says about its images (onnx/docs/MetadataProps.md) ----------------------------

PIXEL_FORMATS = {"gray8": {"channels": 1}, "rgb8": {"channel_order": "RGB"}, "bgr8": {"channel_order": "BGR"},
                 "rgba8": {"channel_order": "RGB", "channels": 4}, "bgra8": {"channel_order": "BGR", "channels": 4}}
# data = pixel · scale − mean, the nominal range of the data
PIXEL_RANGES = {"nominalrange_0_255": {"scale": 1.0, "mean": 0.0},
                "normalized_0_1": {"scale": 1 / 255, "mean": 0.0},
                "normalized_1_1": {"scale": 2 / 255, "mean": 1.0},
                "nominalrange_16_235": {"scale": 219 / 255, "mean": -16.0}}


def metadata_changes(metadata_props) -> dict:
    """Preset changes stated by an ONNX model's ``metadata_props`` ({key: value}), as ONNX's image
    metadata defines them (keys and values case-insensitive): ``Image.BitmapPixelFormat`` (Gray8,
    Rgb8, Bgr8, Rgba8, Bgra8) gives the channels and their order, ``Image.NominalPixelRange``
    (NominalRange_0_255, Normalized_0_1, Normalized_1_1, NominalRange_16_235) the value range, with
    no per-channel standardisation. Unknown values are an InputError naming the key."""
    props = {str(k).lower(): (str(k), str(v)) for k, v in dict(metadata_props).items()}
    changes = {}
    for key, table in (("image.bitmappixelformat", PIXEL_FORMATS), ("image.nominalpixelrange", PIXEL_RANGES)):
        if key in props:
            written, value = props[key]
            if value.strip().lower() not in table:
                raise InputError(f"the model's metadata {written} = {value!r} is not one of ONNX's values "
                                 f"({', '.join(table)})")
            value = value.strip().lower()
            changes.update(table[value])
    if "scale" in changes:
        changes["std"] = 1.0
    return changes


def preset(name, **changes) -> Preset:
    """A named preset ("caffe", "torchvision", "efficientnet-lite0", "none"), optionally changed:
    ``preset("caffe", crop=224)``. A Preset passes through (with the changes applied)."""
    if isinstance(name, Preset):
        return name.replace(**changes) if changes else name
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    base = PRESETS[name]()
    try:
        return base.replace(**changes) if changes else base
    except TypeError as e:
        raise InputError(f"preset {name!r}: {e}") from None
