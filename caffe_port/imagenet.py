"""ImageNet-1k (ILSVRC-2012) class names: index → name, and name → index.

The table is caffe_port/data/imagenet_classes.txt, in Caffe's synset_words.txt form: line i is
class i, "<wnid> <synonym>, <synonym>, …" (e.g. "n02123045 tabby, tabby cat"), with the wnids in
sorted order (that order is what defines the indices). It is written by
tools/make_imagenet_classes.py.

Lookups by name are tolerant: case, surrounding space, repeated spaces and underscores
("Tiger_Cat") do not matter, and any single synonym of a line names its class ("tabby cat" → 281);
a whole line or wnid is matched before single synonyms. A name that still fits two classes
("crane": the bird and the machine) is refused as ambiguous.
"""
from __future__ import annotations

import difflib
import functools
import re
from importlib import resources

import numpy as np

from caffe_port.errors import InputError

NUM_CLASSES = 1000


@functools.lru_cache(maxsize=None)
def _table():
    text = resources.files("caffe_port").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    rows = [line.split(" ", 1) for line in text.splitlines() if line.strip()]
    if len(rows) != NUM_CLASSES or any(len(r) != 2 for r in rows):
        raise RuntimeError("caffe_port/data/imagenet_classes.txt is damaged: expected 1000 "
                           "'<wnid> <names>' lines")  # a broken install, not a user error
    wnids = tuple(r[0] for r in rows)
    names = tuple(r[1] for r in rows)
    # a whole line or a wnid outranks a synonym: "partridge" is class 86's whole name and also
    # a synonym of 82 (ruffed grouse), and means 86
    by_line: dict[str, set[int]] = {}
    by_synonym: dict[str, set[int]] = {}
    for index, (wnid, line) in enumerate(rows):
        for key in (_normalise(wnid), _normalise(line)):
            by_line.setdefault(key, set()).add(index)
        for synonym in line.split(","):
            by_synonym.setdefault(_normalise(synonym), set()).add(index)
    return wnids, names, by_line, by_synonym


def _normalise(name: str) -> str:
    return re.sub(r"\s+", " ", name.replace("_", " ")).strip().casefold()


def wnids() -> tuple[str, ...]:
    """The 1000 WordNet ids, in class-index order."""
    return _table()[0]


def class_names() -> tuple[str, ...]:
    """The 1000 full names ("tabby, tabby cat"), in class-index order."""
    return _table()[1]


def _check_index(index) -> int:
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise InputError(f"ImageNet class index must be an integer, not {index!r}")
    if not 0 <= index < NUM_CLASSES:
        raise InputError(f"ImageNet class index {index} is out of range 0..{NUM_CLASSES - 1}")
    return int(index)


def class_name(index: int, short: bool = False) -> str:
    """The name of class ``index``: the whole line ("tabby, tabby cat") or, with ``short``, its
    first synonym ("tabby")."""
    name = class_names()[_check_index(index)]
    return name.split(",", 1)[0] if short else name


def class_index(name) -> int:
    """Class index for a name, any one synonym of it, a wnid ("n02123045"), an integer or a
    string of digits. Raises InputError for an unknown or ambiguous name."""
    if isinstance(name, (int, np.integer)) and not isinstance(name, (bool, np.bool_)):
        return _check_index(name)
    if not isinstance(name, str):
        raise InputError(f"ImageNet class must be a name or an index, not {name!r}")
    if name.strip().isdigit():
        return _check_index(int(name.strip()))
    _, names, by_line, by_synonym = _table()
    key = _normalise(name)
    matches = by_line.get(key) or by_synonym.get(key)
    if not matches:
        close = difflib.get_close_matches(key, list(by_synonym), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        raise InputError(f"unknown ImageNet class name {name!r}{hint}")
    if len(matches) > 1:
        listed = "; ".join(f"{i} ({names[i]})" for i in sorted(matches))
        raise InputError(f"ImageNet class name {name!r} is ambiguous: {listed}")
    return next(iter(matches))


def top_k(prob, k: int = 5) -> list[tuple[int, str, float]]:
    """The k best classes of a (1000,) score vector: [(index, short name, score)], best first."""
    prob = np.asarray(prob).reshape(-1)
    if prob.size != NUM_CLASSES:
        raise InputError(f"expected {NUM_CLASSES} class scores, got {prob.size}")
    order = np.argsort(-prob, kind="stable")[:k]
    return [(int(i), class_name(int(i), short=True), float(prob[i])) for i in order]
