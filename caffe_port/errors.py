"""Errors caffe_port raises on purpose.

Each is raised where the fact is known, with the file, node, layer or blob named in a single-line
message; the CLI catches ``CaffePortError`` once, prints the line and exits non-zero.
"""


class CaffePortError(Exception):
    """Base class: a problem with the user's input, stated in one line."""


class ModelError(CaffePortError):
    """A model file or ModelProto that cannot be read or used (truncated, not ONNX, inconsistent)."""


class UnsupportedOpError(ModelError):
    """The graph uses op types that have no backward kernel."""

    def __init__(self, unsupported, advice=None):
        # unsupported: {op_type: [node names]}; advice: {op_type: the nearest supported alternative}
        self.unsupported = dict(unsupported)
        self.advice = dict(advice or {})
        # a damaged file's op type may hold control characters: quoted then, to stay one line
        parts = [f"{op if op.isprintable() else repr(op)} (node {', '.join(repr(n) for n in nodes[:3])}"
                 f"{', …' if len(nodes) > 3 else ''}"
                 + (f"; nearest supported: {self.advice[op]}" if op in self.advice else "") + ")"
                 for op, nodes in sorted(self.unsupported.items())]
        super().__init__("unsupported op type" + ("s" if len(parts) > 1 else "") + " on the backward path: "
                         + "; ".join(parts))


class BlobError(CaffePortError, KeyError):
    """An unknown blob or layer name."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ShapeError(CaffePortError, ValueError):
    """An array whose shape does not fit the blob it is meant for."""


class InputError(CaffePortError, ValueError):
    """A bad user input other than a model: an image, a class index, an option value."""


class DeviceError(CaffePortError):
    """A device was asked for that this machine cannot provide."""
