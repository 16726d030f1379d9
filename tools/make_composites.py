"""Write the labelled sets of docs/evaluation.md: scikit-image's photographs with the boxes drawn by
hand (tests/data/labelled/*.xml), and composites — each object cut to its box and pasted at a
known box on other backgrounds. Deterministic: the same files on every run.

    python tools/make_composites.py OUT        # needs scikit-image (the 'test' extra)

    OUT/photos/<name>.png          chelsea, coffee, rocket, clock, camera (annotations:
                                   tests/data/labelled, VOC XML)
    OUT/composites/<object>_<background>_<size>.png
    OUT/composites.csv             image,class,x0,y0,x1,y1 (half-open, 0-based: caffe-port's own)

Objects: the labelled photographs whose class the embedded model names at top-1 or in its top-5
on the photograph itself (chelsea's cat, coffee's espresso, camera's tripod, rocket's missile;
the motion-blurred clock is left out). Backgrounds: scikit-image's CC0 textures (brick, grass,
gravel), the Hubble deep field (NASA, public domain), uniform noise, flat grey and flat blue.
Sizes: the object's longer side is 40 %, 60 % or 85 % of the part of the 320×480 canvas the
embedded model's pre-processing looks at (its centre crop), placed at a random position inside
it (NumPy's generator, seed 0), so that every pasted object is seen by the net.
"""
import os
import sys

import cv2
import numpy as np

from caffe_port import imagenet
from caffe_port.evaluation.annotations import class_resolver, read_voc
from caffe_port.preprocess import as_rgb, preset
from caffe_port.render import write_png

HERE = os.path.dirname(os.path.abspath(__file__))
LABELLED = os.path.join(HERE, "..", "tests", "data", "labelled")
PHOTOS = ("chelsea", "coffee", "rocket", "clock", "camera")
OBJECTS = ("chelsea", "coffee", "camera", "rocket")
CANVAS = (320, 480)                     # H, W
SIZES = {"small": 0.40, "medium": 0.60, "large": 0.85}


def photograph(name):
    from skimage import data            # the test extra: only this tool needs it
    return as_rgb(getattr(data, name)())


def backgrounds(rng):
    """{name: (H, W, 3) uint8} on the canvas."""
    from skimage import data
    h, w = CANVAS
    found = {name: as_rgb(getattr(data, name)())[:h, :w] for name in ("brick", "grass", "gravel")}
    hubble = as_rgb(data.hubble_deep_field())
    found["hubble"] = cv2.resize(hubble, (w, round(hubble.shape[0] * w / hubble.shape[1])),
                                 interpolation=cv2.INTER_AREA)[:h]
    found["noise"] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    found["grey"] = np.full((h, w, 3), 128, np.uint8)
    found["blue"] = np.full((h, w, 3), (70, 110, 160), np.uint8)
    return found


def seen_region():
    """(x0, y0, x1, y1), half-open: the canvas pixels the embedded model's centre crop covers."""
    ys, xs = np.nonzero(preset("efficientnet-lite0").geometry(CANVAS).covered())
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def object_crop(name, resolve):
    """(RGB crop of the photograph to its hand-drawn box, class index)."""
    truth = read_voc(os.path.join(LABELLED, f"{name}.xml"), resolve)
    (class_index, (x0, y0, x1, y1)), = truth.objects
    return photograph(name)[int(y0):int(y1), int(x0):int(x1)], class_index


def composites(rng):
    """Yield (file name, picture, class index, half-open box)."""
    resolve = class_resolver(imagenet.NUM_CLASSES)
    grounds = backgrounds(rng)
    rx0, ry0, rx1, ry1 = seen_region()
    side = min(rx1 - rx0, ry1 - ry0)
    for name in OBJECTS:
        crop, class_index = object_crop(name, resolve)
        for ground, picture in grounds.items():
            for size, fraction in SIZES.items():
                scale = fraction * side / max(crop.shape[:2])
                w, h = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
                x = int(rng.integers(rx0, rx1 - w + 1))
                y = int(rng.integers(ry0, ry1 - h + 1))
                canvas = picture.copy()
                canvas[y:y + h, x:x + w] = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
                yield f"{name}_{ground}_{size}.png", canvas, class_index, (x, y, x + w, y + h)


def main(argv):
    if len(argv) != 2:
        raise SystemExit(__doc__)
    out = argv[1]
    os.makedirs(os.path.join(out, "photos"), exist_ok=True)
    os.makedirs(os.path.join(out, "composites"), exist_ok=True)
    for name in PHOTOS:
        write_png(os.path.join(out, "photos", f"{name}.png"), photograph(name), force=True)
    rows = ["image,class,x0,y0,x1,y1"]
    count = 0
    for file_name, picture, class_index, box in composites(np.random.default_rng(0)):
        write_png(os.path.join(out, "composites", file_name), picture, force=True)
        rows.append(f"composites/{file_name},{imagenet.wnids()[class_index]},{','.join(map(str, box))}")
        count += 1
    with open(os.path.join(out, "composites.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    print(f"wrote {len(PHOTOS)} photographs to {out}/photos and {count} composites to {out}/composites "
          f"(boxes: {out}/composites.csv)")


if __name__ == "__main__":
    main(sys.argv)
