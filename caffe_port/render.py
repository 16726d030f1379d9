"""Arrays → pictures (OpenCV only): grey saliency maps, heat-map overlays, signed gradient images,
captioned grids, boxes, and PNG files written atomically.

Every picture here is an H×W×3 uint8 **RGB** array (grey maps are H×W); ``write_png`` converts to
OpenCV's BGR on the way out.

    grey(map)               the paper's figures: min–max normalised, white = salient
    heatmap(map)            OpenCV's JET colour map (blue = low, red = high)
    overlay(photo, map)     0.5·photo + 0.5·heatmap — both stay readable. (The pycaffe CAM demo
                            blends 0.2·photo + 0.7·heatmap: its weights sum to 0.9, so the picture
                            is darker and the photograph all but disappears under the colours.)
    signed(gradient)        "all": (g − min)/(max − min);  "positive": max(g, 0)/max(g);
                            "negative": max(−g, 0)/(−min(g)) — per picture, over all channels,
                            as guided-backprop images are usually shown
    grid(tiles, captions)   pictures side by side, captions above

and the figures ``caffe-port`` writes from them, given each method's ``Display`` (GRADIENT or
SMOOTH):

    map_pictures(map, photo, display)   one class's map → {"grey", "overlay"} or, signed,
                                        {"all", "positive", "negative"}
    MethodGrid(photo, caption)          the all-methods figure: the photo, then a tile per map
                                        (``add_map``), box or picture (``add``); ``picture()``
"""
from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass

import cv2
import numpy as np

from caffe_port.errors import InputError, ShapeError
from caffe_port.preprocess import as_rgb

OVERLAY_ALPHA = 0.5


def _file_mode():
    """0o666 less the process umask (mkstemp's 0o600 would make the PNG private)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        umask = 0o022
    return 0o666 & ~umask


def normalise(values, low=None, high=None) -> np.ndarray:
    """(values − low) / (high − low), clipped to [0, 1], float32; low/high default to the min/max.
    A constant array becomes zeros."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise InputError("the map contains NaN or infinite values")
    low = float(values.min()) if low is None else float(low)
    high = float(values.max()) if high is None else float(high)
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _to_uint8(unit):
    return np.clip(np.rint(np.asarray(unit) * 255.0), 0, 255).astype(np.uint8)


def _map2d(saliency_map):
    m = np.asarray(saliency_map)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise ShapeError(f"expected an (H, W) map, got shape {m.shape}")
    return m


def grey(saliency_map, percentile=100.0) -> np.ndarray:
    """(H, W) map → (H, W) uint8, min–max normalised, white = salient. ``percentile`` < 100 makes
    values at or above that percentile white: gradient maps are a few very bright pixels over a
    dim field, and the paper's figures show them with such a saturation."""
    m = _map2d(saliency_map)
    return _to_uint8(normalise(m, high=_ceiling(m, percentile)))


def _ceiling(values, percentile):
    if percentile >= 100:
        return None
    if not 0 < percentile <= 100:
        raise InputError(f"percentile must be in (0, 100], got {percentile}")
    return float(np.percentile(values, percentile))


def heatmap(saliency_map, percentile=100.0) -> np.ndarray:
    """(H, W) map → (H, W, 3) RGB uint8 through OpenCV's JET colour map, min–max normalised
    (``percentile`` as in ``grey``)."""
    bgr = cv2.applyColorMap(grey(saliency_map, percentile), cv2.COLORMAP_JET)
    return np.ascontiguousarray(bgr[..., ::-1])


def _rgb(image):
    image = as_rgb(image)
    return image if image.dtype == np.uint8 else np.clip(np.rint(image), 0, 255).astype(np.uint8)


