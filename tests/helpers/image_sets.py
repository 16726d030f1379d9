"""Small image sets on disk for the batch tests: photographs of several sizes, and the bad files a
real folder holds (empty, not an image, truncated JPEG and PNG)."""
import os

import cv2
import numpy as np


def write_photos(folder, count, seed=0, sizes=((60, 90), (75, 64), (48, 48))):
    """``count`` random photographs with a bright disc, as JPEG and PNG, sizes cycling; their paths."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        image = rng.uniform(0, 255, (h, w, 3)).astype(np.uint8)
        cv2.circle(image, (int(rng.integers(8, w - 8)), int(rng.integers(8, h - 8))), 7, (0, 0, 255), -1)
        path = os.path.join(folder, f"photo{i:03d}.{'jpg' if i % 2 == 0 else 'png'}")
        cv2.imwrite(path, image)
        paths.append(path)
    return paths


def write_bad_files(folder, like):
    """An empty file, a text file named .png, a JPEG and a PNG cut in half (from ``like``, a JPEG
    and a PNG path); {kind: path}."""
    os.makedirs(folder, exist_ok=True)
    jpeg, png = like
    bad = {"empty": os.path.join(folder, "empty.jpg"), "text": os.path.join(folder, "notes.png"),
           "cut_jpeg": os.path.join(folder, "cut.jpg"), "cut_png": os.path.join(folder, "cut.png")}
    open(bad["empty"], "wb").close()
    with open(bad["text"], "w") as f:
        f.write("not a picture\n")
    for source, target in ((jpeg, bad["cut_jpeg"]), (png, bad["cut_png"])):
        with open(source, "rb") as f:
            data = f.read()
        with open(target, "wb") as f:
            f.write(data[:len(data) // 2])
    return bad
