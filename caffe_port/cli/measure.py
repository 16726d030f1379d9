"""The commands that measure maps: sanity (model-randomisation checks, caffe_port.sanity) and
metrics (deletion, insertion and the pointing game over a set, caffe_port.metrics)."""
from __future__ import annotations

import argparse
import json
import math
import sys

from tqdm import tqdm

from caffe_port import sanity
from caffe_port.batch.inputs import collect
from caffe_port.cli.method_table import METHODS, method_factory, method_names
from caffe_port.cli.options import (Loaded, as_class, method_options, model_options, output_options,
                                    target)
from caffe_port.cli.outputs import Outputs, note, short_name, stem
from caffe_port.errors import InputError
from caffe_port.metrics import measure, read_boxes_csv
from caffe_port.metrics.perturbation import BASELINES
from caffe_port.metrics.pointing import TOLERANCE
from caffe_port.preprocess import load_image

ALL = ",".join(METHODS)


def factories(names, loaded, args):
    """{name: factory(net)} of the methods that can run on the loaded net; a method that cannot
    (CAM without global average pooling) is left out with a note, as the grid does."""
    found = {}
    for name in names:
        factory = method_factory(name, args, **loaded.method_kwargs())
        try:
            factory(loaded.net)
        except InputError as e:
            note(f"{name} skipped: {e}")
            continue
        found[name] = factory
    if not found:
        raise InputError(f"none of the methods ({', '.join(names)}) can run on this net")
    return found