def overlay(image, saliency_map, alpha=OVERLAY_ALPHA, percentile=100.0) -> np.ndarray:
    """(1 − α)·photo + α·heatmap(map), RGB uint8; the map must have the photo's H×W (use
    ``Preset.to_original`` for maps at network resolution)."""
    image = _rgb(image)
    m = _map2d(saliency_map)
    if m.shape != image.shape[:2]:
        raise ShapeError(f"map of shape {m.shape} does not match the {image.shape[0]}×{image.shape[1]} image")
    if not 0 <= alpha <= 1:
        raise InputError(f"alpha must be in [0, 1], got {alpha}")
    blend = (1 - alpha) * image.astype(np.float32) + alpha * heatmap(m, percentile).astype(np.float32)
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def signed(gradient, channel_order="RGB", percentile=100.0) -> dict:
    """A signed gradient image (C, H, W) (a method's "signed" output; C = 3, 1, or 4 for an RGBA
    net, whose alpha channel is left out) → {"all", "positive", "negative"}: (H, W, 3) RGB uint8
    each (see the module docstring).

    channel_order: the network's ("BGR" for Caffe models): channels are put back in RGB order.
    percentile: < 100 takes the p-th and (100 − p)-th percentiles as max and min (saturating the
    few extreme values, as ``grey``).
    """
    g = np.asarray(gradient, dtype=np.float64)
    if g.ndim == 4 and g.shape[0] == 1:
        g = g[0]
    if g.ndim != 3 or g.shape[0] not in (1, 3, 4):
        raise ShapeError(f"expected a (C, H, W) gradient with C = 1, 3 or 4, got shape {g.shape}")
    g = g[:3]
    if channel_order not in ("RGB", "BGR"):
        raise InputError(f"channel_order must be 'RGB' or 'BGR', not {channel_order!r}")
    g = g.transpose(1, 2, 0)
    if g.shape[2] == 1:
        g = np.repeat(g, 3, axis=2)
    elif channel_order == "BGR":
        g = g[..., ::-1]
    if percentile >= 100:
        top, bottom = g.max(), g.min()
    else:
        _ceiling(g, percentile)                                          # checks the range
        top, bottom = np.percentile(g, percentile), np.percentile(g, 100 - percentile)
    positive = np.minimum(np.maximum(g, 0) / top, 1) if top > 0 else np.zeros_like(g)
    negative = np.minimum(np.maximum(-g, 0) / -bottom, 1) if bottom < 0 else np.zeros_like(g)
    return {"all": _to_uint8(normalise(g, low=bottom, high=top)), "positive": _to_uint8(positive),
            "negative": _to_uint8(negative)}


