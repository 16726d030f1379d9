"""``caffe-port evaluate``: localisation error by the ILSVRC rule over an annotated image set
(caffe_port.evaluation), through the batch machinery (the options are ``batch``'s).
"""
from __future__ import annotations

import argparse
import json

from caffe_port.cli.batch import engine_settings, require_out, set_options
from caffe_port.cli.method_table import METHODS, recipe_method
from caffe_port.cli.options import Loaded, method_options, model_options, output_options, recipe_option
from caffe_port.cli.outputs import note
from caffe_port.methods.recipes import recipe

EPILOG = """\
INPUT: image files, folders, .txt lists, as for 'batch'. ANNOTATIONS: a folder of PASCAL VOC XML
files (ILSVRC's format, one per image, matched by the image's stem), one XML file, or a CSV of
image,class,x0,y0,x1,y1 rows. A class is a WordNet id (n02123045), an index or a name. VOC
corners are inclusive and 1-based; CSV boxes, like every box caffe-port prints, are half-open
and 0-based (x0 = 0, x1 = 10: the first ten columns).

An image counts as localised at top-K when one of its K best classes is its ground-truth class
and that class's box has IoU >= 0.5 with a ground-truth box of the class (the ILSVRC CLS-LOC
rule; an image with objects of n classes counts each for 1/n). DIR holds the batch's index and
DIR/evaluation.parquet, one row per image x ground-truth class x predicted class. A rerun
computes only what is missing. Exit status: 0, 1 when an image could not be scored, 2 for an
error that stopped the run. docs/evaluation.md has the rule, the recipes and their errors.
"""


def cmd_evaluate(args):
    from caffe_port.evaluation.job import evaluate     # pyarrow: only this command waits for it
    require_out(args, "evaluation.parquet")
    chosen = recipe(args.recipe)
    loaded = Loaded(args)
    entry = METHODS[recipe_method(chosen)]
    options = {option: getattr(args, option) for option in entry.options}
    settings = engine_settings(args, loaded)
    result = evaluate(args.inputs, args.annotations, args.out, recipe=chosen.name, method_options=options,
                      keep_maps=args.keep_maps, **settings)
    if args.json:
        print(json.dumps(result.as_json()))
    else:
        print(summary(result))
    for failure in result.failed:
        note(f"not scored: {failure['status']}")
    return 1 if result.failed else 0


def _percent(value):
    return "   n/a" if value is None else f"{100 * value:5.1f} %"


def summary(result) -> str:
    e = result.errors
    return "\n".join([
        f"recipe {result.recipe}: {result.scored} image(s) scored"
        + (f", {len(result.failed)} not scored" if result.failed else ""),
        "                 top-1     top-5",
        f"localisation   {_percent(e['top1_loc_error'])}   {_percent(e['top5_loc_error'])}   error",
        f"classification {_percent(e['top1_cls_error'])}   {_percent(e['top5_cls_error'])}   error",
        f"rows: {result.path}"])


def add_commands(sub):
    p = sub.add_parser("evaluate", help="localisation error by the ILSVRC rule over an annotated set",
                       description="Localise every image with a recipe (its top-5 classes) and score "
                                   "the boxes against ground truth: top-1 and top-5 classification "
                                   "and localisation error.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, .txt lists")
    p.add_argument("--annotations", required=True, metavar="ANN",
                   help="a folder of VOC XML files, one XML file, or a CSV (image,class,x0,y0,x1,y1)")
    g = p.add_argument_group("localisation")
    recipe_option(g)
    g.add_argument("--keep-maps", action="store_true", help="also write each map's .npy into DIR/maps")
    method_options(p)
    model_options(p)
    output_options(p, pictures=False)
    set_options(p)
    p.add_argument("--json", action="store_true",
                   help='print {"top1_loc_error", "top5_loc_error", "top1_cls_error", "top5_cls_error", '
                        '"images": [{"image", "label", "localised_top1", "localised_top5", "predictions": '
                        '[{"class", "box", "iou"}, ...]}, ...], "failed": [...]} (errors as fractions)')
    p.set_defaults(func=cmd_evaluate)
