"""Ground-truth boxes: PASCAL VOC XML (ILSVRC's own annotation format) or a CSV, and which image
each belongs to.

    ann/                a folder of VOC XML files, one per image, matched by the image's stem
                        (ILSVRC2012_val_00000001.JPEG ↔ ILSVRC2012_val_00000001.xml)
    ann.xml             one VOC XML file: the image its <filename> or its own name says (with a
                        single image given, that image)
    boxes.csv           rows image,class,x0,y0,x1,y1 (a header line naming those columns is
                        optional); ``image`` is the path as given to ``evaluate`` (relative paths
                        resolve against the CSV's folder), or the file's name, or its stem

A VOC object is ``<object><name>n02123045</name><bndbox><xmin>…</xmin><ymin>…</ymin><xmax>…
</xmax><ymax>…</ymax></bndbox></object>``; its name, like a CSV's class, is a WordNet id, a
class index or a class name (``caffe_port.imagenet`` for 1000-class nets, the net's labels
otherwise).

**Pixel conventions.** VOC and ILSVRC corners are inclusive, 1-based pixel indices: xmin = 1,
xmax = 10 is the first ten columns. They are read into caffe_port's half-open 0-based boxes
(x0, y0, x1, y1) = (xmin − 1, ymin − 1, xmax, ymax), the boxes ``localize``, ``batch`` and
``evaluate`` print, so that the CSV is in caffe_port's own convention: half-open and 0-based
(x0 = 0, x1 = 10 is the same ten columns). A box that overhangs the image is clipped to it when
it is scored; one wholly outside, inverted or empty is refused.

Every problem with a file is one InputError naming the file (and line or object).
"""
from __future__ import annotations

import csv
import math
import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

from caffe_port.batch.inputs import Item
from caffe_port.errors import InputError
from caffe_port import imagenet
from caffe_port.methods.base import imagenet_labels, one_class

XML_EXTENSIONS = (".xml",)
CSV_EXTENSIONS = (".csv",)
CSV_COLUMNS = ("image", "class", "x0", "y0", "x1", "y1")
MAX_FILE_BYTES = 16 << 20           # an annotation file is a few kB; a larger one is not one


@dataclass(frozen=True)
class GroundTruth:
    """One image's boxes: ``objects`` = ((class index, (x0, y0, x1, y1) half-open), …)."""
    source: str                     # the file (and line) it came from, for messages
    objects: tuple
    size: tuple | None = None       # (width, height) the file states (VOC <size>), if any


def class_resolver(num_classes, labels=None):
    """A function: a class as an annotation writes it ("n02123045", "281", "tabby") → its index
    (``labels``: the net's class names; default ImageNet's for 1000 classes, as a method's)."""
    if labels is None and num_classes == imagenet.NUM_CLASSES:
        labels = imagenet_labels()

    def resolve(text):
        text = str(text).strip()
        return one_class(int(text) if text.isdigit() else text, num_classes, labels)
    return resolve


def _number(text, where, what):
    try:
        value = float(str(text).strip())
    except ValueError:
        raise InputError(f"{where}: {what} {str(text).strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: {what} {value} is not a finite number")
    return value


def _checked_box(box, where):
    x0, y0, x1, y1 = box
    if not (x0 < x1 and y0 < y1):
        raise InputError(f"{where}: the box {_plain(box)} is empty or inverted (need x0 < x1 and y0 < y1, "
                         f"half-open)")
    return tuple(box)


def _plain(box):
    return [int(v) if float(v).is_integer() else v for v in box]


def _read_text(path, what):
    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            raise InputError(f"{path}: {os.path.getsize(path)} bytes is too large for {what}")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(f"{path}: cannot read {what} ({e.strerror})") from None
    return data


# --- VOC XML -----------------------------------------------------------------------------------