def progress_bar(what, quiet):
    """A tqdm bar on stderr driven by (done, total) calls, or None when quiet."""
    if quiet:
        return None, None
    bar = tqdm(total=0, desc=what, file=sys.stderr, leave=False)

    def update(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()
    return update, bar


def plain(value):
    """JSON has no NaN: undefined numbers are null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def json_safe(obj):
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return plain(obj)


# --- sanity ------------------------------------------------------------------------------------------

def cmd_sanity(args):
    if args.tile < 16:
        raise InputError(f"--tile must be at least 16 pixels, got {args.tile}")
    loaded = Loaded(args)
    photo = load_image(args.image)
    data = loaded.preset.preprocess(photo)
    net = loaded.net
    chosen = sanity.choose_units(sanity.units(net, args.units), args.layers)
    methods = factories(args.method, loaded, args)
    outputs = Outputs(args.out, args.force)
    figures = {mode: f"{stem(args.image)}_sanity_{mode}" for mode in args.modes}
    outputs.check_free([outputs.png_path(name) for name in figures.values()])
    update, bar = progress_bar("sanity", args.quiet)
    try:
        result = sanity.sanity_checks(net, methods, data, target(args),
                                      units_to_randomise=chosen, modes=args.modes, seed=args.init_seed,
                                      progress=update)
    finally:
        if bar is not None:
            bar.close()
    displays = {name: METHODS[name].display for name in methods}
    view = loaded.preset.deprocess(data)
    for mode, name in figures.items():
        outputs.png(name, sanity.figure(result, mode, displays, view, tile=args.tile))
    outputs.write(sys.stderr if args.json else None)
    report = result.as_json()
    report["image"] = args.image
    report["name"] = short_name(report["name"])
    if args.json:
        print(json.dumps(json_safe(report)))
        return 0
    print(f"{args.image}: class {result.target} ({report['name']}), score {result.score:.3f}; "
          f"re-initialised: truncated normal (±2σ, each tensor's own σ), seed {args.init_seed}")
    for mode in args.modes:
        print(f"\n{mode} randomisation (Spearman ρ of |map| with the trained net's map; "
              f"units top first)")
        names = [u.name for u in chosen]
        width = max(len(n) for n in names + ["unit"])
        print(" " * width + "  " + "".join(f"{m[:14]:>15}" for m in methods))
        for k, unit in enumerate(names):
            row = [result.results[m][mode][k].spearman_abs for m in methods]
            print(f"{unit:<{width}}  " + "".join(f"{v:>15.3f}" if math.isfinite(v) else f"{'—':>15}"
                                                 for v in row))
    return 0


def mode_names(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or any(n not in sanity.MODES for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"--mode takes {', '.join(sanity.MODES)} (a comma list), "
                                         f"got {text!r}")
    return names


def unit_names(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--layers needs at least one unit or layer name")
    return names


# --- metrics -----------------------------------------------------------------------------------------

def cmd_metrics(args):
    if args.step is not None and args.step < 1:
        raise InputError(f"--step must be a positive number of pixels, got {args.step}")
    if args.tolerance < 0:
        raise InputError(f"--tolerance must be non-negative, got {args.tolerance}")
    items = collect(args.inputs)           # a missing INPUT is refused before the net loads
    boxes = read_boxes_csv(args.boxes) if args.boxes else None
    loaded = Loaded(args)
    chosen = None if args.target is None else (args.target if args.target == "label" else as_class(args.target))
    methods = factories(args.method, loaded, args)
    update, bar = progress_bar("metrics", args.quiet)
    try:
        result = measure(items, loaded.net, loaded.preset, methods,
                         boxes=boxes, target=chosen, step=args.step,
                         deletion_baseline=args.deletion_baseline,
                         insertion_baseline=args.insertion_baseline, reduction=args.reduction,
                         tolerance=args.tolerance, progress=update)
    finally:
        if bar is not None:
            bar.close()
    failed = [r for r in result.images if r.error is not None]
    for r in failed:
        note(f"{r.item.image}: {r.error}")
    if args.json:
        print(json.dumps(json_safe(result.as_json())))
        return 1 if failed else 0
    summary = result.summary()
    measured = len(result.images) - len(failed)
    print(f"{measured} image(s); deletion from {args.deletion_baseline}, insertion from "
          f"{args.insertion_baseline}, class probability = softmax of the scores; pointing game "
          f"tolerance {args.tolerance} px" + ("" if boxes else " (no --boxes: not played)"))
    print(f"{'method':<16}{'deletion AUC ↓':>16}{'insertion AUC ↑':>17}{'pointing ↑':>12}  pairs")
    for name, s in summary.items():
        pointing = "—" if s["pointing_game"] is None else f"{s['pointing_game']:.3f}"
        print(f"{name:<16}{s['deletion_auc']:>16.4f}{s['insertion_auc']:>17.4f}{pointing:>12}  "
              f"{s['pointing_pairs']}")
    return 1 if failed else 0


# --- the parsers -------------------------------------------------------------------------------------

SANITY_EPILOG = """\
Re-initialisation: every parameter tensor of a unit (weights and biases) is redrawn from a normal
of mean 0 and the tensor's own standard deviation, truncated at 2 sigma, seeded by --init-seed and
the layer's position. Cascading: the units from the top down to this one are random; independent:
this unit alone. The maps of every randomised net are of the class the trained net chose, compared
with the trained net's: Spearman rank correlation of |map| (spearman_abs) and of the signed map
(spearman; channels summed), SSIM of |map| scaled to [0, 1]. The net's trained weights are restored
afterwards. --json prints {"methods": {name: {"cascading": [{"layer", "spearman_abs", "spearman",
"ssim"}], "independent": [...]}}, "class", "units", ...} (null where a map is constant). See
docs/measuring-maps.md.
"""

METRICS_EPILOG = """\
Deletion (Petsiuk et al. 2018): the map's pixels, most important first, --step at a time, set to the
baseline; insertion: put back into the baseline. The curve is the class's softmax probability
against the fraction of pixels; AUC by the trapezoid rule (deletion: lower is better, insertion:
higher). Baselines in the network's input space: zeros, or the image blurred (11x11 Gaussian, sigma
5, as RISE). The pointing game (Zhang et al. 2016): for each class an image has boxes of, a hit when
the map's maximum is within --tolerance pixels of one of them; the score is the mean over classes
of each class's hit rate. --boxes: a CSV of image file name, class (index or name), x0, y0, x1, y1
(half-open, the photograph's pixels). INPUT as for batch: files, folders, .txt lists. See
docs/measuring-maps.md.
"""


def add_commands(sub):
    p = sub.add_parser("sanity", help="model-randomisation sanity checks of the maps (Adebayo et al.)",
                       description="Cascading and independent re-initialisation of the weights, and "
                                   "how much each method's map of one image changes.",
                       epilog=SANITY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--method", type=method_names, default=list(METHODS), metavar="M[,M...]",
                   help=f"methods, comma-separated (default: all: {ALL})")
    method_options(p)
    model_options(p)
    p.add_argument("--class", dest="target", default=None, metavar="C",
                   help="a class index or name (default: the trained net's top class)")
    g = p.add_argument_group("randomisation")
    g.add_argument("--units", choices=sanity.UNITS, default="block",
                   help="block: layers grouped by name up to the last '.' or '/' (default); layer: "
                        "every layer with parameters")
    g.add_argument("--layers", type=unit_names, default=None, metavar="U[,U...]",
                   help="only these units (or the units of these layers) as columns; cascading still "
                        "randomises everything above each")
    g.add_argument("--mode", dest="modes", type=mode_names, default=list(sanity.MODES),
                   metavar="MODE[,MODE]", help="cascading, independent or both (default both)")
    g.add_argument("--init-seed", type=int, default=0, help="seed of the random weights (default 0)")
    g.add_argument("--tile", type=int, default=sanity.FIGURE_TILE, metavar="PX",
                   help=f"the figure's tile size in pixels (default {sanity.FIGURE_TILE})")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    output_options(p, pictures=False)
    p.add_argument("--json", action="store_true", help="print the numbers as JSON (see below)")
    p.set_defaults(func=cmd_sanity)

    p = sub.add_parser("metrics", help="deletion / insertion AUC and the pointing game over images",
                       description="Faithfulness (deletion, insertion) and pointing (with --boxes) "
                                   "of each method's maps over a set of images.",
                       epilog=METRICS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, .txt lists")
    p.add_argument("--method", type=method_names, default=list(METHODS), metavar="M[,M...]",
                   help=f"methods, comma-separated (default: all: {ALL})")
    method_options(p)
    model_options(p)
    p.add_argument("--class", dest="target", default=None, metavar="C",
                   help="the class deletion and insertion explain: an index, a name, or 'label' "
                        "(each image's class from its list); default: the top class")
    g = p.add_argument_group("metrics")
    g.add_argument("--boxes", default=None, metavar="CSV",
                   help="ground-truth boxes: image,class,x0,y0,x1,y1 (plays the pointing game)")
    g.add_argument("--step", type=int, default=None, metavar="N",
                   help="pixels per deletion/insertion step (default: the input's width, as RISE)")
    g.add_argument("--deletion-baseline", choices=BASELINES, default="zeros",
                   help="what deleted pixels become (default zeros, after pre-processing)")
    g.add_argument("--insertion-baseline", choices=BASELINES, default="blur",
                   help="where insertion starts (default blur, as RISE)")
    g.add_argument("--reduction", choices=("abs", "sum"), default="abs",
                   help="a (C, H, W) map's value per pixel: sum of |M_c| (default) or of M_c")
    g.add_argument("--tolerance", type=int, default=TOLERANCE, metavar="PX",
                   help=f"pointing game tolerance in pixels (default {TOLERANCE}, TorchRay's)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help='print {"settings", "methods": {name: {"deletion_auc", "insertion_auc", '
                        '"pointing_game", ...}}, "images": [...]}')
    p.set_defaults(func=cmd_metrics)
