"""The commands that show how the backward pass works: gradcheck (every layer against finite
differences) and trace (the diff's flow to the image under the three ReLU rules)."""
from __future__ import annotations

import json
import sys

from caffe_port.cli.options import EMBEDDED, Loaded, model_options, output_options, target
from caffe_port.cli.outputs import Outputs, stem
from caffe_port.gradcheck import gradcheck
from caffe_port.kernels.relu import RULES
from caffe_port.preprocess import load_image
from caffe_port.trace import format_trace, trace_json, trace_picture, trace_rules


def cmd_gradcheck(args):
    report = gradcheck(args.model, layer=args.layer, rule=args.rule, points=args.points,
                       input_size=args.size, weights=args.weights)
    print(json.dumps(report.as_dict()) if args.json else report)
    return 0 if report.ok else 1


def cmd_trace(args):
    loaded = Loaded(args)
    data = loaded.preset.preprocess(load_image(args.image))
    result = trace_rules(loaded.net, data[0], class_index=target(args), score_blob=args.score_blob)
    outputs = Outputs(args.out, args.force)
    outputs.png(f"{stem(args.image)}_trace",
                trace_picture(result, bgr=loaded.preset.channel_order == "BGR"))
    outputs.write(sys.stderr if args.json else None)
    print(json.dumps(trace_json(result)) if args.json else format_trace(result))
    return 0


def add_commands(sub):
    p = sub.add_parser("gradcheck", help="check every layer's backward against finite differences",
                       description="Caffe's GradientChecker for a whole model: every layer's backward "
                                   "on the model's real shapes (float64, random data, real weights) "
                                   "against central finite differences, kinks skipped; for the "
                                   "deconvnet/guided rules the ReLU layers are checked against their "
                                   "formulas. Exit status 1 when a layer fails.")
    p.add_argument("model", help="an .onnx file, a deploy.prototxt (with --weights), "
                                 f"'{EMBEDDED}', or a builder name such as vgg16")
    p.add_argument("--weights", default=None, metavar="W", help="the .caffemodel of a prototxt")
    p.add_argument("--layer", default=None, help="check only this layer")
    p.add_argument("--rule", default="backprop", choices=tuple(RULES))
    p.add_argument("--points", type=int, default=16, help="sampled points per layer (default 16)")
    p.add_argument("--size", type=int, default=None, metavar="S",
                   help="run at S×S input to make it fast (e.g. 32 for VGG16)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("trace", help="how the diff flows to the image under the three rules",
                       description="Caffe's debug_info for the three ReLU rules on one image: mean "
                                   "|diff| per layer (log scale) and the pass fraction at each ReLU, "
                                   "beside the three input maps; one PNG, plus the numbers.")
    p.add_argument("image")
    model_options(p)
    p.add_argument("--class", dest="target", default=None, metavar="C")
    output_options(p, pictures=False)
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(func=cmd_trace)
