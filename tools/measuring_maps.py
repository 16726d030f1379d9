"""The photographs, boxes and figures of docs/measuring-maps.md.

    python tools/measuring_maps.py photos DIR          DIR/*.png|jpg + DIR/boxes.csv
    python tools/measuring_maps.py controls PHOTOS     the same metrics for two maps that know
                                                       nothing: uniform noise, and a Gaussian
                                                       blob at the centre of the crop (Zhang et
                                                       al.'s "center" baseline), as JSON
    python tools/measuring_maps.py plots METRICS.json PHOTOS DIR
                                                       DIR/measuring_curves.png (deletion and
                                                       insertion curves of one image) and
                                                       DIR/measuring_pointing.png (each method's
                                                       maximum on each photograph, with the box)

``photos`` copies the bundled photograph (caffe_port/data/chelsea.jpg) and four of
scikit-image's CC0 photographs (skimage.data: coffee, rocket, motorcycle_left, camera), and
writes the boxes drawn by hand on them (looking at each with a 50-pixel grid over it): one object
a photograph, of the ImageNet class nearest to what it shows. ``plots`` reads what
``caffe-port metrics --json`` printed for that folder. Needs scikit-image (the test extra) and
matplotlib (the plot extra); caffe_port itself needs neither.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys


import numpy as np

from caffe_port import Net, render
from caffe_port.cli.maps import SAMPLE_IMAGE
from caffe_port.methods import Saliency, Wrapper
from caffe_port.metrics import measure, read_boxes_csv
from caffe_port.preprocess import load_image, preset

# file, where it comes from, the class of the box, the box (half-open, the photograph's pixels)
# and why that class
PHOTOS = [
    ("chelsea.jpg", "bundled", "tabby", (0, 0, 400, 300), "the cat's head and chest fill the frame"),
    ("coffee.png", "coffee.png", "espresso", (170, 15, 415, 300), "the cup, handle included, not the saucer"),
    ("rocket.jpg", "rocket.jpg", "missile", (300, 125, 340, 410),
     "a Falcon 9 on its pad: ImageNet has no rocket, 'missile' is the nearest class"),
    ("motorcycle_left.png", "motorcycle_left.png", "moped", (90, 95, 690, 440),
     "ImageNet has no motorcycle: 'moped' is the nearest class"),
    ("camera.png", "camera.png", "tripod", (228, 205, 410, 505), "the tripod below the camera, legs to the feet"),
]


def write_photos(folder):
    from skimage import data as skimage_data     # the test extra: a tool's need, not caffe_port's
    os.makedirs(folder, exist_ok=True)
    lines = ["image,class,x0,y0,x1,y1"]
    for name, source, target, box, _ in PHOTOS:
        origin = SAMPLE_IMAGE if source == "bundled" else os.path.join(skimage_data.data_dir, source)
        shutil.copyfile(origin, os.path.join(folder, name))
        lines.append(f"{name},{target}," + ",".join(str(v) for v in box))
    with open(os.path.join(folder, "boxes.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(os.path.join(folder, "boxes.csv"))


class Control(Wrapper):
    """A map that does not look at the net: "random" (uniform noise, seed 0) or "centre" (a
    Gaussian of σ = a quarter of the side at the crop's centre); the wrapped Saliency only scores."""

    def __init__(self, net, kind):
        super().__init__(Saliency(net))
        self.kind = kind

    def maps(self, data, classes):
        k, n = np.shape(classes)
        height, width = data.shape[2:]
        if self.kind == "random":
            return np.random.default_rng(0).uniform(size=(k, n, height, width)).astype(np.float32)
        y, x = np.mgrid[:height, :width]
        blob = np.exp(-(((y - (height - 1) / 2) / (height / 4)) ** 2 +
                        ((x - (width - 1) / 2) / (width / 4)) ** 2) / 2)
        return np.broadcast_to(blob.astype(np.float32), (k, n, height, width)).copy()


def controls(photos):
    net = Net("efficientnet-lite0")
    methods = {kind: (lambda net, kind=kind: Control(net, kind)) for kind in ("random", "centre")}
    result = measure([photos], net, preset("efficientnet-lite0"), methods,
                     boxes=read_boxes_csv(os.path.join(photos, "boxes.csv")))
    print(json.dumps(result.summary(), indent=1))


def plot_curves(report, image, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    row = next(r for r in report["images"] if os.path.basename(r["image"]) == image)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for kind, ax in zip(("deletion", "insertion"), axes):
        for name, m in row["methods"].items():
            ax.plot(row["fractions"], m[f"{kind}_curve"], label=f"{name} ({m[f'{kind}_auc']:.3f})")
        ax.set_title(f"{kind} ({'from ' + report['settings'][kind + '_baseline']}), {image}, class {row['class']}")
        ax.set_xlabel("fraction of pixels " + ("deleted" if kind == "deletion" else "inserted"))
        ax.legend(fontsize=7)
    axes[0].set_ylabel("softmax probability of the class")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    print(path)


def plot_pointing(report, photos, path):
    boxes = read_boxes_csv(os.path.join(photos, "boxes.csv"))
    tiles, captions = [], []
    names = list(report["methods"])
    for row in report["images"]:
        image = os.path.basename(row["image"])
        photo = load_image(os.path.join(photos, image))
        for name in names:
            picture = photo.copy()
            for _, box in boxes.get(image, []):
                picture = render.draw_box(picture, box)
            hit = None
            for p in row["methods"][name]["pointing"]:
                x, y = p["point"]
                hit = p["hit"]
                colour = (0, 255, 0) if hit else (255, 0, 0)
                size = max(6, photo.shape[1] // 40)
                picture[max(0, y - size):y + size + 1, max(0, x - 2):x + 3] = colour
                picture[max(0, y - 2):y + 3, max(0, x - size):x + size + 1] = colour
            tiles.append(render.fit_tile(picture, 150))
            captions.append(f"{name}: {'hit' if hit else 'miss'}")
    picture = render.grid(tiles, captions, columns=len(names), font_scale=0.35)
    render.write_png(path, picture, force=True)
    print(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("photos")
    p.add_argument("folder")
    p = sub.add_parser("controls")
    p.add_argument("photos")
    p = sub.add_parser("plots")
    p.add_argument("metrics_json")
    p.add_argument("photos")
    p.add_argument("out")
    p.add_argument("--image", default="chelsea.jpg", help="whose curves to draw")
    args = parser.parse_args(argv)
    if args.what == "photos":
        write_photos(args.folder)
        return 0
    if args.what == "controls":
        controls(args.photos)
        return 0
    with open(args.metrics_json, encoding="utf-8") as f:
        report = json.load(f)
    plot_curves(report, args.image, os.path.join(args.out, "measuring_curves.png"))
    plot_pointing(report, args.photos, os.path.join(args.out, "measuring_pointing.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
