"""The commands about the model itself: info (what Caffe printed at net construction) and
convert (a Caffe model to ONNX)."""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import onnx

from caffe_port.cli.options import Loaded, model_options
from caffe_port.errors import InputError
from caffe_port.models.caffe_net import caffe_to_onnx


def cmd_info(args):
    loaded = Loaded(args, image=False)
    net = loaded.net
    feeds = {}
    for name in net.inputs:
        shape = net.graph.input_shape(name, batch=1)
        if None in shape:
            shape = tuple(224 if s is None else s for s in shape)
        feeds[name] = np.zeros(shape, dtype=net.graph.input_dtype(name))
    net.forward(**feeds)
    layers = [{"name": n.name, "type": n.op_type, "bottoms": [i for i in n.inputs if i],
               "tops": [o for o in n.outputs if o]} for n in net.graph.nodes]
    blobs = {b: list(net.blobs[b].shape) for b in net.blobs}
    params = {layer: [list(p.shape) for p in blobs_] for layer, blobs_ in net.params.items()}
    if args.json:
        print(json.dumps({"inputs": net.inputs, "outputs": net.outputs, "score_blob": net.score_blob,
                          "input_layout": net.input_layout, "layers": layers, "blobs": blobs,
                          "params": params}))
        return 0
    print(f"{loaded.model_name}: {len(layers)} layers, inputs {net.inputs} ({net.input_layout}), "
          f"outputs {net.outputs}, pre-softmax scores {net.score_blob!r}")
    print("\nlayers (name, type: bottoms -> tops)")
    for layer in layers:
        print(f"  {layer['name']:<28} {layer['type']:<20} {', '.join(layer['bottoms']) or '-'} -> "
              f"{', '.join(layer['tops'])}")
    print("\nblobs (shape for one image)")
    for b, shape in blobs.items():
        print(f"  {b:<36} {tuple(shape)}")
    print("\nparams")
    total = 0
    for layer, shapes in params.items():
        count = sum(int(np.prod(s)) for s in shapes)
        total += count
        print(f"  {layer:<28} {' '.join(str(tuple(s)) for s in shapes):<40} {count:,}")
    print(f"  total {total:,} parameters")
    return 0


def cmd_convert(args):
    if os.path.exists(args.output) and not args.force:
        raise InputError(f"{args.output} exists; pass --force to overwrite")
    model = caffe_to_onnx(args.prototxt, args.caffemodel)
    directory = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(directory):
        raise InputError(f"{args.output}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".caffe-port-", suffix=".onnx", dir=directory)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        if args.force:
            os.replace(tmp, args.output)
        else:
            os.link(tmp, args.output)   # fails if the name appeared meanwhile: never clobber
            os.unlink(tmp)
    except FileExistsError:
        os.unlink(tmp)
        raise InputError(f"{args.output} exists; pass --force to overwrite") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    print(f"{args.output}: {len(model.graph.node)} nodes, opset "
          f"{model.opset_import[0].version}, inputs {[i.name for i in model.graph.input]}, "
          f"outputs {[o.name for o in model.graph.output]}")
    return 0


def add_commands(sub):
    p = sub.add_parser("info", help="layers, blob shapes and params of a model",
                       description="What Caffe printed at net construction: layers, blob shapes, params.")
    model_options(p, image=False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="Caffe deploy.prototxt + .caffemodel -> ONNX",
                       description="Convert a Caffe model to ONNX (Caffe's pooling arithmetic, in-place "
                                   "blobs and layer names kept).")
    p.add_argument("prototxt")
    p.add_argument("caffemodel", nargs="?", default=None)
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    p.add_argument("--force", action="store_true", help="overwrite OUT.onnx (atomically)")
    p.set_defaults(func=cmd_convert)
