"""What commands write and say: files checked all before any is written, and notes on stderr."""
from __future__ import annotations

import os
import sys

from caffe_port.errors import InputError
from caffe_port.render import write_npy, write_png


def note(text):
    """A line for the user on stderr (stdout carries the results)."""
    print(f"caffe-port: {text}", file=sys.stderr)


def stem(path):
    """The name output files start with: the image's, without directory or extension."""
    return os.path.splitext(os.path.basename(path))[0] or "image"


def short_name(name):
    """A class name's first synonym ("tabby, tabby cat" → "tabby")."""
    return name.split(",")[0].strip()


def ensure_directory(directory):
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise InputError(f"--out {directory}: exists and is not a directory")
    os.makedirs(directory, exist_ok=True)


class Outputs:
    """The files one command writes: all checked before any is written, so a refusal to overwrite
    leaves nothing half done.

    directory: --out (None: the current directory)
    force:     --force, overwrite (each file atomically)
    """

    def __init__(self, directory, force):
        self.directory = "." if directory is None else directory
        self.force = force
        self.items = []

    def png(self, name, picture):
        self.items.append(("png", self.png_path(name), picture))

    def npy(self, name, array):
        self.items.append(("npy", os.path.join(self.directory, name + ".npy"), array))

    def png_path(self, name):
        return os.path.join(self.directory, name + ".png")

    def check_free(self, paths):
        """InputError naming the first of ``paths`` that exists, unless --force: a command that
        computes for minutes asks before it starts."""
        if self.force:
            return
        existing = [path for path in paths if os.path.exists(path)]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise InputError(f"{existing[0]} exists{more}; pass --force to overwrite")

    def write(self, stream=None):
        """Write every file (paths printed on ``stream``, stdout by default: stderr when stdout
        carries JSON)."""
        ensure_directory(self.directory)
        self.check_free([path for _, path, _ in self.items])
        for kind, path, value in self.items:
            (write_png if kind == "png" else write_npy)(path, value, force=self.force)
            print(path, file=stream or sys.stdout)