def read_voc(path, resolve) -> GroundTruth:
    """One VOC XML file → GroundTruth (module docstring); ``resolve`` maps a <name> to an index."""
    return voc_truth(parse_voc(path), path, resolve)


def parse_voc(path):
    """The <annotation> element of a VOC XML file."""
    data = _read_text(path, "the VOC XML annotation")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as e:
        raise InputError(f"{path}: not a VOC XML annotation ({e})") from None
    if root.tag != "annotation":
        raise InputError(f"{path}: not a VOC XML annotation (its root is <{root.tag}>, not <annotation>)")
    return root


def voc_truth(root, path, resolve) -> GroundTruth:
    """GroundTruth from a parsed <annotation> (``path`` names it in messages)."""
    size = None
    size_node = root.find("size")
    if size_node is not None:
        width, height = (_number(_field(size_node, name, path, "<size>"), path, f"<size><{name}>")
                         for name in ("width", "height"))
        if width <= 0 or height <= 0 or not (width.is_integer() and height.is_integer()):
            raise InputError(f"{path}: <size> {width:g}×{height:g} is not a positive whole number of pixels")
        size = (int(width), int(height))
    objects = []
    for number, node in enumerate(root.findall("object"), 1):
        where = f"{path}: object {number}"
        name = _field(node, "name", path, f"object {number}")
        try:
            class_index = resolve(name)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
        box_node = node.find("bndbox")
        if box_node is None:
            raise InputError(f"{where} ({name.strip()}) has no <bndbox>")
        xmin, ymin, xmax, ymax = (_number(_field(box_node, c, path, f"object {number} <bndbox>"), where, f"<{c}>")
                                  for c in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin:
            raise InputError(f"{where}: <bndbox> {_plain((xmin, ymin, xmax, ymax))} has xmax < xmin or "
                             f"ymax < ymin (VOC corners are inclusive)")
        box = _checked_box((xmin - 1, ymin - 1, xmax, ymax), where)
        if size is not None and (box[0] >= size[0] or box[1] >= size[1] or box[2] <= 0 or box[3] <= 0):
            raise InputError(f"{where}: <bndbox> {_plain((xmin, ymin, xmax, ymax))} lies outside the "
                             f"{size[0]}×{size[1]} image the file describes")
        objects.append((class_index, box))
    if not objects:
        raise InputError(f"{path}: no <object> in the annotation: nothing to localise")
    return GroundTruth(os.fspath(path), tuple(objects), size)


def _field(node, name, path, where):
    child = node.find(name)
    if child is None or child.text is None or not child.text.strip():
        raise InputError(f"{path}: {where} has no <{name}>")
    return child.text


# --- CSV ---------------------------------------------------------------------------------------

def read_csv(path, resolve) -> dict:
    """{image as written: GroundTruth} from a CSV of image,class,x0,y0,x1,y1 rows (half-open)."""
    data = _read_text(path, "the CSV of boxes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text CSV of boxes (not UTF-8)") from None
    boxes = {}
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as e:
        raise InputError(f"{path}: not a CSV of boxes ({e})") from None
    for number, row in enumerate(rows, 1):
        where = f"{path}:{number}"
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in row]
        if number == 1 and tuple(c.lower() for c in cells) == CSV_COLUMNS:
            continue                                  # the header
        if len(cells) != len(CSV_COLUMNS):
            raise InputError(f"{where}: {len(cells)} column(s); a row is {','.join(CSV_COLUMNS)}")
        image, name = cells[0], cells[1]
        if not image:
            raise InputError(f"{where}: no image named")
        try:
            class_index = resolve(name)
        except InputError as e:
            raise InputError(f"{where}: {e}") from None
        box = _checked_box(tuple(_number(v, where, c) for v, c in zip(cells[2:], CSV_COLUMNS[2:])), where)
        boxes.setdefault(image, []).append((class_index, box, number))
    if not boxes:
        raise InputError(f"{path}: no boxes in the CSV (rows are {','.join(CSV_COLUMNS)})")
    return {image: GroundTruth(f"{path}:{entries[0][2]}", tuple((c, b) for c, b, _ in entries))
            for image, entries in boxes.items()}


