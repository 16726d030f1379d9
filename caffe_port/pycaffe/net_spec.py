"""Nets written in Python, as pycaffe's ``caffe.NetSpec``, ``caffe.layers``, ``caffe.params`` and
``caffe.to_proto`` write them:

    from caffe_port.pycaffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[64, 1, 28, 28]), dict(dim=[64, 1, 1, 1])], ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.loss = L.SoftmaxWithLoss(n.pool1, n.label)
    print(n.to_proto())            # a caffe.NetParameter (caffe_port's schema)

``L.<Type>(*bottoms, **settings)`` is a ``Function`` (a layer to be): it returns its one
``Top``, a tuple of ``ntop`` Tops, or itself when ``ntop=0``. ``in_place=True`` makes the tops
the bottoms. A setting whose name ends in ``param`` is a LayerParameter field; any other is a
field of the type's ``<type>_param`` message when the schema has one for that type, else a
LayerParameter field (``loss_weight``, ``include``, ``param`` …). Values: a list fills a
repeated field (a list of dicts, a repeated message), a dict a message, a lone value a repeated
field's single entry. ``P.<Type>.<VALUE>`` is the enum value of ``<Type>Parameter``.

Names: a NetSpec's attribute names its top, and a layer takes the name of its first top; other
tops and top-less layers are named ``<Type><k>``, k counting per type in the order
``to_proto`` meets them — as pycaffe names them, so its prototxts come out the same.
"""
from __future__ import annotations

import functools
from collections import Counter, OrderedDict

from caffe_port.pycaffe.proto import caffe_pb2


@functools.lru_cache(maxsize=None)
def param_fields():
    """{layer type: its ``*_param`` field}, from the schema: field ``convolution_param`` of type
    ConvolutionParameter serves type "Convolution"."""
    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields
    return {f.message_type.name[:-len("Parameter")]: f.name for f in fields
            if f.name.endswith("_param") and f.message_type is not None}


def assign_proto(message, field, value):
    """Set ``message.field`` from a Python value (recursively): see the module docstring."""
    target = getattr(message, field)
    repeated = hasattr(target, "extend")
    if repeated and not isinstance(value, list):
        value = [value]
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            for entry in value:
                item = target.add()
                for key, sub in entry.items():
                    assign_proto(item, key, sub)
        else:
            target.extend(value)
    elif isinstance(value, dict):
        for key, sub in value.items():
            assign_proto(target, key, sub)
    else:
        setattr(message, field, value)


class Top:
    """Top ``n`` of the layer ``fn``: what a later layer takes as a bottom."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter of every layer this top needs."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer to be: its type, its bottoms (Tops), its settings."""

    def __init__(self, type_name, inputs, params):
        for index, value in enumerate(inputs):
            if not isinstance(value, Top):
                raise TypeError(f"{type_name} input {index} is not a Top (type is {type(value)})")
        self.type_name = type_name
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _auto_name(self, autonames):
        autonames[self.type_name] += 1
        return f"{self.type_name}{autonames[self.type_name]}"

    def _top_name(self, top, names, autonames):
        if top not in names:
            names[top] = top.fn._auto_name(autonames)
        return names[top]

    def _name(self, names, autonames):
        if self not in names:
            names[self] = (self._top_name(self.tops[0], names, autonames) if self.ntop
                           else self._auto_name(autonames))
        return names[self]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottoms = []
        for top in self.inputs:
            top._to_proto(layers, names, autonames)
            bottoms.append(layers[top.fn].top[top.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._top_name(top, names, autonames) for top in self.tops)
        layer.name = self._name(names, autonames)
        for key, value in self.params.items():
            if key.endswith("param"):
                assign_proto(layer, key, value)
                continue
            try:
                assign_proto(getattr(layer, param_fields()[self.type_name]), key, value)
            except (AttributeError, KeyError):
                assign_proto(layer, key, value)
        layers[self] = layer


def to_proto(*tops):
    """A NetParameter of every layer the ``tops`` need, blobs and layers named automatically."""
    layers, autonames = OrderedDict(), Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Tops assigned as attributes (or items) by name; ``to_proto`` writes the layers they need,
    naming the assigned tops (and their layers) after the attributes."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"this NetSpec has no top {name!r}") from None

    def __setitem__(self, name, value):
        self.__setattr__(name, value)

    def __getitem__(self, name):
        return self.__getattr__(name)

    def to_proto(self):
        names = {top: name for name, top in self.tops.items()}
        layers, autonames = OrderedDict(), Counter()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``L.<Type>(*bottoms, **settings)``: a layer of that type (see the module docstring)."""

    def __getattr__(self, type_name):
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def make(*inputs, **params):
            fn = Function(type_name, inputs, params)
            if fn.ntop == 0:
                return fn
            return fn.tops[0] if fn.ntop == 1 else fn.tops
        return make


class Parameters:
    """``P.<Type>.<VALUE>``: an enum value of the schema's ``<Type>Parameter``."""

    def __getattr__(self, type_name):
        if type_name.startswith("__"):
            raise AttributeError(type_name)
        message = getattr(caffe_pb2, type_name + "Parameter")

        class Values:
            def __getattr__(self, value_name):
                return getattr(message, value_name)
        return Values()


layers = Layers()
params = Parameters()
