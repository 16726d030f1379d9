"""The commands that explain a photograph's classes: classify, saliency, localize, classmodel,
grid and demo. Each loads the net (options.Loaded), calls caffe_port.methods, and hands the maps
to caffe_port.render; outputs.Outputs writes the files.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from caffe_port import render
from caffe_port.cli.method_table import GRID, METHODS, build_method, recipe_method
from caffe_port.cli.options import (Loaded, as_class, check_top_k, class_options, method_options,
                                    model_options, output_options, recipe_option, target)
from caffe_port.cli.outputs import Outputs, note, short_name, stem
from caffe_port.errors import InputError
from caffe_port.methods import ClassModel, Localizer, Saliency
from caffe_port.methods.recipes import recipe
from caffe_port.preprocess import load_image

SAMPLE_IMAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                            "chelsea.jpg")


def cmd_classify(args):
    loaded = Loaded(args)
    data = loaded.preset.preprocess(load_image(args.image))
    method = Saliency(loaded.net, **loaded.method_kwargs())
    scores = method.scores(data)[0]
    k = check_top_k(args.top_k or 5, scores.size)
    prob = np.exp(scores - scores.max())
    prob /= prob.sum()
    order = np.argsort(-prob, kind="stable")[:k]
    rows = [{"class": int(c), "name": short_name(method.class_name(int(c))), "prob": float(prob[c])}
            for c in order]
    if args.json:
        print(json.dumps({"top_k": rows}))
    else:
        print(f"{args.image} ({os.path.basename(str(loaded.model_name))})")
        for rank, row in enumerate(rows, 1):
            print(f"  {rank}. {row['class']:>4} {row['name']:<30} {row['prob']:.3f}")
    return 0


def cmd_saliency(args):
    loaded = Loaded(args)
    photo = load_image(args.image)
    data = loaded.preset.preprocess(photo)
    method = build_method(args.method, loaded, args)
    display = METHODS[args.method].display
    if args.top_k is not None:
        check_top_k(args.top_k, method.num_classes)
    t0 = time.perf_counter()
    chosen, maps = method.targets_and_maps(data, target(args), args.top_k)
    elapsed = time.perf_counter() - t0
    outputs = Outputs(args.out, args.force)
    for k in range(chosen.classes.shape[0]):
        c = int(chosen.classes[k, 0])
        name = f"{stem(args.image)}_{args.method}_c{c}"
        saliency_map = loaded.preset.to_original(maps[k, 0], photo.shape[:2])
        pictures = render.map_pictures(saliency_map, photo, display, loaded.preset.channel_order,
                                       args.percentile)
        for kind, picture in pictures.items():
            outputs.png(name if kind == "grey" else f"{name}_{kind}", picture)
        outputs.npy(name, saliency_map)
        note(f"{args.method}: class {c} ({short_name(method.class_name(c))}), score "
             f"{chosen.scores[k, 0]:.3f}")
    outputs.write()
    note(f"{args.method} took {1e3 * elapsed:.0f} ms")
    return 0


def cmd_localize(args):
    loaded = Loaded(args)
    photo = load_image(args.image)
    chosen = recipe(args.recipe)
    localizer = chosen.localizer(build_method(recipe_method(chosen), loaded, args), loaded.preset)
    results = localizer.localize(photo, target=target(args), top_k=args.top_k)
    boxes = [{"class": r.class_index, "name": short_name(r.class_name), "score": r.score,
              "box": None if r.box is None else [int(v) for v in r.box]} for r in results]
    if args.out is not None or not args.json:
        outputs = Outputs(args.out, args.force)
        for r in results:
            picture = render.draw_box(photo, r.box, label=short_name(r.class_name))
            outputs.png(f"{stem(args.image)}_localize_c{r.class_index}", picture)
            outputs.png(f"{stem(args.image)}_localize_c{r.class_index}_mask", (r.mask * 255).astype("uint8"))
        outputs.write(sys.stderr if args.json else None)
    if args.json:
        print(json.dumps({"boxes": boxes}))
    else:
        for b in boxes:
            print(f"class {b['class']} ({b['name']}), score {b['score']:.3f}: box {b['box']}")
    return 0


def cmd_classmodel(args):
    loaded = Loaded(args)
    if args.target is None:
        raise InputError("classmodel needs --class (an index or a name, e.g. --class goose)")
    targets = [as_class(t) for t in args.target.split(";")]
    model = ClassModel(loaded.net, preset=loaded.preset, **loaded.method_kwargs())
    result = model.generate(targets, iterations=args.iterations, lr=args.lr,
                            weight_decay=args.weight_decay, jitter=args.jitter,
                            blur_every=args.blur_every, blur_sigma=args.blur_sigma,
                            clip_percentile=args.clip_percentile, seed=args.seed,
                            progress=not args.quiet)
    outputs = Outputs(args.out, args.force)
    for k, c in enumerate(result.classes):
        c = int(c)
        outputs.png(f"classmodel_c{c}", render.upscale(result.images[k]))
        outputs.npy(f"classmodel_c{c}", result.data[k])
        note(f"class {c} ({short_name(model.class_name(c))}): score {result.scores[k, c]:.2f}, "
             f"softmax {result.probabilities[k, c]:.3f}")
    outputs.write()
    return 0


def cmd_grid(args):
    return all_methods(args, args.image)


def cmd_demo(args):
    note(f"the sample photograph is scikit-image's 'chelsea' (CC0), bundled as {SAMPLE_IMAGE}")
    args.model, args.weights, args.preset = None, None, None
    return all_methods(args, SAMPLE_IMAGE)


def all_methods(args, image_path):
    """The grid: every ``grid`` method of the table on the photograph's top (or --class) class,
    then the localisation box and the class model."""
    loaded = Loaded(args)
    photo = load_image(image_path)
    data = loaded.preset.preprocess(photo)
    kw = loaded.method_kwargs()
    saliency = Saliency(loaded.net, **kw)
    chosen = saliency.targets(data, target(args), None)
    saliency.release()
    c = int(chosen.classes[0, 0])
    figure = render.MethodGrid(photo, f"{short_name(saliency.class_name(c))} (class {c}), score "
                                      f"{chosen.scores[0, 0]:.2f}", loaded.preset.channel_order)
    timings = {}
    for name in GRID:
        try:
            method = build_method(name, loaded, args)
        except InputError as e:            # CAM on a net without global average pooling
            note(f"{name} skipped: {e}")
            continue
        t0 = time.perf_counter()
        saliency_map = method.attribute(data, target=c)[0]
        timings[name] = time.perf_counter() - t0
        figure.add_map(name, loaded.preset.to_original(saliency_map, photo.shape[:2]),
                       METHODS[name].display, args.percentile)
    found = Localizer(saliency, loaded.preset).localize(photo, target=c)[0]
    figure.add_box(f"localisation {found.box}", found.box)
    if args.iterations > 0:
        model = ClassModel(loaded.net, preset=loaded.preset, **kw)
        result = model.generate(c, iterations=args.iterations, seed=args.seed, progress=not args.quiet)
        figure.add(f"class model, softmax {result.probabilities[0, c]:.2f}", result.images[0])
    outputs = Outputs(args.out, args.force)
    outputs.png(f"{stem(image_path)}_grid_c{c}", figure.picture(args.columns))
    outputs.write()
    note("times: " + ", ".join(f"{k} {1e3 * v:.0f} ms" for k, v in timings.items()))
    return 0


# --- the parsers ---------------------------------------------------------------------------------

def _layer_option(p):
    p.add_argument("--layer", default=None, help="Grad-CAM's blob (default: the last spatial one)")


def add_commands(sub):
    p = sub.add_parser("classify", help="top-k classes of an image",
                       description="Classify an image: the top-k classes and their softmax probabilities.")
    p.add_argument("image")
    model_options(p)
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="how many classes (default 5)")
    p.add_argument("--json", action="store_true",
                   help='print {"top_k": [{"class": 281, "name": "tabby", "prob": 0.71}, ...]}')
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("saliency", help="saliency / deconvnet / guided / CAM / Grad-CAM maps of an image",
                       description="Maps for one image, written as PNGs (grey map, overlay; signed "
                                   "methods: all/positive/negative) and raw .npy, in original-image "
                                   "pixels. 'saliency' is Simonyan et al.'s max over channels of "
                                   "|d score / d image|, the score being the pre-softmax fc8.")
    p.add_argument("image")
    p.add_argument("--method", default="saliency", choices=tuple(METHODS))
    method_options(p)
    model_options(p)
    class_options(p)
    output_options(p)
    p.set_defaults(func=cmd_saliency)

    p = sub.add_parser("classmodel", help="class model visualisation (Simonyan et al. §2)",
                       description="Gradient ascent on the image for S_c(I) - lambda |I|^2 from the zero "
                                   "image; the mean is added back at the end.")
    model_options(p)
    p.add_argument("--class", dest="target", default=None, metavar="C",
                   help="class index or name; several separated by ';' (e.g. 'goose;ostrich')")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--lr", type=float, default=1.0, help="step size")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="lambda of the L2 penalty")
    p.add_argument("--jitter", type=int, default=0, help="random shifts in pixels (off by default)")
    p.add_argument("--blur-every", type=int, default=0, help="Gaussian blur every N steps (off by default)")
    p.add_argument("--blur-sigma", type=float, default=1.0)
    p.add_argument("--clip-percentile", type=float, default=0.0,
                   help="zero pixels below this percentile of norm (off by default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    output_options(p, pictures=False)
    p.set_defaults(func=cmd_classmodel)

    p = sub.add_parser("localize", help="weakly supervised localisation (Simonyan et al. §3.1)",
                       description="Saliency -> GrabCut colour models -> largest component -> box "
                                   "(the paper's recipe; --recipe chooses another map or segmentation).")
    p.add_argument("image")
    recipe_option(p)
    method_options(p)
    model_options(p)
    class_options(p)
    output_options(p)
    p.add_argument("--json", action="store_true",
                   help='print {"boxes": [{"class", "name", "score", "box": [x0, y0, x1, y1]}, ...]} '
                        '(boxes half-open, original-image pixels); PNGs only with --out')
    p.set_defaults(func=cmd_localize)

    for name, helptext, func in (("grid", "all methods side by side for one image", cmd_grid),
                                 ("demo", "the grid for the bundled sample photo on the embedded model",
                                  cmd_demo)):
        p = sub.add_parser(name, help=helptext, description=f"{helptext}: {', '.join(GRID)}, the "
                                                             f"localisation box and the class model.")
        if name == "grid":
            p.add_argument("image")
        model_options(p)
        p.add_argument("--class", dest="target", default=None, metavar="C")
        _layer_option(p)
        p.add_argument("--iterations", type=int, default=100, help="class model steps (0: none)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--columns", type=int, default=5)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        output_options(p)
        p.set_defaults(func=func)
