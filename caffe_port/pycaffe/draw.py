"""``caffe.draw``: a picture of a ``NetParameter``, as pycaffe's draw.py (and ``draw_net.py``)
make it — one box per layer, one octagon per blob, an edge for each bottom and top:

    net = caffe_pb2.NetParameter(); text_format.Merge(open("train_val.prototxt").read(), net)
    caffe.draw.draw_net_to_file(net, "net.png", "LR", phase=caffe.TRAIN)

Layer boxes read "name (Type)" with kernel size, stride and pad for Convolution, Deconvolution
and Pooling (and the learning-rate multipliers with ``display_lrm``); in-place neuron layers are
green, Convolution red, Pooling orange, InnerProduct purple, others blue; edges out of a layer
are labelled with its output count (Convolution, InnerProduct) or batch size (Data). ``phase``
keeps the layers whose include/exclude rules admit that phase (their phase field only, as
pycaffe's draw reads them). Needs pydot (``pip install 'caffe_port[draw]'``); rendering to an
image also needs Graphviz's ``dot`` program.
"""
from __future__ import annotations

from caffe_port.errors import InputError
from caffe_port.pycaffe.proto import caffe_pb2

LAYER_STYLE = {"shape": "record", "style": "filled"}
NEURON_FILL = "#90EE90"
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}
TYPE_FILLS = {"Convolution": "#FF5050", "Deconvolution": "#FF5050", "Pooling": "#FF9900",
              "InnerProduct": "#CC33FF"}
DEFAULT_FILL = "#6495ED"
LEARNING_TYPES = ("Convolution", "Deconvolution", "InnerProduct")


def _pydot():
    try:
        import pydot     # optional: only drawing needs it
    except ImportError:
        raise InputError("caffe.draw needs pydot: pip install 'caffe_port[draw]'") from None
    return pydot


def get_pooling_types_dict():
    """{PoolMethod number: its name}."""
    return {value.number: name for name, value in
            caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values_by_name.items()}


def choose_color_by_layertype(layertype):
    return TYPE_FILLS.get(layertype, DEFAULT_FILL)


def get_edge_label(layer):
    """What an edge out of ``layer`` says: its outputs, a Data layer's batch, else nothing."""
    if layer.type == "Data":
        return f"Batch {layer.data_param.batch_size}"
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weights', biases') learning-rate multipliers of a Convolution, Deconvolution or
    InnerProduct layer (1.0 where its ``param`` entries do not say)."""
    if layer.type not in LEARNING_TYPES:
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier")
    multipliers = [spec.lr_mult for spec in layer.param]
    if len(multipliers) > 2:
        raise ValueError("Could not parse the learning rate multiplier")
    return tuple(multipliers + [1.0] * (2 - len(multipliers)))


def get_layer_label(layer, rankdir, display_lrm=False):
    """A layer box's quoted label; words stacked on lines for a left-right graph, spaced for a
    top-bottom one."""
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    parts = [layer.name]
    if layer.type == "Pooling":
        parts.append(f"({layer.type} {get_pooling_types_dict()[layer.pooling_param.pool]})")
    else:
        parts.append(f"({layer.type})")
    if layer.type == "Pooling":
        p = layer.pooling_param
        kernel, stride, pad = p.kernel_size, p.stride, p.pad
    elif layer.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        kernel = p.kernel_size[0] if len(p.kernel_size) else 1
        stride = p.stride[0] if len(p.stride) else 1
        pad = p.pad[0] if len(p.pad) else 0
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        parts.append(separator.join([f"kernel size: {kernel}", f"stride: {stride}",
                                     f"pad: {pad}"]))
    if display_lrm and layer.type in LEARNING_TYPES:
        weights, biases = get_layer_lr_mult(layer)
        if weights or biases:
            parts.append(f"lr mult: {weights:.1f}, {biases:.1f}")
    return '"' + separator.join(parts) + '"'


def _admitted(layer, phase):
    """pycaffe's draw filter: no include rule or one of that phase, and no exclude rule of it."""
    if len(layer.include) and len(layer.exclude):
        raise ValueError(f"layer {layer.name} has both include and exclude specified.")
    included = not len(layer.include) or any(rule.phase == phase for rule in layer.include)
    return included and not any(rule.phase == phase for rule in layer.exclude)


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """The pydot graph of ``caffe_net`` (a NetParameter): see the module docstring."""
    pydot = _pydot()
    graph = pydot.Dot(caffe_net.name or "Net", graph_type="digraph", rankdir=rankdir)
    nodes, edges = {}, []
    for layer in caffe_net.layer:
        if phase is not None and not _admitted(layer, phase):
            continue
        key = f"{layer.name}_{layer.type}"
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        in_place = len(layer.bottom) == 1 and list(layer.bottom) == list(layer.top)
        fill = NEURON_FILL if in_place else choose_color_by_layertype(layer.type)
        nodes[key] = pydot.Node(label, **LAYER_STYLE, fillcolor=fill)
        for bottom in layer.bottom:
            nodes[bottom + "_blob"] = pydot.Node(bottom, **BLOB_STYLE)
            edges.append((bottom + "_blob", key, '""'))
        for top in layer.top:
            nodes[top + "_blob"] = pydot.Node(top)
            edges.append((key, top + "_blob", get_edge_label(layer) if label_edges else '""'))
    for node in nodes.values():
        graph.add_node(node)
    for source, target, label in edges:
        graph.add_edge(pydot.Edge(nodes[source], nodes[target], label=label))
    return graph


def draw_net(caffe_net, rankdir, ext="png", phase=None, display_lrm=False):
    """The picture as bytes in format ``ext`` (rendered by Graphviz)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    try:
        return graph.create(format=ext)
    except FileNotFoundError:
        raise InputError("caffe.draw renders with Graphviz's dot program, which is not "
                         "installed (apt-get install graphviz)") from None


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Write the picture to ``filename`` in the format its extension names ('.raw' writes the
    Graphviz source)."""
    ext = filename[filename.rfind(".") + 1:]
    image = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(filename, "wb") as f:
        f.write(image)
