"""What ``caffe-port batch INPUT...`` reads: image files, folders and lists, expanded into items.

    photo.jpg            one image (read even if its extension is unusual: it was named)
    photos/              every image file below it, recursively, by extension (IMAGE_EXTENSIONS),
                         in sorted path order; hidden files and folders are skipped
    val.txt              an image list: one path per line, optionally followed by whitespace and a
                         ground-truth class index (ILSVRC's ``val.txt``: "ILSVRC2012_val_00000001.JPEG
                         65"); relative paths resolve against the list's folder; blank lines and
                         lines starting with '#' are skipped

A list may name files that do not exist: they become items like any other, and the run gives
each a row with its error. A missing INPUT on the command line, a list that cannot be read or
a malformed line is an InputError naming the file (and line): nothing has started yet.

An item is identified by its resolved absolute ``path`` (the same file named twice is one item);
``image`` keeps the name as the user gave it, for the index.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from caffe_port.errors import InputError

# what OpenCV's imread reads (the formats it is built with in opencv-python-headless)
IMAGE_EXTENSIONS = frozenset((".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff",
                              ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".sr", ".ras", ".jp2",
                              ".exr", ".hdr", ".pic", ".avif"))
LIST_EXTENSIONS = (".txt",)


@dataclass(frozen=True)
class Item:
    """One image to explain."""
    image: str                  # as given: the command-line argument, the walked path, the list line
    path: str                   # resolved absolute path: the item's identity
    label: int | None = None    # ground-truth class index, from a list


def is_image_name(name) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def walk_folder(folder):
    """The image files below ``folder``, recursively, sorted; hidden entries skipped."""
    found = []
    for root, dirs, files in os.walk(folder, onerror=None, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files)
                  if not f.startswith(".") and is_image_name(f)]
    return found


def read_list(list_path):
    """Items of an image list (module docstring)."""
    base = os.path.dirname(os.path.abspath(list_path))
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{list_path}: not a text list of image paths (not UTF-8)") from None
    except OSError as e:
        raise InputError(f"{list_path}: cannot read the image list ({e.strerror})") from None
    items = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, label = text, None
        parts = text.rsplit(None, 1)
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            name, label = parts[0], int(parts[1])
            if label < 0:
                raise InputError(f"{list_path}:{number}: class index {label} is negative")
        path = name if os.path.isabs(name) else os.path.join(base, name)
        items.append(Item(name, os.path.abspath(path), label))
    return items


def collect(inputs):
    """INPUT arguments → [Item]; the same resolved path is kept once, where it first appears (with
    the ground-truth label of any list that names it)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items, seen = [], {}
    for given in inputs:
        given = os.fspath(given)
        if os.path.isdir(given):
            found = [Item(p, os.path.abspath(p)) for p in walk_folder(given)]
        elif given.lower().endswith(LIST_EXTENSIONS) and os.path.isfile(given):
            found = read_list(given)
        elif os.path.exists(given):
            found = [Item(given, os.path.abspath(given))]
        else:
            raise InputError(f"{given}: no such file or folder")
        for item in found:
            if item.path not in seen:
                seen[item.path] = len(items)
                items.append(item)
            elif item.label is not None and items[seen[item.path]].label is None:
                # a folder walked and a list naming the same file: the list's label counts
                items[seen[item.path]] = Item(items[seen[item.path]].image, item.path, item.label)
    return items