def draw_box(image, box, colour=(0, 255, 0), thickness=2, label=None) -> np.ndarray:
    """A copy of the RGB image with the half-open box (x0, y0, x1, y1) drawn (and a label)."""
    out = _rgb(image).copy()
    if box is None:
        return out
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (x0 < x1 and y0 < y1):
        raise InputError(f"box {tuple(box)} is empty: need x0 < x1 and y0 < y1")
    cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), tuple(int(c) for c in colour), int(thickness))
    if label:
        cv2.putText(out, str(label), (x0 + 2, max(y0 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    tuple(int(c) for c in colour), 1, cv2.LINE_AA)
    return out


def _as_tile(picture):
    p = np.asarray(picture)
    if p.ndim == 2:
        p = grey(p) if p.dtype != np.uint8 else p
        p = np.repeat(p[..., None], 3, axis=2)
    elif p.ndim == 3 and p.shape[2] == 3 and p.dtype != np.uint8:
        p = _rgb(p)
    if p.ndim != 3 or p.shape[2] != 3:
        raise ShapeError(f"a grid tile must be (H, W) or (H, W, 3), got shape {p.shape}")
    return p


def _caption_lines(text, width, scale):
    words, lines, line = str(text).split(), [], ""
    for w in words:
        trial = f"{line} {w}".strip()
        if cv2.getTextSize(trial, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = w
    return lines + ([line] if line else [])


def grid(tiles, captions=None, columns=None, pad=6, background=255, font_scale=0.45) -> np.ndarray:
    """Pictures side by side (row-major, ``columns`` per row, default all in one row), each with
    its caption ("tabby cat 14.2": class name and score) wrapped above it. Grey (H, W) maps are
    normalised; tiles of different sizes are top-left aligned in equal cells."""
    tiles = [_as_tile(t) for t in tiles]
    if not tiles:
        raise InputError("grid needs at least one picture")
    captions = list(captions) if captions is not None else [""] * len(tiles)
    if len(captions) != len(tiles):
        raise InputError(f"{len(captions)} captions for {len(tiles)} pictures")
    columns = len(tiles) if columns is None else max(1, int(columns))
    cell_w = max(t.shape[1] for t in tiles)
    cell_h = max(t.shape[0] for t in tiles)
    wrapped = [_caption_lines(c, cell_w, font_scale) for c in captions]
    line_h = cv2.getTextSize("Hg", cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][1] + 8
    text_h = line_h * max((len(w) for w in wrapped), default=0)
    rows = -(-len(tiles) // columns)
    height = pad + rows * (text_h + cell_h + pad)
    width = pad + columns * (cell_w + pad)
    canvas = np.full((height, width, 3), background, dtype=np.uint8)
    ink = (0, 0, 0) if background > 127 else (255, 255, 255)
    for k, (tile, lines) in enumerate(zip(tiles, wrapped)):
        r, c = divmod(k, columns)
        x = pad + c * (cell_w + pad)
        y = pad + r * (text_h + cell_h + pad)
        for j, line in enumerate(lines):
            cv2.putText(canvas, line, (x, y + (j + 1) * line_h - 6), cv2.FONT_HERSHEY_SIMPLEX,
                        font_scale, ink, 1, cv2.LINE_AA)
        canvas[y + text_h:y + text_h + tile.shape[0], x:x + tile.shape[1]] = tile
    return canvas


def write_png(path, picture, force=False) -> str:
    """Write an RGB (H, W, 3) or grey (H, W) uint8 picture as a PNG, atomically: the bytes go to
    a temporary file in the same directory, which then takes the name in one step — a reader
    sees no file, the old file or the whole new one. An existing file is kept unless ``force``
    (InputError naming it)."""
    path = os.fspath(path)
    p = np.asarray(picture)
    if p.dtype != np.uint8 and not (p.dtype == np.uint16 and p.ndim in (2, 3)):
        raise InputError(f"{path}: pictures are uint8 arrays (render them with grey/heatmap/overlay "
                         f"first), got dtype {p.dtype}")
    if not (p.ndim == 2 or (p.ndim == 3 and p.shape[2] in (3, 4))):
        raise ShapeError(f"{path}: a picture is (H, W) or (H, W, 3), got shape {p.shape}")
    if p.ndim == 3:
        p = p[..., [2, 1, 0, 3][:p.shape[2]]]                           # RGB(A) → BGR(A)
    if os.path.exists(path) and not force:
        raise InputError(f"{path} exists; pass force=True to overwrite it")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(p))
    if not ok:
        raise InputError(f"{path}: OpenCV could not encode the picture as PNG")
    return write_bytes(path, encoded.tobytes(), force)


def write_npy(path, array, force=False) -> str:
    """Write an array as a .npy file, atomically and never over an existing file unless ``force``."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return write_bytes(os.fspath(path), buffer.getvalue(), force)


def write_bytes(path, data: bytes, force=False) -> str:
    """The file ``path`` holds ``data`` afterwards, or is untouched: the bytes go to a temporary
    file in the same directory, which then takes the name in one step — a reader sees no file, the
    old file or the whole new one. An existing file is kept unless ``force`` (InputError naming it)."""
    path = os.fspath(path)
    if os.path.exists(path) and not force:
        raise InputError(f"{path} exists; pass force=True to overwrite it")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise InputError(f"{path}: directory {directory} does not exist")
    fd, temp = tempfile.mkstemp(prefix=".caffe_port-", suffix=".tmp", dir=directory)
    try:
        os.chmod(temp, _file_mode())
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if force:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)        # fails if the name appeared meanwhile: never clobbers
            except FileExistsError:
                raise InputError(f"{path} exists; pass force=True to overwrite it") from None
            except OSError:
                os.replace(temp, path)     # a file system without hard links
            finally:
                if os.path.exists(temp):
                    os.remove(temp)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return path


# --- the figures caffe-port writes ---------------------------------------------------------------

TILE = 224          # the grid's tiles and the smallest class-model picture, in pixels


@dataclass(frozen=True)
class Display:
    """How a method's maps are shown.

    percentile: pictures saturate values above this percentile (100: plain min–max)
    over_photo: in the grid, a map is a heat map over the photograph (else a grey map)
    """
    percentile: float
    over_photo: bool

    def saturation(self, percentile=None) -> float:
        """The percentile pictures saturate at: ``percentile`` when given, else this display's."""
        return self.percentile if percentile is None else percentile


# gradient maps are a few very bright pixels over a dim field: their pictures saturate the top
# 0.5 % (the .npy files keep the raw values); CAM and Grad-CAM maps are smooth and shown min–max,
# over the photograph, where the region they pick is what one wants to see
GRADIENT = Display(percentile=99.5, over_photo=False)
SMOOTH = Display(percentile=100.0, over_photo=True)


def map_pictures(saliency_map, photo, display, channel_order="RGB", percentile=None) -> dict:
    """One class's map in the photograph's pixels → its pictures: a signed (C, H, W) image gives
    ``signed``'s {"all", "positive", "negative"}, an (H, W) map {"grey", "overlay"}.
    ``percentile`` overrides the display's."""
    percentile = display.saturation(percentile)
    if np.ndim(saliency_map) == 3:
        return signed(saliency_map, channel_order, percentile)
    return {"grey": grey(saliency_map, percentile),
            "overlay": overlay(photo, saliency_map, percentile=percentile)}


def fit_tile(picture, size=TILE) -> np.ndarray:
    """The picture scaled so that its longer side is ``size``: shrunk by area averaging, enlarged
    by nearest neighbour (a small class model keeps its pixels visible)."""
    h, w = picture.shape[:2]
    f = size / max(h, w)
    return cv2.resize(picture, (max(1, round(w * f)), max(1, round(h * f))),
                      interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_NEAREST)


def upscale(picture, size=TILE) -> np.ndarray:
    """A picture smaller than ``size`` on its longer side enlarged to it (nearest neighbour); a
    larger one unchanged."""
    return picture if max(picture.shape[:2]) >= size else fit_tile(picture, size)


class MethodGrid:
    """The all-methods figure of one photograph (``caffe-port grid``): the photograph first, then
    one captioned tile per method's map, box or picture, each fitted into TILE × TILE.

    photo:         (H, W, 3) RGB, the photograph the maps were made of
    caption:       the photograph's caption (the class explained and its score)
    channel_order: the network's, for signed images ("BGR" for Caffe models)
    """

    def __init__(self, photo, caption, channel_order="RGB"):
        self.photo = photo
        self.channel_order = channel_order
        self.tiles, self.captions = [], []
        self.add(caption, photo)

    def add(self, caption, picture):
        """A picture (a class model, say) as the next tile."""
        self.tiles.append(fit_tile(picture))
        self.captions.append(caption)

    def add_map(self, caption, saliency_map, display, percentile=None):
        """A method's map in the photograph's pixels as the next tile: a signed image's "all"
        part, else the map over the photograph or grey, as ``display`` says."""
        percentile = display.saturation(percentile)
        if np.ndim(saliency_map) == 3:
            picture = signed(saliency_map, self.channel_order, percentile)["all"]
        elif display.over_photo:
            picture = overlay(self.photo, saliency_map, percentile=percentile)
        else:
            picture = grey(saliency_map, percentile)
        self.add(caption, picture)

    def add_box(self, caption, box):
        """The photograph with a half-open box (x0, y0, x1, y1) drawn, as the next tile."""
        self.add(caption, draw_box(self.photo, box))

    def picture(self, columns=5) -> np.ndarray:
        """The figure: ``columns`` tiles per row."""
        return grid(self.tiles, self.captions, columns=columns)
