"""Ground-truth boxes from a CSV file, for the pointing game.

    image,class,x0,y0,x1,y1
    chelsea.jpg,tabby,0,0,400,300
    coffee.png,967,170,15,415,300

One box a line: the image's file name (a path's folder is ignored: images are matched by file
name), the class (an index or a name), and the half-open box in the photograph's pixels (x0 ≤ x
< x1, y0 ≤ y < y1; numbers are rounded to whole pixels). A first line that is not a box is a
header; blank lines and lines starting with '#' are skipped.
"""
from __future__ import annotations

import csv
import os

from caffe_port.errors import InputError
from caffe_port.metrics.pointing import check_box


def read_boxes_csv(path) -> dict:
    """{image file name: [(class, (x0, y0, x1, y1)), …]}; class an int or a name (str)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 CSV file of boxes") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the boxes ({e.strerror})") from None
    boxes = {}
    for number, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if len(cells) != 6:
            raise InputError(f"{path}:{number}: expected 6 columns (image, class, x0, y0, x1, y1), "
                             f"got {len(cells)}")
        try:
            coordinates = [round(float(v)) for v in cells[2:]]
        except (ValueError, OverflowError):
            if number == 1:
                continue                    # a header
            raise InputError(f"{path}:{number}: box coordinates must be numbers, got "
                             f"{', '.join(cells[2:])}") from None
        try:
            box = check_box(coordinates)
        except InputError as e:
            raise InputError(f"{path}:{number}: {e}") from None
        if min(box) < 0:
            raise InputError(f"{path}:{number}: box {box} has a negative coordinate")
        name, target = os.path.basename(cells[0]), cells[1]
        if not name or not target:
            raise InputError(f"{path}:{number}: the image and the class must not be empty")
        target = int(target) if target.isdigit() else target
        boxes.setdefault(name, []).append((target, box))
    if not boxes:
        raise InputError(f"{path}: no boxes in the file")
    return boxes