# --- which image is which ------------------------------------------------------------------------

def _stem(name):
    return os.path.splitext(os.path.basename(name))[0]


class Annotations:
    """Ground truth by image name; ``find(item)`` looks an input image up (module docstring).

    truths: {name: GroundTruth}, name a path (resolved against ``base``), a file name or a stem
    single: one XML file's (it annotates a single image given, whatever its name)
    """

    def __init__(self, truths, base=None, source="", single=False):
        self.truths = dict(truths)
        self.source = source
        self.single = single
        self.by_path, self.by_name, self.by_stem = {}, {}, {}
        for name, truth in self.truths.items():
            if base is not None and (os.sep in name or "/" in name or os.path.splitext(name)[1]):
                self.by_path[os.path.abspath(os.path.join(base, name))] = truth
            self.by_name.setdefault(os.path.basename(name), []).append(truth)
            self.by_stem.setdefault(_stem(name), []).append(truth)

    def __len__(self):
        return len(self.truths)

    def find(self, item: Item):
        """The GroundTruth of ``item``: by its resolved path, else by its file name, else by its
        stem, each only where it names one; None when none does."""
        if item.path in self.by_path:
            return self.by_path[item.path]
        for index, key in ((self.by_name, os.path.basename(item.path)), (self.by_stem, _stem(item.path))):
            found = index.get(key, [])
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InputError(f"{item.image}: {len(found)} annotations name {key!r} "
                                 f"({found[0].source}, {found[1].source}); name the images by path")
        return None


def load(source, resolve) -> Annotations:
    """A folder of VOC XMLs, one XML or a CSV → Annotations."""
    source = os.fspath(source)
    if os.path.isdir(source):
        names = sorted(n for n in os.listdir(source) if n.lower().endswith(XML_EXTENSIONS) and not n.startswith("."))
        if not names:
            raise InputError(f"{source}: the folder holds no .xml annotation files")
        return Annotations({_stem(n): read_voc(os.path.join(source, n), resolve) for n in names}, source=source)
    if not os.path.exists(source):
        raise InputError(f"{source}: no such annotation file or folder")
    lower = source.lower()
    if lower.endswith(XML_EXTENSIONS):
        root = parse_voc(source)
        truth = voc_truth(root, source, resolve)
        names = {_stem(source): truth}
        written = root.findtext("filename", "").strip()
        if written:
            names[_stem(written)] = truth
        return Annotations(names, source=source, single=True)
    if lower.endswith(CSV_EXTENSIONS):
        return Annotations(read_csv(source, resolve), base=os.path.dirname(os.path.abspath(source)), source=source)
    raise InputError(f"{source}: annotations are a folder of VOC .xml files, one .xml file or a .csv")


def match(items, annotations: Annotations) -> dict:
    """{item.path: GroundTruth} for every item; InputError naming the first image without one (a
    single XML file annotates a single image whatever their names), or two images given one."""
    if annotations.single and len(items) == 1:
        return {items[0].path: next(iter(annotations.truths.values()))}
    truths, missing, owner = {}, [], {}
    for item in items:
        truth = annotations.find(item)
        if truth is None:
            missing.append(item)
            continue
        if id(truth) in owner and owner[id(truth)] != item.path:
            raise InputError(f"{item.image}: its annotation ({truth.source}) is also the one found for "
                             f"{owner[id(truth)]}; give images whose names tell them apart")
        owner[id(truth)] = item.path
        truths[item.path] = truth
    if missing:
        raise InputError(f"{missing[0].image}: no ground truth in {annotations.source} (matched by path, "
                         f"file name or stem)" + (f"; {len(missing) - 1} more image(s) have none"
                                                  if len(missing) > 1 else ""))
    return truths
