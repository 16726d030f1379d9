"""Measure every localisation recipe on the sets tools/make_composites.py writes, with the embedded
EfficientNet-Lite0: the table of docs/evaluation.md.

    python tools/make_composites.py sets
    python tools/measure_recipes.py sets runs          # → the Markdown tables; runs/recipes.json,
                                                       #   runs/recipes_photographs.png

Each set × recipe is one ``caffe_port.evaluation.evaluate`` run into runs/<set>-<recipe> (the same
as ``caffe-port evaluate sets/photos --annotations tests/data/labelled --recipe R --out DIR``);
a rerun resumes them. The recipes' map options are the command line's defaults (SmoothGrad: 50
samples, σ = 15 % of the range, seed 0; Grad-CAM: the last spatial blob).
"""
import json
import os
import sys
import time

from caffe_port import Net, render
from caffe_port.evaluation import evaluate
from caffe_port.methods.recipes import RECIPES
from caffe_port.preprocess import load_image

HERE = os.path.dirname(os.path.abspath(__file__))
LABELLED = os.path.join(HERE, "..", "tests", "data", "labelled")
OPTIONS = {"smoothgrad-grabcut": {"samples": 50, "noise": 0.15, "seed": 0}}


def sets(root):
    """{set name: (images, annotations)}."""
    return {"photographs": (os.path.join(root, "photos"), LABELLED),
            "composites": (os.path.join(root, "composites"), os.path.join(root, "composites.csv"))}


def by_part(images):
    """Top-5 localisation error on the composites by object, background and size (their names:
    <object>_<background>_<size>)."""
    groups = {}
    for record in images:
        parts = os.path.splitext(os.path.basename(record["image"]))[0].split("_")
        for key in parts:
            groups.setdefault(key, []).append(record["localised_top5"])
    return {key: 1 - sum(values) / len(values) for key, values in groups.items()}


def figure(photographs):
    """Rows of photographs, columns of recipes: the ground truth in green, the box of the
    ground-truth class (wherever it ranks) in red, its rank and IoU in the caption."""
    tiles, captions = [], []
    images = [record["image"] for record in next(iter(photographs.values()))]
    for image in images:
        photo = load_image(image)
        thickness = max(2, round(max(photo.shape[:2]) / 150))
        for name, records in photographs.items():
            record = next(r for r in records if r["image"] == image)
            picture = photo
            for box in record["truth"]:
                picture = render.draw_box(picture, box, (0, 200, 0), thickness)
            ranked = [(k, p) for k, p in enumerate(record["predictions"], 1) if p["class"] == record["label"]]
            caption = f"{name}: {os.path.basename(image)} class not in top 5"
            if ranked:
                rank, p = ranked[0]
                picture = render.draw_box(picture, p["box"], (230, 0, 0), thickness)
                overlap = "-" if p["iou"] is None else f"{p['iou']:.2f}"
                caption = f"{name}: {os.path.basename(image)} rank {rank}, IoU {overlap}"
            tiles.append(render.fit_tile(picture, 220))
            captions.append(caption)
    return render.grid(tiles, captions, columns=len(photographs))


def percent(value):
    return f"{100 * value:.1f}"


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    root, out = argv[1], argv[2]
    recipes = argv[3].split(",") if len(argv) > 3 else list(RECIPES)
    net = Net("efficientnet-lite0")
    results, breakdown, photographs = {}, {}, {}
    for set_name, (images, annotations) in sets(root).items():
        for name in recipes:
            t0 = time.perf_counter()
            result = evaluate([images], annotations, os.path.join(out, f"{set_name}-{name}"), recipe=name,
                              method_options=OPTIONS.get(name), net=net)
            results[f"{set_name}/{name}"] = {**result.errors, "images": result.scored,
                                             "failed": len(result.failed),
                                             "seconds": round(time.perf_counter() - t0, 1)}
            print(f"{set_name} {name}: {results[f'{set_name}/{name}']}", file=sys.stderr)
            if set_name == "composites":
                breakdown[name] = by_part(result.images)
            else:
                photographs[name] = result.images
    with open(os.path.join(out, "recipes.json"), "w", encoding="utf-8") as f:
        json.dump({"errors": results, "composites_top5_loc_error": breakdown}, f, indent=1)
    render.write_png(os.path.join(out, "recipes_photographs.png"), figure(photographs), force=True)
    names = list(sets(root))
    print("| recipe | " + " | ".join(f"{s}: top-1 loc | {s}: top-5 loc" for s in names) + " |")
    print("| --- |" + " ---: |" * (2 * len(names)))
    for name in recipes:
        cells = []
        for s in names:
            e = results[f"{s}/{name}"]
            cells += [percent(e["top1_loc_error"]), percent(e["top5_loc_error"])]
        print(f"| `{name}` | " + " | ".join(cells) + " |")
    print("| classification (every recipe) | " + " | ".join(
        f"{percent(results[f'{s}/{recipes[0]}']['top1_cls_error'])} | "
        f"{percent(results[f'{s}/{recipes[0]}']['top5_cls_error'])}" for s in names) + " |")
    if breakdown:
        keys = list(next(iter(breakdown.values())))
        print("\ncomposites, top-5 localisation error by part:\n")
        print("| recipe | " + " | ".join(keys) + " |")
        print("| --- |" + " ---: |" * len(keys))
        for name, parts in breakdown.items():
            print(f"| `{name}` | " + " | ".join(percent(parts[k]) for k in keys) + " |")


if __name__ == "__main__":
    main(sys.argv)

